package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// InstallCRDs returns a setup function that creates the CustomResourceDefinitions
// in the given YAML files (multi-document allowed) and waits until they are
// Established.
func InstallCRDs(files ...string) func(*devcluster.Cluster) error {
	return func(c *devcluster.Cluster) error {
		cs, err := apiextensions.NewForConfig(c.Config())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var names []string
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
			for {
				var crd apiextensionsv1.CustomResourceDefinition
				if err := dec.Decode(&crd); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					return fmt.Errorf("decode %s: %w", f, err)
				}
				if crd.Name == "" {
					continue
				}
				if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("create CRD %s: %w", crd.Name, err)
				}
				names = append(names, crd.Name)
			}
		}
		return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			for _, n := range names {
				crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
				if err != nil {
					return false, nil
				}
				established := false
				for _, cond := range crd.Status.Conditions {
					if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
						established = true
					}
				}
				if !established {
					return false, nil
				}
			}
			return true, nil
		})
	}
}
