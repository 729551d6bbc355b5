// Command lastcall-dev runs the local control plane lastcall is developed
// and tested on (`go run ./cmd/lastcall-dev up`). It is kept out of the
// shipped lastcall binary, as kwok keeps kwokctl out of kwok.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newDevCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lastcall-dev:", err)
		os.Exit(1)
	}
}
