package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

// hostChanges records what the real node changes outside the cluster's
// directory, so that Stop puts it back: mounts inside the test's private
// mount namespace (they vanish with it anyway), the cgroup root in every
// hierarchy, and the kernel sysctls the kubelet sets on start.
type hostChanges struct {
	cgroupRoot string
	cgroupDirs []string
	sysctls    map[string]string
	unlock     func() // releases the cgroup root's lock file
}

// cgroupLockDir holds one locked file per live real node's cgroup root: a
// root whose file is not locked was left by a process that died, and the
// next real node removes it.
func cgroupLockDir() string { return filepath.Join(os.TempDir(), "lastcall-realnode-cgroups") }

// kubeletSysctls are the global sysctls the kubelet sets
// (setupKernelTunables); they are not per network namespace.
var kubeletSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// prepareHost checks the namespaces, hides the machine's /run, /var/log and
// /var/lib from the node (its containerd shims, netns pins, CNI cache and
// container log links then live in the cluster's directory and vanish with
// the namespace), creates the cgroup root and records the sysctls.
func prepareHost(p nodePaths) (*hostChanges, error) {
	if !netns.Private() {
		return nil, errors.New("the real node runs only in a network namespace of the test's own: call netns.Enter first (TestMain, or lastcall-dev)")
	}
	if !netns.PrivateMount() {
		return nil, errors.New("the real node needs a private mount namespace (netns.Enter gives one)")
	}
	sweepStaleCgroups()
	cgroupRoot := "lastcall-node-" + newBootID()[:12]
	if err := os.MkdirAll(cgroupLockDir(), 0o755); err != nil {
		return nil, err
	}
	lock := filepath.Join(cgroupLockDir(), cgroupRoot)
	unlock, err := lockFile(context.Background(), lock, io.Discard)
	if err != nil {
		return nil, err
	}
	// The node's directory, for the sweep of a run that dies: its shims
	// and containerd name it.
	if err := os.WriteFile(lock, []byte(p.dir), 0o644); err != nil {
		unlock()
		return nil, err
	}
	h := &hostChanges{cgroupRoot: cgroupRoot, sysctls: map[string]string{}, unlock: unlock}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, err
		}
		h.sysctls[k] = strings.TrimSpace(string(b))
	}
	for _, m := range []struct{ target, source string }{
		{"/run", ""},
		{"/var/lib", ""},
		{"/var/log", p.path("var-log")},
	} {
		var err error
		if m.source == "" {
			err = unix.Mount("tmpfs", m.target, "tmpfs", 0, "mode=755")
		} else if err = os.MkdirAll(m.source, 0o755); err == nil {
			err = unix.Mount(m.source, m.target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return nil, fmt.Errorf("mount over %s in the test's mount namespace: %w", m.target, err)
		}
	}
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return nil, err
	}
	for _, hier := range hierarchies {
		dir := filepath.Join(hier, cgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			h.restore()
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		h.cgroupDirs = append(h.cgroupDirs, dir)
		if filepath.Base(hier) == "cpuset" {
			// A cgroup v1 cpuset child starts with no CPUs: copy the parent's.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if b, err := os.ReadFile(filepath.Join(hier, f)); err == nil {
					_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
				}
			}
		}
	}
	return h, nil
}

// restore removes the cgroup tree (once its processes are gone) and puts
// the sysctls back. It returns what it could not undo.
func (h *hostChanges) restore() error {
	if h == nil {
		return nil
	}
	var errs []error
	for _, dir := range h.cgroupDirs {
		if err := removeCgroupTree(dir, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	h.cgroupDirs = nil
	if len(errs) == 0 && h.unlock != nil {
		_ = os.Remove(filepath.Join(cgroupLockDir(), h.cgroupRoot))
		h.unlock()
		h.unlock = nil
	}
	for k, v := range h.sysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// sweepStaleCgroups cleans up after real nodes whose process died (a test
// binary killed at its timeout, a crash): their lock is free. Every process
// in their cgroups (containers) and every process naming their directory
// (containerd, the shims, which outlive it all) is SIGKILLed, then the
// cgroups are removed.
func sweepStaleCgroups() {
	locks, _ := filepath.Glob(filepath.Join(cgroupLockDir(), "lastcall-node-*"))
	for _, lock := range locks {
		f, err := os.OpenFile(lock, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", filepath.Base(lock)))
			for _, pid := range cgroupPIDs(dirs) {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			if nodeDir, err := os.ReadFile(lock); err == nil && len(nodeDir) > 0 {
				for _, pid := range pidsMentioning(string(nodeDir)) {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
			ok := true
			for _, d := range dirs {
				ok = removeCgroupTree(d, 5*time.Second) == nil && ok
			}
			if ok {
				_ = os.Remove(lock)
			}
		}
		f.Close()
	}
}

// cgroupPIDs lists the processes in the cgroup trees under roots.
func cgroupPIDs(roots []string) []int {
	var pids []int
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroupTree removes a cgroup and its children, deepest first, waiting
// for exiting processes to leave them.
func removeCgroupTree(root string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.Reverse(dirs) // children before parents
		var last error
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				last = fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}
