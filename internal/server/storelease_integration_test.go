//go:build integration

package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestSecondReplicaRefusesAFileStore: a second server claiming the file://
// store Lease while the first holds it fails at once with an error that says
// to use s3://; once the first stops (and releases it), a new one starts.
func TestSecondReplicaRefusesAFileStore(t *testing.T) {
	env := clustertest.New(t)
	log := slog.New(slog.DiscardHandler)
	first, stopFirst := context.WithCancel(context.Background())
	defer stopFirst()
	if err := claimStoreLease(first, env.Client, env.Namespace, log); err != nil {
		t.Fatalf("first replica: %v", err)
	}
	start := time.Now()
	second, stopSecond := context.WithCancel(context.Background())
	defer stopSecond()
	err := claimStoreLease(second, env.Client, env.Namespace, log)
	if err == nil || !strings.Contains(err.Error(), "s3://") || !strings.Contains(err.Error(), "already served by replica") {
		t.Fatalf("second replica: %v, want a refusal that says to use s3://", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the refusal took %s; a live holder must be refused at once", took)
	}
	stopSecond()
	stopFirst()
	// ReleaseOnCancel empties the holder: the next replica starts at once.
	clustertest.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, error) {
		_, live, err := liveHolder(ctx, env.Client, env.Namespace)
		return !live, err
	}, "the first replica to release the Lease")
	third, stopThird := context.WithCancel(context.Background())
	defer stopThird()
	if err := claimStoreLease(third, env.Client, env.Namespace, log); err != nil {
		t.Fatalf("a replica after the first stopped: %v", err)
	}
}
