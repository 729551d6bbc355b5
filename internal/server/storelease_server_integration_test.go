//go:build integration

package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/server"
)

// TestSecondServerOnFileStoreRefusesToStart: issue 16 high 7 through the
// server itself: with leader election (replicas expected) and a file://
// store, a second `lastcall server` fails at start with the reason, even
// with a directory of its own (two volumes: saves one replica acknowledged
// would be invisible to the other).
func TestSecondServerOnFileStoreRefusesToStart(t *testing.T) {
	env := clustertest.New(t)
	applyCRDs(t)
	newServer := func() (*server.Server, error) {
		cfg := server.Defaults
		cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr = "127.0.0.1:0", "127.0.0.1:0", "0"
		cfg.LeaderElectionNamespace = env.Namespace
		cfg.State.URL = "file://" + t.TempDir()
		return server.New(clustertest.Cluster().Config(), cfg, slog.New(slog.DiscardHandler))
	}
	first, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := newServer(); err == nil || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("second server: %v, want a refusal that says to use s3://", err)
	}
}
