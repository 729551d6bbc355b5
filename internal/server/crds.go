package server

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// crdResources are the resources of lastcall's CRDs, by plural name.
var crdResources = []string{"terminationpolicies", "terminationruns", "gates"}

// errCRDsMissing says which CRDs are missing and how to install them, where
// the manager would only report `no matches for kind "TerminationPolicy"`.
var errCRDsMissing = errors.New("lastcall's CustomResourceDefinitions are not installed")

// checkCRDs asks discovery for lastcall.dev/v1alpha1. Only a definite answer
// fails: when the API server cannot be asked, the server starts and its
// caches retry, as they do through any API-server outage.
func checkCRDs(dc discovery.DiscoveryInterface) error {
	gv := v1alpha1.GroupVersion.String()
	list, err := dc.ServerResourcesForGroupVersion(gv)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil
	}
	have := map[string]bool{}
	if list != nil {
		for _, r := range list.APIResources {
			have[r.Name] = true
		}
	}
	var missing []string
	for _, r := range crdResources {
		if !have[r] {
			missing = append(missing, r+"."+v1alpha1.GroupVersion.Group)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: missing %s (%s). Install them with the chart (helm install lastcall charts/lastcall), "+
		"or alone with: kubectl apply --server-side -f charts/lastcall/crds/", errCRDsMissing, strings.Join(missing, ", "), gv)
}
