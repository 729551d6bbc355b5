package clustertest

import (
	"context"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// InstallCRDs returns a setup function that creates the CustomResourceDefinitions
// in the given YAML files (multi-document allowed) and waits until they are
// Established.
func InstallCRDs(files ...string) func(*devcluster.Cluster) error {
	return func(c *devcluster.Cluster) error {
		return devcluster.InstallCRDs(context.Background(), c.Config(), files...)
	}
}
