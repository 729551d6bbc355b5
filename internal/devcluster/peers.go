package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// FlaggerVersion is the Flagger release the end-to-end tests, the demo and
// the gate benchmark run against. Its loadtester is built from the same
// module version.
const FlaggerVersion = "v1.36.1"

// Names of the peer binaries EnsurePeers provides.
const (
	BinFlagger    = "flagger"
	BinLoadtester = "loadtester"
)

const flaggerModule = "github.com/fluxcd/flagger"

// Peers holds the paths of the peer binaries: programs lastcall works with
// rather than part of the control plane.
type Peers struct {
	Dir string
}

// Flagger is the path of the flagger binary.
func (p Peers) Flagger() string { return filepath.Join(p.Dir, BinFlagger) }

// Loadtester is the path of the flagger-loadtester binary.
func (p Peers) Loadtester() string { return filepath.Join(p.Dir, BinLoadtester) }

// DefaultPeersCacheDir is the root of the peer binaries' cache.
func DefaultPeersCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find user cache dir: %w", err)
	}
	return filepath.Join(dir, "lastcall", "peers"), nil
}

// EnsurePeers installs Flagger and its loadtester (FlaggerVersion) with
// `go install` into <PeersCacheDir>/flagger-<version>/bin unless they are
// there already. Like EnsureBinaries it serialises builders on a file lock,
// installs by atomic rename and prints a heartbeat while the build runs
// (about 4 min on 2 cores the first time).
func EnsurePeers(ctx context.Context, opts BuildOptions) (Peers, error) {
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	root := opts.PeersCacheDir
	if root == "" {
		dir, err := DefaultPeersCacheDir()
		if err != nil {
			return Peers{}, err
		}
		root = dir
	}
	versionDir := filepath.Join(root, "flagger-"+FlaggerVersion)
	p := Peers{Dir: filepath.Join(versionDir, "bin")}
	if len(missingPeers(p)) == 0 {
		return p, nil
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return Peers{}, fmt.Errorf("create peers cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(versionDir, "build.lock"), opts.Progress)
	if err != nil {
		return Peers{}, err
	}
	defer unlock()
	todo := missingPeers(p)
	if len(todo) == 0 { // another process built them while we waited
		return p, nil
	}
	if err := installPeers(ctx, p, todo, versionDir, opts.Progress); err != nil {
		return Peers{}, err
	}
	return p, nil
}

// EnsureFlagger is EnsurePeers for callers that only need Flagger.
func EnsureFlagger(ctx context.Context, opts BuildOptions) (string, error) {
	p, err := EnsurePeers(ctx, opts)
	if err != nil {
		return "", err
	}
	return p.Flagger(), nil
}

// EnsureLoadtester is EnsurePeers for callers that only need the loadtester.
func EnsureLoadtester(ctx context.Context, opts BuildOptions) (string, error) {
	p, err := EnsurePeers(ctx, opts)
	if err != nil {
		return "", err
	}
	return p.Loadtester(), nil
}

func missingPeers(p Peers) []string {
	var out []string
	for _, name := range []string{BinFlagger, BinLoadtester} {
		if fi, err := os.Stat(filepath.Join(p.Dir, name)); err != nil || !fi.Mode().IsRegular() {
			out = append(out, name)
		}
	}
	return out
}

// installPeers runs one `go install` for the missing binaries (they share
// most of their dependencies, so one build is faster than two) into a
// private GOBIN, then renames each into place.
func installPeers(ctx context.Context, p Peers, names []string, versionDir string, progress io.Writer) error {
	start := time.Now()
	fmt.Fprintf(progress, "devcluster: installing %v %s into %s (about 2 min on 2 cores after `make lint`, up to 4 min alone; first run only)\n", names, FlaggerVersion, p.Dir)
	gobin, err := os.MkdirTemp(versionDir, ".gobin-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(gobin)
	args := append([]string{"install"}, toolBuildFlags("")...)
	for _, n := range names {
		args = append(args, fmt.Sprintf("%s/cmd/%s@%s", flaggerModule, n, FlaggerVersion))
	}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = versionDir // outside any module: `pkg@version` must not see lastcall's go.mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOBIN="+gobin)
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan struct{})
	go heartbeat(done, progress, "flagger peers", start)
	err = cmd.Run()
	close(done)
	if err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out.String())
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(gobin, n), filepath.Join(p.Dir, n)); err != nil {
			return fmt.Errorf("install %s: %w", n, err)
		}
	}
	fmt.Fprintf(progress, "devcluster: installed %v in %s\n", names, time.Since(start).Round(time.Second))
	return nil
}

// FlaggerCRDPath downloads the Flagger module (FlaggerVersion) into the Go
// module cache if needed and returns the path of its CRD manifest, which the
// tests apply as is: it is never copied into this repository.
func FlaggerCRDPath(ctx context.Context) (string, error) {
	dir, err := moduleDir(ctx, flaggerModule+"@"+FlaggerVersion)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "artifacts", "flagger", "crd.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("flagger CRDs: %w", err)
	}
	return path, nil
}

// GatewayAPIVersion is the Gateway API release whose CRDs the tests install:
// Flagger's gatewayapi:v1 provider writes HTTPRoutes, whose backend weights
// are the routing state the gate reads. No data plane is run: the routes are
// what Flagger decided, and that is what the tests check against.
const GatewayAPIVersion = "v1.6.3"

// GatewayAPICRDPaths downloads sigs.k8s.io/gateway-api (GatewayAPIVersion)
// into the Go module cache if needed and returns the standard-channel CRD
// manifests of GatewayClass, Gateway and HTTPRoute.
func GatewayAPICRDPaths(ctx context.Context) ([]string, error) {
	dir, err := moduleDir(ctx, "sigs.k8s.io/gateway-api@"+GatewayAPIVersion)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes"} {
		p := filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_"+kind+".yaml")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("gateway API CRDs: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// moduleDir downloads mod (path@version) into the Go module cache, from the
// module proxy, and returns its directory.
func moduleDir(ctx context.Context, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, goTool(), "mod", "download", "-json", mod)
	cmd.Dir = os.TempDir() // outside lastcall's module, so its go.sum is left alone
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	// `go mod download -json` reports a module's failure in its Error field
	// and exits non-zero; the JSON then says more than the exit status.
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		if runErr != nil {
			return "", fmt.Errorf("go mod download %s: %w\n%s", mod, runErr, stderr.String())
		}
		return "", fmt.Errorf("go mod download %s: decode output: %w", mod, err)
	}
	if info.Error != "" {
		return "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	if runErr != nil {
		return "", fmt.Errorf("go mod download %s: %w\n%s", mod, runErr, stderr.String())
	}
	return info.Dir, nil
}
