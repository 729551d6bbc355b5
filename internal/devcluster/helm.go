package devcluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Helm runs the project's helm (EnsureHelm) with args and returns its
// standard output; a failure carries its standard error.
func Helm(ctx context.Context, opts BuildOptions, args ...string) ([]byte, error) {
	helm, err := EnsureHelm(ctx, opts)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// HelmTemplate renders a chart as `helm template --include-crds` does: the
// manifests a user's `helm install` would create, for tests that apply
// them piecewise.
func HelmTemplate(ctx context.Context, opts BuildOptions, chartDir, release, namespace string, set ...string) ([]byte, error) {
	args := []string{"template", release, chartDir, "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return Helm(ctx, opts, args...)
}
