package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestStartGCFloorFlag(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, v := range []string{"abc", "-1", "1.5", "64MB/s"} {
		if _, err := startGCFloor(v, log); err == nil || !strings.Contains(err.Error(), "--gc-heap-floor") {
			t.Errorf("--gc-heap-floor=%s: err %v, want one naming the flag", v, err)
		}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	for _, v := range []string{"0", "16Mi"} {
		stop, err := startGCFloor(v, log)
		if err != nil {
			t.Fatalf("--gc-heap-floor=%s: %v", v, err)
		}
		stop()
		if got := debug.SetGCPercent(base); got != base {
			t.Errorf("--gc-heap-floor=%s: GOGC %d after stop, want %d", v, got, base)
		}
	}
}
