package kubeletsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/utils/clock"
)

// MinimumGracePeriod is the kubelet's minimumGracePeriodInSeconds: the
// least a container gets between SIGTERM and SIGKILL.
const MinimumGracePeriod = 2 * time.Second

// MaxTerminationMessage is the kubelet's MaxContainerTerminationMessageLength.
const MaxTerminationMessage = 4096

// Event reasons, as the kubelet records them.
const (
	ReasonKilling           = "Killing"
	ReasonFailedPreStopHook = "FailedPreStopHook"
)

// Spec is one container.
type Spec struct {
	// Command runs as the container's main process (its PID 1).
	Command []string
	// PreStop is the preStop exec hook's command; nil for none. It gets the
	// container's Env and Dir, as an exec in the container would.
	PreStop []string
	// Env is the container's environment; nil means the test process's.
	Env []string
	Dir string
	// Stdout and Stderr receive the container's output (its log).
	Stdout, Stderr io.Writer
	// HookOutput receives the hook's stdout and stderr.
	HookOutput io.Writer
	// TerminationMessagePath is read when the container has ended.
	TerminationMessagePath string
}

// Event is a kubelet event for the container, At counted from Terminate.
type Event struct {
	At      time.Duration
	Type    string // Normal or Warning
	Reason  string
	Message string
}

// Termination is what Terminate did.
type Termination struct {
	Grace         time.Duration // as given
	HookRan       bool
	HookCompleted bool          // the hook ended within the grace
	HookDuration  time.Duration // what the kubelet subtracts: until it ended or the grace ran out
	HookErr       error         // the hook failed, or died with the container
	StopGrace     time.Duration // time between SIGTERM and SIGKILL
	Killed        bool          // SIGKILL was needed
	ExitCode      int           // -1 when a signal ended the main process
	Elapsed       time.Duration
	Events        []Event
	Message       string // the termination message
}

// Container is a running container.
type Container struct {
	spec   Spec
	clock  clock.Clock
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs spec.Command. clk paces the grace periods; tests can step a
// fake one instead of waiting.
func Start(spec Spec, clk clock.Clock) (*Container, error) {
	if len(spec.Command) == 0 {
		return nil, errors.New("kubeletsim: empty command")
	}
	cmd := newCmd(spec, spec.Command, spec.Stdout, spec.Stderr)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Command[0], err)
	}
	c := &Container{spec: spec, clock: clk, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(c.exited)
	}()
	return c, nil
}

// Pid is the main process's pid.
func (c *Container) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the main process has ended.
func (c *Container) Exited() <-chan struct{} { return c.exited }

// Terminate stops the container as the kubelet would with this grace
// period; see the package doc. It returns when the container and its hook
// are gone. If ctx ends first, everything is killed and ctx's error
// returned.
func (c *Container) Terminate(ctx context.Context, grace time.Duration) (*Termination, error) {
	start := c.clock.Now()
	t := &Termination{Grace: grace}
	event := func(typ, reason, msg string) {
		t.Events = append(t.Events, Event{At: c.clock.Since(start), Type: typ, Reason: reason, Message: msg})
	}
	event("Normal", ReasonKilling, "Stopping container")
	defer c.killGroup() // the container's other processes die with it

	left := grace
	var hook *exec.Cmd
	hookDone := make(chan error, 1)
	if len(c.spec.PreStop) > 0 && grace > 0 {
		t.HookRan = true
		hook = newCmd(c.spec, c.spec.PreStop, c.spec.HookOutput, c.spec.HookOutput)
		if err := hook.Start(); err != nil {
			hook = nil
			hookDone <- err
		} else {
			go func() { hookDone <- hook.Wait() }()
		}
		select {
		case err := <-hookDone:
			t.HookCompleted = true
			t.HookErr = err
			if err != nil {
				// Like the kubelet: no detail, so that no secret leaks.
				event("Warning", ReasonFailedPreStopHook, "PreStopHook failed")
			}
		case <-c.clock.After(grace):
			// Not cancelled: the hook goes on until the container dies.
		case <-ctx.Done():
			c.kill(hook)
			return t, ctx.Err()
		}
		t.HookDuration = c.clock.Since(start)
		left = grace - t.HookDuration
	}
	t.StopGrace = max(left, MinimumGracePeriod)

	// StopContainer: SIGTERM to the main process only, as the runtime
	// signals the container's PID 1.
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-c.clock.After(t.StopGrace):
		t.Killed = true
		c.killGroup()
		<-c.exited
	case <-ctx.Done():
		c.kill(hook)
		return t, ctx.Err()
	}
	if hook != nil && !t.HookCompleted {
		c.kill(hook)
		t.HookErr = <-hookDone
		event("Warning", ReasonFailedPreStopHook, "PreStopHook failed")
	}
	t.ExitCode = c.cmd.ProcessState.ExitCode()
	t.Message = readAtMost(c.spec.TerminationMessagePath, MaxTerminationMessage)
	t.Elapsed = c.clock.Since(start)
	return t, nil
}

// kill ends the container and hook at once (the test is giving up).
func (c *Container) kill(hook *exec.Cmd) {
	c.killGroup()
	if hook != nil {
		_ = syscall.Kill(-hook.Process.Pid, syscall.SIGKILL)
	}
	<-c.exited
}

func (c *Container) killGroup() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

// newCmd runs argv in its own process group, standing in for a cgroup: a
// SIGKILL to the group reaches every process the command started.
func newCmd(spec Spec, argv []string, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Children that keep the output pipes open must not block Wait.
	cmd.WaitDelay = time.Second
	return cmd
}

// readAtMost is the kubelet's tail.ReadAtMost: the last max bytes.
func readAtMost(path string, max int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return ""
	}
	if _, err := f.Seek(-min(max, fi.Size()), io.SeekEnd); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
