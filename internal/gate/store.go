package gate

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Switch names one of a Gate's two switches.
type Switch string

// The switches of a Gate: /gate/* and /rollback/*.
const (
	SwitchGate     Switch = "gate"
	SwitchRollback Switch = "rollback"
)

// Of returns the switch's part of a Gate spec.
func (sw Switch) Of(spec *v1alpha1.GateSpec) *v1alpha1.GateSwitch {
	if sw == SwitchRollback {
		return &spec.Rollback
	}
	return &spec.Gate
}

// Store changes gate state through the API server with optimistic
// concurrency: each change is a read, a modification and an update that
// fails on a concurrent write and is then retried on a fresh read. The HTTP
// endpoints and `lastcall gate` share it.
type Store struct {
	Client client.Client
	// Reader reads consistently (not from a cache), so that a retry sees
	// the write it conflicted with.
	Reader client.Reader
	Clock  clock.PassiveClock
}

// SetSwitch moves one switch of the canary's Gate, creating the Gate when it
// does not exist. Setting a switch to the state it has leaves it (and who
// set it) alone. It returns the Gate as stored, or nil when there is none
// and the switch was closed, which is what a missing Gate means.
func (st Store) SetSwitch(ctx context.Context, canary types.NamespacedName, sw Switch, state v1alpha1.GateState, by string) (*v1alpha1.Gate, error) {
	var out *v1alpha1.Gate
	conflictOrRace := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, conflictOrRace, func() error {
		var g v1alpha1.Gate
		err := st.Reader.Get(ctx, canary, &g)
		missing := apierrors.IsNotFound(err)
		if err != nil && !missing {
			return err
		}
		cur := sw.Of(&g.Spec)
		if cur.State == state || (missing && state == v1alpha1.GateStateClosed) {
			if !missing {
				out = &g
			}
			return nil
		}
		now := metav1.NewTime(st.Clock.Now())
		*cur = v1alpha1.GateSwitch{State: state, By: by, At: &now}
		if missing {
			g = v1alpha1.Gate{ObjectMeta: metav1.ObjectMeta{Namespace: canary.Namespace, Name: canary.Name}, Spec: g.Spec}
			if err := st.Client.Create(ctx, &g); err != nil {
				return err
			}
		} else if err := st.Client.Update(ctx, &g); err != nil {
			return err
		}
		out = &g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set the %s switch of Gate %s to %s: %w", sw, canary, state, err)
	}
	return out, nil
}

// OverrideRun records a manual decision on a gate run (spec.gate), which
// then answers /flagger/gate whatever the run's phase.
func (st Store) OverrideRun(ctx context.Context, run types.NamespacedName, action v1alpha1.GateOverrideAction, by string) (*v1alpha1.TerminationRun, error) {
	var r v1alpha1.TerminationRun
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := st.Reader.Get(ctx, run, &r); err != nil {
			return err
		}
		r.Spec.Gate = &v1alpha1.GateOverride{Action: action, By: by, At: metav1.NewTime(st.Clock.Now())}
		return st.Client.Update(ctx, &r)
	})
	if err != nil {
		return nil, fmt.Errorf("override gate of run %s: %w", run, err)
	}
	return &r, nil
}
