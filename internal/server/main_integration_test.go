//go:build integration

package server_test

import (
	"testing"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.Main(m, devcluster.Options{})
}
