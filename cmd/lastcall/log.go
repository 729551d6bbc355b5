package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// newLogger makes the one log stream: lastcall's slog, controller-runtime's
// logr and client-go's klog all write JSON lines to w.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})
	log := slog.New(h)
	ctrl.SetLogger(logr.FromSlogHandler(h))
	klog.SetSlogLogger(log)
	return log, nil
}
