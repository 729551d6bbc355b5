//go:build integration

// Package realnode holds the tests that need the real kubelet: they run in
// a network and mount namespace of their own (netns.Enter), with a real
// node (containerd, runc, the kubelet, kube-proxy) beside the kwok nodes.
package realnode

import (
	"fmt"
	"os"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

func TestMain(m *testing.M) {
	if err := netns.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clustertest.Main(m, devcluster.Options{Nodes: 1, RealNode: &devcluster.RealNodeOptions{}})
}
