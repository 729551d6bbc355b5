package prestop

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxMessage is the kubelet's limit on a termination message: it keeps the
// last 4096 bytes of the file, so a longer summary would lose its head line.
const MaxMessage = 4096

// maxDetail keeps one step's line short enough that four fit in MaxMessage
// with the header, whatever an error message holds.
const maxDetail = 700

// Status is the outcome of one step.
type Status string

// The outcomes of a step.
const (
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped" // not configured, or no budget left
)

// StepResult is one step's line in the summary.
type StepResult struct {
	Step     Step
	Status   Status
	Required bool // configured and not --optional: its failure fails the hook
	Duration time.Duration
	Bytes    int64 // uploaded (save)
	Attempts int
	Detail   string // what happened, or why it failed or was skipped
}

// Summary is what the hook did, written where a person will look: the
// termination message, the container's log and stdout.
type Summary struct {
	Namespace, Pod string
	Budget         Budget
	Reserve        time.Duration
	Elapsed        time.Duration
	Steps          []StepResult
}

// Failed lists the required steps that were not done.
func (s *Summary) Failed() []Step {
	var failed []Step
	for _, r := range s.Steps {
		if r.Required && r.Status != StatusDone {
			failed = append(failed, r.Step)
		}
	}
	return failed
}

// Err is nil when every required step was done.
func (s *Summary) Err() error {
	failed := s.Failed()
	if len(failed) == 0 {
		return nil
	}
	names := make([]string, len(failed))
	for i, f := range failed {
		names[i] = string(f)
	}
	return fmt.Errorf("%w: %s", ErrStepFailed, strings.Join(names, ", "))
}

// String renders the summary in at most MaxMessage bytes.
func (s *Summary) String() string {
	var b strings.Builder
	result := "OK"
	if failed := s.Failed(); len(failed) > 0 {
		result = fmt.Sprintf("FAILED %v", failed)
	}
	fmt.Fprintf(&b, "lastcall prestop %s/%s: %s in %s\n", s.Namespace, s.Pod, result, round(s.Elapsed))
	fmt.Fprintf(&b, "budget %s (%s), reserve %s: steps until +%s\n",
		round(s.Budget.Total), clip(s.Budget.Source, 200), round(s.Reserve), round(max(0, s.Budget.Total-s.Reserve)))
	for _, r := range s.Steps {
		dur := "-"
		if r.Status != StatusSkipped {
			dur = round(r.Duration).String()
		}
		detail := r.Detail
		if r.Attempts > 1 {
			detail += fmt.Sprintf(" (%d attempts)", r.Attempts)
		}
		opt := ""
		if r.Status != StatusDone && !r.Required && r.Detail != notConfigured {
			opt = " [optional]"
		}
		fmt.Fprintf(&b, "  %-6s %-8s %-8s %s%s\n", r.Step, r.Status, dur, clip(detail, maxDetail), opt)
	}
	return clip(b.String(), MaxMessage)
}

// write puts the summary on stdout, the termination message and the console
// (PID 1's stdout). Only stdout errors are returned: the others are logged
// and must not fail the hook.
func (s *Summary) write(stdout io.Writer, log *slog.Logger, terminationPath, consolePath string) error {
	text := s.String()
	if terminationPath != Off {
		// Truncate: a hook delivered twice leaves one summary, not two.
		if err := os.WriteFile(terminationPath, []byte(text), 0o644); err != nil {
			log.Warn("write termination message", "path", terminationPath, "err", err)
		}
	}
	if consolePath != Off {
		if err := appendFile(consolePath, text); err != nil {
			log.Warn("write summary to console", "path", consolePath, "err", err)
		}
	}
	_, err := io.WriteString(stdout, text)
	return err
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, text)
	return errors.Join(err, f.Close())
}

// clip cuts s to at most n bytes at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
