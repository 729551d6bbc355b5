package prestop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"k8s.io/utils/clock"
)

const notConfigured = "not configured"

// Hook runs the preStop steps for one container.
type Hook struct {
	cfg    Config
	clock  clock.Clock
	log    *slog.Logger
	stdout io.Writer
	http   *http.Client
}

// NewHook returns a hook for cfg (zero fields mean their defaults). clk gives
// the time the budget is counted from and paces retries and polls; log gets
// progress; stdout gets the summary.
func NewHook(cfg Config, clk clock.Clock, log *slog.Logger, stdout io.Writer) *Hook {
	// No client timeout: every request runs under the steps' deadline.
	return &Hook{cfg: cfg.withDefaults(), clock: clk, log: log, stdout: stdout, http: &http.Client{}}
}

// Run runs the configured steps in order, each one ending by
// start + budget − reserve, writes the summary and returns it. A step runs
// even when an earlier one failed: saving state matters more than a failed
// drain. The error is ErrStepFailed (wrapped) when a required step was not
// done. Run is safe to repeat: the kubelet delivers hooks at least once.
func (h *Hook) Run(ctx context.Context) (*Summary, error) {
	if h.cfg.CAFile != "" {
		c, err := clientFor(h.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		h.http = c
	}
	defer h.http.CloseIdleConnections()
	start := h.clock.Now()
	sum := &Summary{Namespace: h.cfg.Namespace, Pod: h.cfg.Pod, Reserve: h.cfg.Reserve}
	cfgErr := h.cfg.validate()
	if cfgErr == nil {
		sum.Budget = h.resolveBudget(ctx, start)
	} else {
		sum.Budget = Budget{Source: "not read: configuration error"}
	}
	stepsBudget := sum.Budget.Total - h.cfg.Reserve
	stepsCtx, cancel := context.WithTimeout(ctx, stepsBudget-h.clock.Since(start))
	defer cancel()

	for _, st := range Steps {
		r := StepResult{Step: st, Required: h.configured(st) && !slices.Contains(h.cfg.Optional, st)}
		switch {
		case !h.configured(st):
			r.Status, r.Detail = StatusSkipped, notConfigured
		case cfgErr != nil:
			r.Status, r.Detail = StatusFailed, "configuration: "+cfgErr.Error()
		case stepsBudget <= 0:
			r.Status = StatusSkipped
			r.Detail = fmt.Sprintf("no budget: budget %s − reserve %s ≤ 0", round(sum.Budget.Total), round(h.cfg.Reserve))
		case ctx.Err() != nil:
			r.Status, r.Detail = StatusSkipped, "cancelled: "+context.Cause(ctx).Error()
		case stepsCtx.Err() != nil:
			r.Status = StatusSkipped
			r.Detail = fmt.Sprintf("no budget left: the steps' deadline (+%s) passed", round(stepsBudget))
		default:
			h.runStep(stepsCtx, &r)
		}
		if h.configured(st) {
			h.log.Info("prestop step", "pod", h.cfg.Pod, "namespace", h.cfg.Namespace, "step", st, "status", r.Status, "duration", r.Duration, "detail", r.Detail)
		}
		sum.Steps = append(sum.Steps, r)
	}
	sum.Elapsed = h.clock.Since(start)
	if err := sum.write(h.stdout, h.log, h.cfg.TerminationMessagePath, h.cfg.ConsolePath); err != nil {
		h.log.Warn("write summary to stdout", "err", err)
	}
	return sum, sum.Err()
}

func (h *Hook) configured(st Step) bool {
	switch st {
	case StepDrain:
		return h.cfg.DrainURL != ""
	case StepWait:
		return len(h.cfg.Ports) > 0
	case StepSave:
		return len(h.cfg.Save) > 0
	case StepRun:
		return h.cfg.RunURL != ""
	}
	return false
}

// runStep runs one step under its share of the time left and records the
// outcome in r.
func (h *Hook) runStep(ctx context.Context, r *StepResult) {
	ctx, cancel := context.WithTimeout(ctx, h.stepCap(ctx, r.Step))
	defer cancel()
	begin := h.clock.Now()
	var err error
	switch r.Step {
	case StepDrain:
		r.Detail, r.Attempts, err = h.drain(ctx)
	case StepWait:
		r.Detail, err = h.waitIdle(ctx)
	case StepSave:
		var res uploadResult
		res, err = h.upload(ctx)
		r.Attempts, r.Bytes = res.attempts, res.saved.Size
		if err == nil {
			r.Detail = fmt.Sprintf("%s in %d files → %s/%s version %s (sha256 %.12s)",
				byteSize(res.saved.Size), res.stats.files, res.saved.Namespace, res.saved.Key, res.saved.Version, res.saved.SHA256)
		}
	case StepRun:
		r.Detail, r.Attempts, err = h.requestRun(ctx)
	}
	r.Duration = h.clock.Since(begin)
	r.Status = StatusDone
	if err != nil {
		r.Status, r.Detail = StatusFailed, err.Error()
	}
}

// stepCap is how long one step may take: its configured cap, or a share of
// what is left so that the drain and wait steps cannot starve the save.
func (h *Hook) stepCap(ctx context.Context, st Step) time.Duration {
	deadline, _ := ctx.Deadline() // the steps' context always has one
	left := time.Until(deadline)
	switch st {
	case StepDrain:
		if h.cfg.DrainTimeout > 0 {
			return h.cfg.DrainTimeout
		}
		return left / 4
	case StepWait:
		if h.cfg.WaitTimeout > 0 {
			return h.cfg.WaitTimeout
		}
		if h.configured(StepSave) || h.configured(StepRun) {
			return left / 2
		}
	}
	return left
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
