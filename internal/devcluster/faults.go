package devcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// Fault injection for tests: what an API server outage or an etcd crash
// looks like to a client, done to the real processes.

func (c *Cluster) proc(name string) (int, *process, error) {
	for i, p := range c.procs {
		if p.name == name {
			return i, p, nil
		}
	}
	return 0, nil, fmt.Errorf("devcluster: no component %q", name)
}

// Pause freezes a component (SIGSTOP to its process group): its sockets
// stay open and clients hang, as with an overloaded or partitioned server.
func (c *Cluster) Pause(name string) error {
	_, p, err := c.proc(name)
	if err != nil {
		return err
	}
	return syscall.Kill(-p.pid, syscall.SIGSTOP)
}

// Resume undoes Pause.
func (c *Cluster) Resume(name string) error {
	_, p, err := c.proc(name)
	if err != nil {
		return err
	}
	return syscall.Kill(-p.pid, syscall.SIGCONT)
}

// Kill ends a component with SIGKILL, as a crash would; Restart brings it
// back.
func (c *Cluster) Kill(name string) error {
	_, p, err := c.proc(name)
	if err != nil {
		return err
	}
	if p.cmd == nil {
		return fmt.Errorf("devcluster: %s was adopted from a pid file and cannot be restarted", name)
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.exited
	return nil
}

// Restart starts a killed component again with the same arguments and
// waits until it serves (etcd and kube-apiserver; the others are started
// and not waited for).
func (c *Cluster) Restart(ctx context.Context, name string) error {
	i, p, err := c.proc(name)
	if err != nil {
		return err
	}
	if p.running() {
		return fmt.Errorf("devcluster: %s is still running: Kill it first", name)
	}
	np, err := startProcess(name, p.bin, p.args, filepath.Join(c.dir, "logs"), false)
	if err != nil {
		return err
	}
	c.procs[i] = np
	switch name {
	case BinEtcd:
		return c.waitHTTP(ctx, BinEtcd, fmt.Sprintf("http://127.0.0.1:%d/health", c.ports.EtcdClient), 30*time.Second)
	case BinKubeAPIServer:
		return c.waitAPIServer(ctx, 60*time.Second)
	}
	return nil
}
