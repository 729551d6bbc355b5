package server

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

func TestCheckCRDsNamesWhatIsMissing(t *testing.T) {
	dc := kubefake.NewSimpleClientset().Discovery().(*fakediscovery.FakeDiscovery)
	err := checkCRDs(dc)
	if !errors.Is(err, errCRDsMissing) || !strings.Contains(err.Error(), "terminationpolicies.lastcall.dev, terminationruns.lastcall.dev, gates.lastcall.dev") ||
		!strings.Contains(err.Error(), "helm install") {
		t.Fatalf("no CRDs: %v", err)
	}
	dc.Resources = []*metav1.APIResourceList{{GroupVersion: v1alpha1.GroupVersion.String(), APIResources: []metav1.APIResource{
		{Name: "terminationpolicies"}, {Name: "terminationruns"},
	}}}
	if err := checkCRDs(dc); err == nil || !strings.Contains(err.Error(), "missing gates.lastcall.dev (") {
		t.Fatalf("gates missing: %v", err)
	}
	dc.Resources[0].APIResources = append(dc.Resources[0].APIResources, metav1.APIResource{Name: "gates"})
	if err := checkCRDs(dc); err != nil {
		t.Fatalf("all installed: %v", err)
	}
}
