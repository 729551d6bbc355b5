// Command lastcall-pause is the sandbox ("pause") container of the test
// node's pods: it holds the pod's namespaces open, reaps the orphans that
// are given to it as PID 1, and exits on SIGTERM or SIGINT. Built into an
// image with the project's own tooling (lastcall-dev images), so the real
// node lane needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
