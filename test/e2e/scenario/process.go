package scenario

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// BuildLastcall builds cmd/lastcall from the checkout at src into dir and
// returns the binary's path.
func BuildLastcall(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "lastcall")
	if err := devcluster.GoBuild(ctx, src, bin, "./cmd/lastcall"); err != nil {
		return "", err
	}
	return bin, nil
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lastcallServer is `lastcall server` as a process that the scenario can
// kill and start again on the same addresses.
type lastcallServer struct {
	bin, kubeconfig, logDir string
	httpAddr, healthAddr    string
	proc                    *devcluster.Process
	starts                  int
}

func newLastcallServer(bin, kubeconfig, logDir string) (*lastcallServer, error) {
	l := &lastcallServer{bin: bin, kubeconfig: kubeconfig, logDir: logDir}
	var err error
	if l.httpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if l.healthAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	return l, nil
}

// start runs the server and waits until it is ready. There is one replica,
// so leader election is off: on a loaded machine a short Lease can expire
// and end the server, and a long one would delay the restart's takeover.
func (l *lastcallServer) start(ctx context.Context) error {
	l.starts++
	args := []string{"server", "--kubeconfig", l.kubeconfig, "--state-url", "mem://",
		"--http-addr", l.httpAddr, "--health-addr", l.healthAddr, "--metrics-addr", "127.0.0.1:0",
		"--leader-elect=false"}
	p, err := devcluster.StartProcess("lastcall-"+strconv.Itoa(l.starts), l.bin, args, l.logDir)
	if err != nil {
		return err
	}
	l.proc = p
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.Exited():
			return false, fmt.Errorf("lastcall server exited:\n%s", p.LogTail(30))
		default:
		}
		resp, err := http.Get("http://" + l.healthAddr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("wait for lastcall server to be ready: %w", err)
	}
	return nil
}

func (l *lastcallServer) kill() {
	if l.proc != nil {
		l.proc.Kill()
	}
}

// exited returns the log tail of a server that exited by itself, or "".
func (l *lastcallServer) exited() string {
	if l.proc == nil {
		return ""
	}
	select {
	case <-l.proc.Exited():
		return l.proc.LogTail(20)
	default:
		return ""
	}
}

func (l *lastcallServer) stop() {
	if l.proc != nil {
		l.proc.Stop(5 * time.Second)
	}
}

// startFlagger runs Flagger against the cluster, watching only namespace,
// with the Kubernetes (blue/green) provider, which needs no mesh and no
// metrics: -metrics-server is required but never called.
func startFlagger(bin, kubeconfig, namespace, logDir string) (*devcluster.Process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return devcluster.StartProcess("flagger", bin, []string{
		"-kubeconfig", kubeconfig, "-mesh-provider", "kubernetes", "-namespace", namespace,
		"-metrics-server", "http://127.0.0.1:1", "-port", port, "-log-level", "info",
		// Pick up the new Canary within a second rather than the default 10 s.
		"-control-loop-interval", "1s",
	}, logDir)
}

func (l *lastcallServer) logPath(start int) string {
	return filepath.Join(l.logDir, "lastcall-"+strconv.Itoa(start)+".log")
}
