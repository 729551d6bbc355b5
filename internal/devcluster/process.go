package devcluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one running component. It runs in its own process group so that
// Stop reaches anything it forked, and logs to a file under the cluster dir.
type process struct {
	name    string
	bin     string
	args    []string
	pid     int
	logPath string
	cmd     *exec.Cmd // nil when adopted from a pid file (lastcall-dev down)
	exited  chan struct{}
}

// startProcess starts bin with args. When detached is false the child gets
// SIGKILL if this process dies, so a crashed test leaves no control plane
// behind; `lastcall-dev up` detaches instead and keeps pids in a file.
func startProcess(name, bin string, args []string, logDir string, detached bool) (*process, error) {
	return startProcessEnv(name, bin, args, logDir, detached, nil)
}

// startProcessEnv is startProcess with env added to the environment.
func startProcessEnv(name, bin string, args []string, logDir string, detached bool, env []string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	defer logf.Close() // the child keeps its own descriptor
	fmt.Fprintf(logf, "=== %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !detached {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, bin: bin, args: args, pid: cmd.Process.Pid, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process is still alive.
func (p *process) running() bool {
	if p.cmd != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return syscall.Kill(p.pid, 0) == nil
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.running() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if p.cmd != nil {
		<-p.exited
		return
	}
	for i := 0; i < 100 && p.running(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// tailLines returns the last n lines of a component's log.
func tailLines(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// Read at most the last 256 KiB: component logs can be large.
	if fi, err := f.Stat(); err == nil && fi.Size() > 256<<10 {
		if _, err := f.Seek(-256<<10, io.SeekEnd); err != nil {
			return "", err
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// Process is a program run next to the control plane, such as Flagger or a
// lastcall server in an end-to-end test: in its own process group, killed
// if this process dies, logging to a file.
type Process struct{ p *process }

// StartProcess starts bin with args, logging to logDir/name.log.
func StartProcess(name, bin string, args []string, logDir string) (*Process, error) {
	p, err := startProcess(name, bin, args, logDir, false)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) { p.p.stop(grace) }

// Kill sends SIGKILL, as a node crash or OOM kill would, and waits for the exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.p.pid, syscall.SIGKILL)
	<-p.p.exited
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.p.exited }

// LogPath is the file the process logs to.
func (p *Process) LogPath() string { return p.p.logPath }

// LogTail returns the last n lines of the process's log, or why it cannot.
func (p *Process) LogTail(n int) string {
	s, err := tailLines(p.p.logPath, n)
	if err != nil {
		return err.Error()
	}
	return s
}
