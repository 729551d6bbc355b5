// Package clustertest shares one real control plane (devcluster) between the
// tests of a package: Main starts it from TestMain, New gives each test a
// fresh namespace and clients.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

var shared *devcluster.Cluster

// Main starts the control plane, runs the package's tests and stops it. On a
// failure it prints the tail of every component's log. A control plane that
// cannot be built or started fails the run with the reason: it never skips.
// Setup functions run once the control plane is up, before the tests (e.g.
// InstallCRDs).
func Main(m *testing.M, opts devcluster.Options, setup ...func(*devcluster.Cluster) error) {
	os.Exit(run(m, opts, setup))
}

func run(m *testing.M, opts devcluster.Options, setup []func(*devcluster.Cluster) error) int {
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "clustertest: cannot start the control plane: %v\n", err)
		return 1
	}
	shared = c
	code := func() int {
		for _, f := range setup {
			if err := f(c); err != nil {
				fmt.Fprintf(os.Stderr, "clustertest: setup: %v\n", err)
				return 1
			}
		}
		return m.Run()
	}()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "clustertest: tests failed; control-plane logs:\n%s", c.LogTails(40))
	}
	c.Stop()
	// A test run must leave nothing behind (a real node's containers,
	// cgroups, sysctls): fail it if Stop could not undo everything.
	if err := c.CleanupError(); err != nil {
		fmt.Fprintf(os.Stderr, "clustertest: %v\n", err)
		return 1
	}
	return code
}

// Cluster returns the package's shared control plane.
func Cluster() *devcluster.Cluster {
	if shared == nil {
		panic("clustertest: call clustertest.Main from TestMain")
	}
	return shared
}

// Env is what one test gets: its own namespace and admin clients.
type Env struct {
	Namespace string
	Config    *rest.Config
	Client    kubernetes.Interface
}

// New creates a namespace for t (deleted when t ends) and waits for its
// default ServiceAccount, without which pods are refused.
func New(t testing.TB) *Env {
	t.Helper()
	cfg := Cluster().Config()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + hex.EncodeToString(b)}}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	Eventually(t, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}, "default ServiceAccount in %s", ns.Name)
	return &Env{Namespace: ns.Name, Config: cfg, Client: cs}
}

// Eventually polls cond every 100 ms until it is true or timeout passes, then
// fails t with the description. A cond error fails at once.
func Eventually(t testing.TB, timeout time.Duration, cond func(ctx context.Context) (bool, error), what string, args ...any) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", fmt.Sprintf(what, args...), err)
	}
}
