// Command lastcall makes Kubernetes pod termination safe. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// The image has no OS certificate store (an empty base): Go's TLS
	// client falls back to this bundle of public roots, pinned in go.sum,
	// for an s3:// state store and other public endpoints. The API
	// server's own CA comes from the ServiceAccount mount as usual.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lastcall:", err)
		os.Exit(1)
	}
}
