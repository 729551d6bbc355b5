package devcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestSweepCleansUpAfterADeadRealNode: a real node whose process died
// (its lock free) left a container process in its cgroup and a shim-like
// process naming its directory. The next node's sweep kills both and
// removes the cgroup and the lock. Needs root, as the real node does (CI
// runs as root).
func TestSweepCleansUpAfterADeadRealNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (cgroups), as the real node lane does; run it as root, as CI does")
	}
	name := "lastcall-node-sweeptest" + strconv.Itoa(os.Getpid())
	cg := filepath.Join("/sys/fs/cgroup/pids", name)
	if err := os.MkdirAll(filepath.Join(cg, "kubepods"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeCgroupTree(cg, time.Second) })
	nodeDir := t.TempDir()
	if err := os.MkdirAll(cgroupLockDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(cgroupLockDir(), name)
	if err := os.WriteFile(lock, []byte(nodeDir), 0o644); err != nil {
		t.Fatal(err)
	}
	container := exec.Command("sleep", "600")
	shim := exec.Command("sh", "-c", "while :; do sleep 1; done", nodeDir) // $0 names the directory, as a shim's -address does
	for _, c := range []*exec.Cmd{container, shim} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cg, "kubepods", "cgroup.procs"), []byte(strconv.Itoa(container.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	sweepStaleCgroups()
	for name, c := range map[string]*exec.Cmd{"container": container, "shim": shim} {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			t.Errorf("the %s process survived the sweep", name)
		}
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup %s left: %v", cg, err)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock %s left: %v", lock, err)
	}
}
