package kubeletsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// The test binary doubles as the container and the hook, chosen by
// $KUBELETSIM_ROLE; each appends what it sees to $TRACE.
func TestMain(m *testing.M) {
	switch os.Getenv("KUBELETSIM_ROLE") {
	case "app":
		runApp()
	case "hook":
		runHook()
	default:
		os.Exit(m.Run())
	}
}

func trace(what string) {
	f, err := os.OpenFile(os.Getenv("TRACE"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(3)
	}
	fmt.Fprintln(f, what)
	f.Close()
}

// runApp records SIGTERM, then exits 0 or, with IGNORE_TERM, waits for
// SIGKILL. With MESSAGE it writes that many bytes of termination message.
func runApp() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	trace("app started")
	<-term
	trace("app got SIGTERM")
	if n := os.Getenv("MESSAGE"); n != "" {
		var size int
		fmt.Sscan(n, &size)
		msg := strings.Repeat("x", size-4) + "tail"
		_ = os.WriteFile(os.Getenv("MESSAGE_PATH"), []byte(msg), 0o644)
	}
	if os.Getenv("IGNORE_TERM") != "" {
		blockForever()
	}
	os.Exit(0)
}

// runHook sleeps HOOK_SLEEP (forever if "forever") and exits HOOK_EXIT.
func runHook() {
	trace("hook started")
	if d := os.Getenv("HOOK_SLEEP"); d == "forever" {
		blockForever()
	} else if dur, err := time.ParseDuration(d); err == nil {
		time.Sleep(dur) // the hook's own work, not a test waiting
	}
	trace("hook ended")
	if os.Getenv("HOOK_EXIT") != "" {
		os.Exit(1)
	}
}

// blockForever waits for SIGKILL. A bare `select {}` does not: with no
// other goroutine alive the runtime declares a deadlock and exits 2, which
// made the hook "fail" by itself at a random moment.
func blockForever() {
	for {
		time.Sleep(time.Hour)
	}
}

type fixture struct {
	spec      Spec
	tracePath string
}

func newFixture(t *testing.T, env ...string) *fixture {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{tracePath: filepath.Join(dir, "trace")}
	base := append([]string{"TRACE=" + f.tracePath, "MESSAGE_PATH=" + filepath.Join(dir, "termination-log")}, env...)
	f.spec = Spec{
		Command:                []string{"env", "KUBELETSIM_ROLE=app", exe},
		PreStop:                []string{"env", "KUBELETSIM_ROLE=hook", exe},
		Env:                    base,
		TerminationMessagePath: filepath.Join(dir, "termination-log"),
	}
	return f
}

func (f *fixture) start(t *testing.T, clk clock.Clock) *Container {
	t.Helper()
	c, err := Start(f.spec, clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.kill(nil) })
	f.waitTrace(t, "app started") // signal handler installed
	return c
}

func (f *fixture) lines() []string {
	b, _ := os.ReadFile(f.tracePath)
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (f *fixture) waitTrace(t *testing.T, want string) {
	t.Helper()
	want = strings.ReplaceAll(want, " ", "_")
	poll(t, func() bool {
		for _, l := range f.lines() {
			if l == want {
				return true
			}
		}
		return false
	}, "trace line %q", want)
}

func poll(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func terminate(t *testing.T, c *Container, grace time.Duration) <-chan *Termination {
	done := make(chan *Termination, 1)
	go func() {
		term, err := c.Terminate(context.Background(), grace)
		if err != nil {
			t.Error(err)
		}
		done <- term
	}()
	return done
}

func TestHookRunsFirstThenSIGTERMWithTheGraceLeft(t *testing.T) {
	f := newFixture(t, "HOOK_SLEEP=300ms")
	c := f.start(t, clock.RealClock{})
	term, err := c.Terminate(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.lines(), " "); got != "app_started hook_started hook_ended app_got_SIGTERM" {
		t.Errorf("order: %s", got)
	}
	if !term.HookCompleted || term.HookErr != nil || term.Killed || term.ExitCode != 0 {
		t.Errorf("termination %+v", term)
	}
	if term.HookDuration < 300*time.Millisecond || term.StopGrace != 10*time.Second-term.HookDuration {
		t.Errorf("hook took %s, SIGTERM got %s; want grace − hook", term.HookDuration, term.StopGrace)
	}
}

// The kubelet's own example of the seed article: a hook that uses the whole
// grace. The hook is not cancelled; SIGTERM comes at the end of the grace
// with the 2 s minimum, then SIGKILL takes the container and the hook.
func TestOverrunningHookLeavesTheMinimumThenSIGKILL(t *testing.T) {
	f := newFixture(t, "HOOK_SLEEP=forever", "IGNORE_TERM=1")
	clk := clocktesting.NewFakeClock(time.Now())
	c := f.start(t, clk)
	done := terminate(t, c, 5*time.Second)

	f.waitTrace(t, "hook started")
	poll(t, clk.HasWaiters, "the grace timer")
	clk.Step(5*time.Second - time.Millisecond)
	if strings.Contains(strings.Join(f.lines(), " "), "SIGTERM") {
		t.Fatal("SIGTERM before the grace ran out")
	}
	clk.Step(time.Millisecond)
	f.waitTrace(t, "app got SIGTERM")
	poll(t, clk.HasWaiters, "the stop timer")
	clk.Step(MinimumGracePeriod)
	term := <-done

	if term.HookCompleted || term.HookDuration != 5*time.Second || term.StopGrace != MinimumGracePeriod || !term.Killed || term.ExitCode != -1 {
		t.Errorf("termination %+v", term)
	}
	if term.HookErr == nil || !hasEvent(term, ReasonFailedPreStopHook) {
		t.Errorf("a hook killed with its container is a failed hook: %v %v", term.HookErr, term.Events)
	}
	if term.Elapsed != 7*time.Second {
		t.Errorf("took %s, want grace + 2s", term.Elapsed)
	}
	if strings.Contains(strings.Join(f.lines(), " "), "hook_ended") {
		t.Error("the hook went on after the container died")
	}
}

func TestShortGraceLeftIsRaisedToTwoSeconds(t *testing.T) {
	for _, grace := range []time.Duration{0, time.Second} {
		t.Run(grace.String(), func(t *testing.T) {
			f := newFixture(t, "IGNORE_TERM=1")
			clk := clocktesting.NewFakeClock(time.Now())
			c := f.start(t, clk)
			done := terminate(t, c, grace)
			f.waitTrace(t, "app got SIGTERM")
			poll(t, clk.HasWaiters, "the stop timer")
			clk.Step(MinimumGracePeriod)
			term := <-done
			if term.StopGrace != MinimumGracePeriod || !term.Killed {
				t.Errorf("termination %+v", term)
			}
			if ran := strings.Contains(strings.Join(f.lines(), " "), "hook"); ran != (grace > 0) || term.HookRan != (grace > 0) {
				t.Errorf("grace %s: hook ran = %v; the kubelet runs it only with grace > 0", grace, ran)
			}
		})
	}
}

func TestFailedHookIsAnEventAndTerminationGoesOn(t *testing.T) {
	f := newFixture(t, "HOOK_EXIT=1")
	c := f.start(t, clock.RealClock{})
	term, err := c.Terminate(context.Background(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if !errors.As(term.HookErr, &exitErr) || !hasEvent(term, ReasonFailedPreStopHook) || term.ExitCode != 0 {
		t.Errorf("termination %+v", term)
	}
	for _, e := range term.Events {
		if e.Reason == ReasonFailedPreStopHook && e.Message != "PreStopHook failed" {
			t.Errorf("event message %q leaks detail", e.Message)
		}
	}
}

func TestTerminationMessageIsTheFilesLast4096Bytes(t *testing.T) {
	f := newFixture(t, "MESSAGE=5000")
	f.spec.PreStop = nil
	c := f.start(t, clock.RealClock{})
	term, err := c.Terminate(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(term.Message) != MaxTerminationMessage || !strings.HasSuffix(term.Message, "tail") {
		t.Errorf("message: %d bytes ending %q", len(term.Message), term.Message[len(term.Message)-4:])
	}
}

func hasEvent(t *Termination, reason string) bool {
	for _, e := range t.Events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}
