package run

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// MetadataAction sets or removes labels (kind label) or annotations (kind
// annotate) with a merge patch guarded by the pod's UID, so it never touches
// a new pod that took the old one's name.
type MetadataAction struct {
	Client kubernetes.Interface
}

// Do implements Action.
func (a MetadataAction) Do(ctx context.Context, t Target) (string, error) {
	field, spec := "labels", t.Step.Label
	if t.Step.Kind() == v1alpha1.StepAnnotate {
		field, spec = "annotations", t.Step.Annotate
	}
	values := map[string]any{}
	for k, v := range spec.Set {
		values[k] = v
	}
	for _, k := range spec.Remove {
		values[k] = nil // JSON merge patch: null deletes the key
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{field: values, "uid": t.Pod.UID},
	})
	if err != nil {
		return "", permanent("encode patch: %v", err)
	}
	_, err = a.Client.CoreV1().Pods(t.Pod.Namespace).Patch(ctx, t.Pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return "", fmt.Errorf("patch %s of pod %s: %w", field, t.Pod.Name, err)
	}
	return fmt.Sprintf("%s: set %d, removed %d", field, len(spec.Set), len(spec.Remove)), nil
}
