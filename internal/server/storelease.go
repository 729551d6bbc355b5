package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoreLeaseName is the Lease a replica holds while it serves a file://
// state store. Its name does not depend on the store's path: two replicas of
// one Deployment have the same path on two different volumes, which is
// exactly what must not happen (a save acknowledged by one is invisible to
// the other).
const StoreLeaseName = "lastcall-state-store"

// storeLeaseGoneHolderWait bounds the wait for a Lease whose holder's pod
// is gone or terminating: its grace period, then the Lease's duration.
const storeLeaseGoneHolderWait = 10 * time.Minute

// storeLeaseTiming is client-go's usual leader-election timing.
var storeLeaseTiming = struct{ duration, renew, retry time.Duration }{15 * time.Second, 10 * time.Second, 2 * time.Second}

// claimStoreLease takes the store Lease in ns for this process, or fails with
// an error that says what to do when another live replica holds it. Once
// taken, the Lease is renewed until ctx ends and then released. Losing it
// (the API server unreachable longer than the renew deadline) does not stop
// the state API, which must keep serving dying pods through an outage: the
// replica logs it and campaigns again.
func claimStoreLease(ctx context.Context, cs kubernetes.Interface, ns string, log *slog.Logger) error {
	id := electionID()
	// A holder that died without releasing the Lease is waited out: the
	// Lease's duration past its last renewal, and the elector's retries.
	waitFor := storeLeaseTiming.duration + 2*storeLeaseTiming.retry
	if holder, live, err := liveHolder(ctx, cs, ns); err != nil {
		return err
	} else if live {
		if !holderPodGone(ctx, cs, holder, log) {
			return storeHeldError(ns, holder)
		}
		// The holder's pod was deleted, but its server may still be in
		// its grace period, serving and renewing: wait until it releases
		// the Lease or its kill lets it expire.
		waitFor = storeLeaseGoneHolderWait
	}
	won := make(chan struct{})
	elector, err := leaseElector(cs, ns, StoreLeaseName, id, storeLeaseTiming.duration, storeLeaseTiming.renew, storeLeaseTiming.retry,
		leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				select {
				case <-won:
				default:
					close(won)
				}
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					log.Error("lost the file:// state store Lease (API server unreachable?); still serving, campaigning again", "lease", ns+"/"+StoreLeaseName)
				}
			},
		})
	if err != nil {
		return fmt.Errorf("state store lease: %w", err)
	}
	go func() {
		for ctx.Err() == nil {
			elector.Run(ctx)
		}
		releaseIfHeld(cs, ns, id, log)
	}()
	wait := time.NewTimer(waitFor)
	defer wait.Stop()
	select {
	case <-won:
		log.Info("holding the file:// state store Lease", "lease", ns+"/"+StoreLeaseName, "identity", id)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return storeHeldError(ns, elector.GetLeader())
	}
}

// holderPodGone reports whether the Lease's holder was a pod that is gone or
// going (deleted, terminating, finished): a replica that crashed or was
// SIGKILLed holds the Lease until it expires, and its replacement should
// wait that out rather than exit and be restarted with the kubelet's
// growing back-off (seen: 82 s after a SIGKILL). The identity starts with
// the holder's hostname, a pod's name; only a server that knows its own
// namespace (POD_NAMESPACE, set by the chart) can look it up.
func holderPodGone(ctx context.Context, cs kubernetes.Interface, holder string, log *slog.Logger) bool {
	ns := os.Getenv("POD_NAMESPACE")
	i := strings.LastIndex(holder, "_")
	if ns == "" || i <= 0 {
		return false
	}
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, holder[:i], metav1.GetOptions{})
	gone := apierrors.IsNotFound(err) ||
		(err == nil && (pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded))
	if gone {
		log.Info("the file:// state store Lease is held by a pod that is gone; waiting for the Lease to expire", "holder", holder)
	}
	return gone
}

// releaseIfHeld empties the Lease's holder if it is still id. The elector
// releases on cancel too, but its release fails when a renewal was cut
// short by the same cancel (its cached record is then stale: a conflict),
// and the next replica would wait out the lease duration.
func releaseIfHeld(cs kubernetes.Interface, ns, id string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leases := cs.CoordinationV1().Leases(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, StoreLeaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != id {
			return client.IgnoreNotFound(err)
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(""), ptr.To(int32(1)), &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		log.Warn("could not release the file:// state store Lease; the next replica waits for it to expire", "lease", ns+"/"+StoreLeaseName, "err", err)
	}
}

// liveHolder reads the Lease: who holds it and whether their hold is still
// current.
func liveHolder(ctx context.Context, cs kubernetes.Interface, ns string) (holder string, live bool, err error) {
	l, err := cs.CoordinationV1().Leases(ns).Get(ctx, StoreLeaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read the state store Lease %s/%s: %w", ns, StoreLeaseName, err)
	}
	s := l.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil || s.LeaseDurationSeconds == nil {
		return "", false, nil
	}
	expires := s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second)
	return *s.HolderIdentity, time.Now().Before(expires), nil
}

func storeHeldError(ns, holder string) error {
	return fmt.Errorf("the file:// state store is already served by replica %q (Lease %s/%s): a file:// store belongs to one replica, "+
		"and a second one would acknowledge saves the first never sees; run one replica (Deployment strategy Recreate), or use an s3:// store for several",
		holder, ns, StoreLeaseName)
}
