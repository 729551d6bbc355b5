package devcluster

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// stages are kwok Stage configs written for lastcall: see kwok/*.yaml.
//
//go:embed kwok/*.yaml
var stages embed.FS

// writeKwokConfig writes kwok's --config: our Stages, and a ClusterExec that
// maps `pods/exec` on any pod to a local process in workDir, so exec steps
// can be tested through the real API server.
func (c *Cluster) writeKwokConfig(workDir string) error {
	names, err := fs.Glob(stages, "kwok/*.yaml")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, n := range names {
		b, err := stages.ReadFile(n)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteString("\n---\n")
	}
	fmt.Fprintf(&buf, `apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: lastcall-local-exec
spec:
  execs:
  - local:
      workDir: %q
`, workDir)
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "kwok.yaml"), buf.Bytes(), 0o644)
}
