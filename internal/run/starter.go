package run

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Labels every run carries, for `kubectl get terminationruns -l`.
const (
	LabelPolicy  = "lastcall.dev/policy"
	LabelTrigger = "lastcall.dev/trigger"
)

// Request is one reason to run a policy over some pods.
type Request struct {
	Policy  *v1alpha1.TerminationPolicy
	Pods    []corev1.Pod
	Trigger v1alpha1.Trigger
	// Key makes the run's name deterministic (DeterministicName of
	// NamePrefix and Key): a trigger that repeats (the same canary
	// revision, the same dying pod, the same shutdown group) finds the run
	// the first one started instead of starting another. Empty: a
	// generated name, so each Start is a new run.
	Key []string
	// NamePrefix begins a deterministic name; default the policy's name.
	NamePrefix string
	// Labels are added to the run's own.
	Labels map[string]string
	// TTL deletes the run that long after it completes; 0 keeps it.
	TTL time.Duration
}

// Starter is the one place TerminationRuns are built and created: the gate,
// the node agent, the watcher and the CLI all start runs through it.
type Starter struct {
	// Client creates runs.
	Client client.Client
	// Reader reads back a run that already existed. It should be the API
	// server: a cache may not show a run another replica just created.
	// Nil: such a run is not read back (Start returns the one it would have
	// created).
	Reader client.Reader
}

// Start creates the run req asks for. With a Key, a run of that name that
// already exists is returned instead (created false), whoever created it.
func (s *Starter) Start(ctx context.Context, req Request) (r *v1alpha1.TerminationRun, created bool, err error) {
	r = newRun(req)
	err = s.Client.Create(ctx, r)
	if apierrors.IsAlreadyExists(err) && len(req.Key) > 0 {
		if s.Reader == nil {
			return r, false, nil
		}
		if err := s.Reader.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return nil, false, fmt.Errorf("read run %s/%s: %w", r.Namespace, r.Name, err)
		}
		return r, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("create a run of policy %s/%s: %w", req.Policy.Namespace, req.Policy.Name, err)
	}
	return r, true, nil
}

// RunName is the name Start gives a run with a Key.
func RunName(req Request) string {
	prefix := req.NamePrefix
	if prefix == "" {
		prefix = req.Policy.Name
	}
	return DeterministicName(prefix, req.Key...)
}

func newRun(req Request) *v1alpha1.TerminationRun {
	pol := req.Policy
	refs := make([]v1alpha1.PodRef, len(req.Pods))
	for i, p := range req.Pods {
		refs[i] = v1alpha1.PodRef{Name: p.Name, UID: p.UID}
	}
	r := &v1alpha1.TerminationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: pol.Namespace, Labels: map[string]string{LabelTrigger: string(req.Trigger.Source)}},
		Spec:       v1alpha1.TerminationRunSpec{PolicyRef: v1alpha1.PolicyRef{Name: pol.Name}, Pods: refs, Trigger: req.Trigger},
	}
	if len(validation.IsValidLabelValue(pol.Name)) == 0 { // names may be longer than a label
		r.Labels[LabelPolicy] = pol.Name
	}
	maps.Copy(r.Labels, req.Labels)
	if len(req.Key) > 0 {
		r.Name = RunName(req)
	} else {
		r.GenerateName = pol.Name + "-"
	}
	if req.TTL > 0 {
		r.Spec.TTLSecondsAfterFinished = ptr.To(int32(req.TTL / time.Second))
	}
	return r
}
