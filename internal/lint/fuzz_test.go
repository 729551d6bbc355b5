package lint

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzLoadAndCheck feeds arbitrary manifests to the parser and the rules:
// they must never panic, and every failure must be an InputError.
func FuzzLoadAndCheck(f *testing.F) {
	seed, _ := os.ReadFile("testdata/mistakes.yaml")
	f.Add(seed)
	f.Add([]byte(pod("60", `{exec: {command: ["sh", "-c", "sleep 55"]}}`)))
	f.Add([]byte(pod("30", `{exec: {command: ["lastcall-prestop", "--budget=45s", "--reserve", "1h"]}}`)))
	f.Add([]byte(`{"kind":"List","items":[{"kind":"Pod","spec":{"terminationGracePeriodSeconds":-5}}]}`))
	f.Add([]byte("kind: PodDisruptionBudget\nspec: {maxUnavailable: \"-%\", selector: {matchExpressions: [{key: a, operator: Bogus}]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Load("fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not an InputError", err, err)
			}
			return
		}
		fs := Check(objs, Options{NodeShutdownGrace: time.Minute})
		for _, f := range fs {
			if f.Rule == "" || f.Message == "" {
				t.Fatalf("empty finding %+v", f)
			}
		}
	})
}
