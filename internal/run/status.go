package run

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// statusWriter owns a run's status while it executes: workers change the
// in-memory copy and wait until a write that includes their change has
// reached the API server. Changes made while a write is in flight are
// coalesced into the next one, so 100 pods finishing a step together cost a
// couple of writes, not 100, and nobody proceeds on an unrecorded outcome.
type statusWriter struct {
	c      client.Client
	reader client.Reader // uncached, for re-reading after a conflict

	mu        sync.Mutex
	run       *v1alpha1.TerminationRun // status here is authoritative
	version   uint64                   // bumped by every change
	persisted uint64                   // highest version written
	err       error                    // last write error, if the writer stopped
	flushed   chan struct{}            // closed and replaced after each write
	kick      chan struct{}
}

func newStatusWriter(c client.Client, reader client.Reader, run *v1alpha1.TerminationRun) *statusWriter {
	return &statusWriter{c: c, reader: reader, run: run.DeepCopy(), flushed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// update applies f to the status and returns the version to wait for.
func (w *statusWriter) update(f func(st *v1alpha1.TerminationRunStatus)) uint64 {
	w.mu.Lock()
	f(&w.run.Status)
	w.version++
	v := w.version
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return v
}

// read gives f a consistent view of the status.
func (w *statusWriter) read(f func(run *v1alpha1.TerminationRun)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w.run)
}

// sync applies f and waits until it is persisted.
func (w *statusWriter) sync(ctx context.Context, f func(st *v1alpha1.TerminationRunStatus)) error {
	return w.wait(ctx, w.update(f))
}

func (w *statusWriter) wait(ctx context.Context, v uint64) error {
	for {
		w.mu.Lock()
		persisted, err, ch := w.persisted, w.err, w.flushed
		w.mu.Unlock()
		if persisted >= v {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loop writes pending changes until ctx ends. A write refused for good
// (the run deleted, the write invalid) stops the run's execution; the
// controller starts it again from what was last persisted. Transient
// failures are retried inside write.
func (w *statusWriter) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.fail(ctx.Err())
			return
		case <-w.kick:
		}
		w.mu.Lock()
		obj, v := w.run.DeepCopy(), w.version
		w.mu.Unlock()
		if v == w.persistedVersion() {
			continue
		}
		rv, err := w.write(ctx, obj)
		if err != nil {
			w.fail(err)
			return
		}
		w.mu.Lock()
		w.run.ResourceVersion = rv
		w.persisted = v
		close(w.flushed)
		w.flushed = make(chan struct{})
		w.mu.Unlock()
	}
}

func (w *statusWriter) persistedVersion() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.persisted
}

func (w *statusWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	close(w.flushed)
	w.flushed = make(chan struct{})
	w.mu.Unlock()
}

// writeBackoff paces the retries of a status write that failed for a
// transient reason (the API server or etcd briefly unavailable).
var writeBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Cap: 5 * time.Second, Steps: math.MaxInt32}

// write updates the status subresource. A conflict means the spec changed
// (e.g. a gate override): take the new resourceVersion and write again; we
// are the only writer of status while the run executes. A transient failure
// is retried until ctx ends: giving up would end the execution, and the
// next one would run again a step whose outcome this write records.
func (w *statusWriter) write(ctx context.Context, obj *v1alpha1.TerminationRun) (string, error) {
	var err error
	werr := wait.ExponentialBackoffWithContext(ctx, writeBackoff, func(ctx context.Context) (bool, error) {
		err = w.writeOnce(ctx, obj)
		switch {
		case err == nil:
			return true, nil
		case transient(err):
			log.FromContext(ctx).Info("run status write failed; retrying", "err", err)
			return false, nil
		}
		return false, err
	})
	if werr != nil {
		if err == nil || ctx.Err() == nil {
			err = werr
		}
		return "", fmt.Errorf("write status of run %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return obj.ResourceVersion, nil
}

// transient reports an API error that a later attempt may not meet: the
// server busy or restarting, or no answer at all. The run being deleted,
// or the write refused, are not.
func transient(err error) bool {
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err),
		apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsGone(err):
		return false
	}
	return true
}

func (w *statusWriter) writeOnce(ctx context.Context, obj *v1alpha1.TerminationRun) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		err := w.c.Status().Update(ctx, obj)
		if !apierrors.IsConflict(err) {
			return err
		}
		var cur v1alpha1.TerminationRun
		if rerr := w.reader.Get(ctx, client.ObjectKeyFromObject(obj), &cur); rerr != nil {
			return fmt.Errorf("re-read run %s/%s: %w", obj.Namespace, obj.Name, rerr)
		}
		obj.ResourceVersion = cur.ResourceVersion
		return err
	})
}
