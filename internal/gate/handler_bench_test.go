package gate

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// staticLookup serves one object, as the informer's indexer would.
type staticLookup[T any] struct {
	namespace, name string
	obj             *T
}

func (l staticLookup[T]) get(_ context.Context, namespace, name string) (*T, error) {
	if namespace == l.namespace && name == l.name {
		return l.obj, nil
	}
	return nil, nil
}

// discardWriter is the least a ResponseWriter can do, so that the benchmark
// measures the mux and the handlers, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHandlers is the gate's own cost per check, without the network:
// what it adds to net/http's per-request work.
func BenchmarkHandlers(b *testing.B) {
	body := []byte(`{"name":"web","namespace":"shop","phase":"Progressing","checksum":"6d8f7b9c5"}`)
	p, err := DecodePayload(body)
	if err != nil {
		b.Fatal(err)
	}
	run := &v1alpha1.TerminationRun{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: RunName(p, HookConfirmPromotion), ResourceVersion: "7"},
		Status: v1alpha1.TerminationRunStatus{Phase: v1alpha1.RunSucceeded, PodsDone: 3, PodsTotal: 3}}
	gate := &v1alpha1.Gate{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: v1alpha1.GateSpec{Gate: v1alpha1.GateSwitch{State: v1alpha1.GateStateOpen}}}
	s := newServer(clients{
		Gates: staticLookup[v1alpha1.Gate]{"shop", "web", gate},
		Runs:  staticLookup[v1alpha1.TerminationRun]{"shop", run.Name, run},
	}, nil, nil, Options{Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	s.Register(mux)
	for name, path := range map[string]string{"check": "/gate/check", "flagger": "/flagger/gate"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _ := http.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				mux.ServeHTTP(&discardWriter{h: http.Header{}}, r)
			}
		})
	}
}
