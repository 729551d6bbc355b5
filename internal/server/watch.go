package server

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/lastcall-dev/lastcall/internal/watch"
)

// setupWatch adds the termination watcher, on the leader only: on every
// replica it would count each kubelet Event and emit each KilledAtDeadline
// Event once per replica.
func (s *Server) setupWatch() error {
	w, err := watch.New(s.Kube, s.mgr.GetClient(), s.mgr.GetEventRecorderFor("lastcall-watch"), s.registry, s.log.With("component", "watch"))
	if err != nil {
		return fmt.Errorf("set up watcher: %w", err)
	}
	s.terms.add("watch", func(ctx context.Context) error {
		pods, err := s.mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
		if err != nil {
			return fmt.Errorf("watch: pod informer: %w", err)
		}
		return w.Start(ctx, pods)
	})
	return nil
}
