//go:build integration

package run_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/internal/run"
)

func schemeForTests() *runtime.Scheme { return run.Scheme() }

func newWorkflowObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(run.WorkflowGVK)
	return u
}

func unstructuredString(u *unstructured.Unstructured, path ...string) (string, bool, error) {
	return unstructured.NestedString(u.Object, path...)
}

func workflowParams(u *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	params, _, _ := unstructured.NestedSlice(u.Object, "spec", "arguments", "parameters")
	for _, p := range params {
		m, _ := p.(map[string]any)
		name, _ := m["name"].(string)
		value, _ := m["value"].(string)
		out[name] = value
	}
	return out
}

// setWorkflowPhase plays Argo's workflow controller.
func setWorkflowPhase(t *testing.T, c client.Client, wf *unstructured.Unstructured, phase string) {
	t.Helper()
	cur := newWorkflowObject()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(wf), cur); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cur.Object, phase, "status", "phase"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background(), cur); err != nil {
		t.Fatalf("set workflow phase %s: %v", phase, err)
	}
}
