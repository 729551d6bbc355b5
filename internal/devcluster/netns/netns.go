// Package netns runs a process in network and mount namespaces of its own,
// so that the real node lane's non-loopback addresses (the node IP, the pod
// bridge) never exist in the machine's own network namespace, and the
// mounts the kubelet and containerd make vanish with the process.
//
// Enter re-executes the current program under unshare(1): call it first
// thing in TestMain or main. Builds and module downloads must happen before
// (the new namespace has only loopback).
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// envInside holds the network namespace a process was in before Enter
// moved it (e.g. "net:[4026531833]"); children inherit it, so a nested
// Enter is a no-op, and Private compares against it.
const envInside = "LASTCALL_NETNS_PARENT"

// envMountParent is the same for the mount namespace.
const envMountParent = "LASTCALL_MNTNS_PARENT"

// Enter re-executes this program in a new network and mount namespace
// (mount propagation private) and returns in the new process, with loopback
// up. It needs root, as on CI. In a process that Enter already moved it only
// checks that loopback is up.
func Enter() error {
	if os.Getenv(envInside) != "" {
		if !Private() {
			return errors.New("netns: " + envInside + " is set but this process is still in that network namespace")
		}
		return run("ip", "link", "set", "lo", "up")
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: the real node lane needs root to create its network namespace (CI runs as root; use sudo)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("netns: unshare(1) from util-linux is required: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	parent, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	args := append([]string{unshare, "--net", "--mount", "--propagation", "private", "--", self}, os.Args[1:]...)
	mnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	env := append(os.Environ(), envInside+"="+parent, envMountParent+"="+mnt)
	return syscall.Exec(unshare, args, env) // returns only on failure
}

// Private reports whether Enter moved this process (or an ancestor) into
// a network namespace of its own, and it is still there.
func Private() bool {
	return privateNS("net")
}

// PrivateMount is Private for the mount namespace Enter creates with it.
func PrivateMount() bool { return privateNS("mnt") }

func privateNS(kind string) bool {
	parent := os.Getenv(envInside)
	if parent == "" {
		return false
	}
	self, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		return false
	}
	if kind == "net" {
		return self != parent
	}
	return os.Getenv(envMountParent) != "" && self != os.Getenv(envMountParent)
}

// AddAddress assigns cidr (e.g. "10.250.0.2/32") to loopback in this
// namespace. It refuses to run in the machine's own namespace.
func AddAddress(cidr string) error {
	if !Private() {
		return errors.New("netns: refusing to add " + cidr + " to the machine's own network namespace")
	}
	out, err := exec.Command("ip", "addr", "replace", cidr, "dev", "lo").CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip addr replace %s dev lo: %w: %s", cidr, err, out)
	}
	return nil
}

// AddLocalRoute routes cidr to loopback from src in this namespace, so that
// packets to it get as far as the nat table (kube-proxy's Service
// addresses, which exist only as DNAT rules). It refuses to run in the
// machine's own namespace.
func AddLocalRoute(cidr, src string) error {
	if !Private() {
		return errors.New("netns: refusing to add a route to the machine's own network namespace")
	}
	return run("ip", "route", "replace", cidr, "dev", "lo", "src", src)
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netns: %s %v: %w: %s", name, args, err, out)
	}
	return nil
}
