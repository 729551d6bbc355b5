package scenario

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Stages of the scenario, in order.
const (
	StageStart      = "starting lastcall server and Flagger"
	StageInitialize = "Flagger initializes the canary (creates " + Primary + ")"
	StageAnalysis   = "v2 released: Flagger analyses the canary, then asks the gate"
	StageRollout    = "v2 released: Flagger analyses, asks the gate and promotes"
	StageKill       = "killing lastcall server mid-run (SIGKILL)"
	StageRestart    = "restarting lastcall server"
	StageFailing    = "a pod's drain fails: the attempt fails, the gate must hold"
	StagePromote    = "pod recovered: the retry drains it, then Flagger may promote"
	StageCleanup    = "old primary pods leave"
	StageDone       = "done"
)

// Run plays the scenario and returns what happened. On an error the Report
// holds everything seen until then.
func (s *Scenario) Run(ctx context.Context) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	s.mu.Lock()
	s.report.Start = time.Now()
	s.mu.Unlock()
	type step struct {
		stage string
		do    func(context.Context) error
	}
	steps := []step{
		{StageStart, s.start},
		{StageInitialize, s.initialize},
		{StageAnalysis, s.releaseAndWaitForDrain},
		{StageKill, s.kill},
		{StageRestart, s.restart},
		{StageFailing, s.waitHoldingFailedRun},
		{StagePromote, s.waitPromoted},
		{StageCleanup, s.waitOldPodsGone},
	}
	if s.cfg.Mode != ModeBlueGreen {
		steps = []step{
			{StageStart, s.start},
			{StageInitialize, s.initialize},
			{StageRollout, func(ctx context.Context) error {
				if err := s.release(ctx); err != nil {
					return err
				}
				return s.waitPromoted(ctx)
			}},
			{StageCleanup, s.waitOldPodsGone},
		}
	}
	for _, st := range steps {
		s.setStage(st.stage)
		if err := st.do(ctx); err != nil {
			return s.finish(ctx), fmt.Errorf("%s: %w", st.stage, err)
		}
	}
	s.setStage(StageDone)
	return s.finish(ctx), nil
}

func (s *Scenario) start(ctx context.Context) error {
	if err := s.startAll(ctx); err != nil {
		return err
	}
	ns := s.cfg.Namespace
	if _, err := s.cs.AppsV1().Deployments(ns).Create(ctx, deployment(s.cfg.Replicas), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	pol := policy(s.cfg.Mode, s.cfg.RetryBackoff)
	pol.Namespace = ns
	if err := s.c.Create(ctx, pol); err != nil {
		return fmt.Errorf("create policy: %w", err)
	}
	if _, err := s.dyn.Resource(canaryGVR).Namespace(ns).Create(ctx, canary(s.cfg.Mode, ns, s.cfg.Interval, s.gateURL), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create canary: %w", err)
	}
	return nil
}

func (s *Scenario) initialize(ctx context.Context) error {
	err := s.waitFor(ctx, 2*time.Minute, "canary Initialized", func() (bool, error) {
		return s.canaryPhase() == "Initialized", nil
	})
	s.mark(&s.report.Initialized)
	return err
}

// releaseAndWaitForDrain picks the pod that will fail, rolls out v2 and
// waits until the gate's run is draining a healthy old pod.
func (s *Scenario) releaseAndWaitForDrain(ctx context.Context) error {
	if err := s.release(ctx); err != nil {
		return err
	}
	return s.waitFor(ctx, 3*time.Minute, "the gate run to drain a pod", func() (bool, error) {
		select {
		case <-s.inFlight:
			return true, nil
		default:
			return false, nil
		}
	})
}

// release records the old primary pods (in the main scenario the last one
// is to fail its drain) and rolls out v2.
func (s *Scenario) release(ctx context.Context) error {
	var old []string
	for _, p := range s.pods.records() {
		if p.App == Primary && p.DeletionSeen.IsZero() && p.IP != "" {
			old = append(old, p.Name)
		}
	}
	if len(old) < 2 {
		return fmt.Errorf("want at least 2 served %s pods, have %v", Primary, old)
	}
	sort.Strings(old)
	s.mu.Lock()
	s.report.OldPrimary = old
	if s.cfg.Mode == ModeBlueGreen {
		s.report.FailingPod = old[len(old)-1]
	}
	s.mu.Unlock()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := s.cs.AppsV1().Deployments(s.cfg.Namespace).Get(ctx, App, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image("2.0")
		_, err = s.cs.AppsV1().Deployments(s.cfg.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("release v2: %w", err)
	}
	s.mark(&s.report.Released)
	s.logf("released %s (failing pod: %s)", image("2.0"), orDash(s.report.FailingPod))
	return nil
}

func (s *Scenario) kill(ctx context.Context) error {
	s.lastcallUp.Store(false)
	s.lastcall.kill()
	s.mark(&s.report.Killed)
	close(s.killed)
	r := s.gateRun()
	if r == nil {
		return fmt.Errorf("no gate run although a pod was being drained")
	}
	// Read the run as stored at the kill, not as a watch last delivered it.
	if err := s.c.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
		return err
	}
	s.mu.Lock()
	s.report.RunAtKill = r
	s.mu.Unlock()
	return nil
}

func (s *Scenario) restart(ctx context.Context) error {
	err := s.lastcall.start(ctx)
	s.lastcallUp.Store(err == nil)
	s.mark(&s.report.Restarted)
	return err
}

// waitHoldingFailedRun waits until an attempt of the run has failed and
// Flagger has since been told "not yet", then lets the failing pod drain so
// that the exit handler's retry succeeds.
func (s *Scenario) waitHoldingFailedRun(ctx context.Context) error {
	err := s.waitFor(ctx, 2*time.Minute, "a failed attempt, then a gate check", func() (bool, error) {
		failed := s.obs.firstFailure()
		if failed.IsZero() {
			return false, nil
		}
		for _, c := range s.gate.all() {
			if c.At.After(failed) && c.Err == "" && !c.Open() {
				s.mu.Lock()
				s.report.RunFailed, s.report.HeldAfterFailure = failed, c
				s.mu.Unlock()
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	phase := s.canaryPhase() // not under s.mu: the observer logs under its lock
	s.mu.Lock()
	s.report.CanaryWhileFailed = phase
	s.mu.Unlock()
	s.recovered.Store(true)
	s.mark(&s.report.Recovered)
	s.logf("pod %s drains again", s.report.FailingPod)
	return nil
}

func (s *Scenario) waitPromoted(ctx context.Context) error {
	err := s.waitFor(ctx, 3*time.Minute, "canary Succeeded", func() (bool, error) {
		switch s.canaryPhase() {
		case "Succeeded":
			return true, nil
		case "Failed":
			return false, fmt.Errorf("canary rolled back (Failed)")
		}
		return false, nil
	})
	s.mark(&s.report.Promoted)
	return err
}

func (s *Scenario) waitOldPodsGone(ctx context.Context) error {
	err := s.waitFor(ctx, time.Minute, "old primary pods to be removed", func() (bool, error) {
		old := map[string]bool{}
		for _, n := range s.report.OldPrimary {
			old[n] = true
		}
		for _, p := range s.pods.records() {
			if old[p.Name] && p.Gone.IsZero() {
				return false, nil
			}
		}
		return true, nil
	})
	s.mark(&s.report.OldPodsGone)
	return err
}

func (s *Scenario) canaryPhase() string {
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	return s.obs.canary.Phase
}

func (s *Scenario) mark(t *time.Time) {
	s.mu.Lock()
	*t = time.Now()
	s.mu.Unlock()
}
