package prestop

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func sampleSummary() *Summary {
	return &Summary{
		Namespace: "shop", Pod: "cart-7d9f8",
		Budget:  Budget{Total: 30 * time.Second, Source: "deletionTimestamp 2025-03-01T12:00:30Z"},
		Reserve: 10 * time.Second, Elapsed: 20*time.Second + 3*time.Millisecond,
		Steps: []StepResult{
			{Step: StepDrain, Status: StatusDone, Required: true, Duration: 12 * time.Millisecond, Detail: "POST http://127.0.0.1:8080/drain: 204 No Content"},
			{Step: StepWait, Status: StatusFailed, Duration: 5 * time.Second, Detail: "2 connection(s) still established on :8080: context deadline exceeded"},
			{Step: StepSave, Status: StatusFailed, Required: true, Duration: 14*time.Second + 991*time.Millisecond, Attempts: 9,
				Detail: "gave up: context deadline exceeded; last attempt: PUT http://lastcall.lastcall-system/v1/state/shop/cart: 503 Service Unavailable: Unavailable: blob store down"},
			{Step: StepRun, Status: StatusSkipped, Required: true, Detail: "no budget left: the steps' deadline (+20s) passed"},
		},
	}
}

func TestSummaryMatchesGolden(t *testing.T) {
	got := sampleSummary().String()
	path := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readFile(t, path); got != want {
		t.Errorf("summary changed (go test -run %s -update to accept):\ngot:\n%s\nwant:\n%s", t.Name(), got, want)
	}
}

func TestSummaryErrNamesTheRequiredStepsNotDone(t *testing.T) {
	err := sampleSummary().Err()
	if !errors.Is(err, ErrStepFailed) || !strings.HasSuffix(err.Error(), ": save, run") {
		t.Errorf("Err() = %v", err)
	}
	ok := &Summary{Steps: []StepResult{{Step: StepWait, Status: StatusFailed}, {Step: StepSave, Status: StatusDone, Required: true}}}
	if err := ok.Err(); err != nil {
		t.Errorf("optional failure made Err() = %v", err)
	}
}

// The kubelet keeps the last 4096 bytes of the termination message: a longer
// summary would lose its first line, the one that says what failed.
func TestSummaryFitsTheTerminationMessageWithItsHeadFirst(t *testing.T) {
	s := sampleSummary()
	s.Budget.Source = strings.Repeat("ş", 3000)
	for i := range s.Steps {
		s.Steps[i].Detail = strings.Repeat("é", 5000)
	}
	got := s.String()
	if len(got) > MaxMessage {
		t.Fatalf("%d bytes", len(got))
	}
	if !utf8.ValidString(got) {
		t.Error("cut inside a rune")
	}
	if !strings.HasPrefix(got, "lastcall prestop shop/cart-7d9f8: FAILED [save run]") {
		t.Errorf("head line lost: %.80q", got)
	}
	for _, st := range Steps {
		if !strings.Contains(got, "  "+string(st)+" ") {
			t.Errorf("step %s lost", st)
		}
	}
}
