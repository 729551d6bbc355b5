// Command minio builds the MinIO server that the state service's S3 tests
// run (once; cached under the user cache dir) and prints its path. `make
// minio` runs it before the integration tests so that a fresh machine's
// ~10 min build shows its progress instead of stalling a test.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	bin, err := devcluster.EnsureMinio(ctx, devcluster.MinioOptions{})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "minio:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
