//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{Nodes: 2}, installCRDs)
}

// installCRDs applies lastcall's CRDs, Flagger's and the Gateway API's
// (GatewayClass, Gateway, HTTPRoute), the latter two straight from their
// modules in the Go module cache.
func installCRDs(c *devcluster.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	flagger, err := devcluster.FlaggerCRDPath(ctx)
	if err != nil {
		return err
	}
	ours, err := filepath.Glob("../../charts/lastcall/crds/lastcall.dev_*.yaml")
	if err != nil || len(ours) == 0 {
		return fmt.Errorf("no CRDs in ../../charts/lastcall/crds: %v", err)
	}
	gw, err := devcluster.GatewayAPICRDPaths(ctx)
	if err != nil {
		return err
	}
	return devcluster.InstallCRDs(ctx, c.Config(), append(append(ours, flagger), gw...)...)
}
