package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/node/logind"
)

const testNode = "node-a"

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// fakeLogind grants a fixed delay and lets the test send events; it counts
// releases of the lock handed to each shutdown.
type fakeLogind struct {
	granted  time.Duration
	events   chan logind.Event
	mu       sync.Mutex
	released int
}

func newFakeLogind(granted time.Duration) *fakeLogind {
	return &fakeLogind{granted: granted, events: make(chan logind.Event, 4)}
}

func (f *fakeLogind) EnsureInhibitDelay(_ context.Context, want time.Duration) (logind.Delay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return logind.Delay{Requested: want, Before: f.granted, Granted: f.granted}, nil
}

// restart plays a logind restart after which it grants granted.
func (f *fakeLogind) restart(granted time.Duration) {
	f.mu.Lock()
	f.granted = granted
	f.mu.Unlock()
	f.events <- logind.Event{Kind: logind.LogindRestarted}
}

func (f *fakeLogind) Events() <-chan logind.Event { return f.events }

func (f *fakeLogind) startShutdown() {
	var once sync.Once
	f.events <- logind.Event{Kind: logind.ShutdownStarted, Release: func() error {
		once.Do(func() {
			f.mu.Lock()
			f.released++
			f.mu.Unlock()
		})
		return nil
	}}
}

func (f *fakeLogind) releases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released
}

// behaviour is how the fake API server treats a pod's eviction.
type behaviour int

const (
	leaves  behaviour = iota // evicted and gone at once (exits promptly)
	stays                    // evicted, but uses its whole grace (still there)
	blocked                  // refused with 429, as a PDB at its minimum does
	hangs                    // the request never returns (until the test ends)
)

// call is one eviction or delete the agent sent.
type call struct {
	verb  string // "evict" or "delete"
	pod   string
	grace int64
	uid   types.UID
	at    time.Time // on the fake clock
}

// harness is an Agent on a fake API server, a fake logind and a fake clock.
type harness struct {
	t      *testing.T
	cs     *fake.Clientset
	clock  *testclock.FakeClock
	logind *fakeLogind
	rec    *record.FakeRecorder
	agent  *Agent
	logs   *syncBuffer
	start  time.Time

	hung chan struct{} // closed when the test ends: hanging requests return

	mu    sync.Mutex
	how   map[string]behaviour
	calls []call
	done  chan error
}

func newHarness(t *testing.T, cfg Config, granted time.Duration, runs RunStarter, objs ...runtime.Object) *harness {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-1"}}}
	h := &harness{
		t:      t,
		cs:     fake.NewClientset(append([]runtime.Object{node}, objs...)...),
		clock:  testclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		logind: newFakeLogind(granted),
		rec:    record.NewFakeRecorder(1000),
		logs:   &syncBuffer{},
		how:    map[string]behaviour{},
		hung:   make(chan struct{}),
	}
	h.start = h.clock.Now()
	h.cs.PrependReactor("create", "pods", h.onEvict)
	h.cs.PrependReactor("delete", "pods", h.onDelete)
	cfg.NodeName = testNode
	a, err := NewAgent(cfg, h.cs, h.logind, Options{
		Runs: runs, Recorder: h.rec, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.evictor.backoff.Jitter = 0 // deterministic retries on the fake clock
	h.agent = a
	return h
}

// run starts the agent until the test ends and waits until it is ready.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.done = make(chan error, 1)
	go func() { h.done <- h.agent.Run(ctx) }()
	h.t.Cleanup(func() {
		close(h.hung)
		cancel()
		if err := <-h.done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	h.eventually("the agent to be ready", func() bool { return h.logs.contains("logind inhibit delay") || h.logs.contains("logind grants less") })
}

func (h *harness) set(name string, b behaviour) {
	h.mu.Lock()
	h.how[name] = b
	h.mu.Unlock()
}

func (h *harness) onEvict(action k8stesting.Action) (bool, runtime.Object, error) {
	ca, ok := action.(k8stesting.CreateAction)
	if !ok || action.GetSubresource() != "eviction" {
		return false, nil, nil
	}
	ev := ca.GetObject().(*policyv1.Eviction)
	h.mu.Lock()
	h.calls = append(h.calls, newCall("evict", ev.Name, ev.DeleteOptions, h.clock.Now()))
	how := h.how[ev.Name]
	h.mu.Unlock()
	switch how {
	case hangs:
		<-h.hung
		return true, nil, context.Canceled
	case blocked:
		return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	case stays:
		return true, nil, nil
	}
	if err := h.cs.Tracker().Delete(podsGVR, ev.Namespace, ev.Name); err != nil {
		return true, nil, err
	}
	return true, nil, nil
}

func (h *harness) onDelete(action k8stesting.Action) (bool, runtime.Object, error) {
	da := action.(k8stesting.DeleteAction)
	opts := da.GetDeleteOptions()
	h.mu.Lock()
	h.calls = append(h.calls, newCall("delete", da.GetName(), &opts, h.clock.Now()))
	h.mu.Unlock()
	return false, nil, nil // the tracker deletes it
}

func newCall(verb, pod string, o *metav1.DeleteOptions, at time.Time) call {
	c := call{verb: verb, pod: pod, at: at}
	if o != nil && o.GracePeriodSeconds != nil {
		c.grace = *o.GracePeriodSeconds
	}
	if o != nil && o.Preconditions != nil && o.Preconditions.UID != nil {
		c.uid = *o.Preconditions.UID
	}
	return c
}

func (h *harness) callsSnapshot() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]call(nil), h.calls...)
}

// firstCall returns the first call for pod, if any.
func (h *harness) firstCall(pod, verb string) (call, bool) {
	for _, c := range h.callsSnapshot() {
		if c.pod == pod && c.verb == verb {
			return c, true
		}
	}
	return call{}, false
}

// eventually polls cond (real time) until it holds or 10 s pass.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		h.t.Fatalf("waiting for %s: %v\nlogs:\n%s", what, err, h.logs.String())
	}
}

// advance steps the fake clock by step whenever the agent waits on at least
// waiters timers (so it is idle: no step lands while it works), until cond
// holds; it fails after limit of fake time.
func (h *harness) advance(step, limit time.Duration, waiters int, what string, cond func() bool) {
	h.t.Helper()
	end := h.clock.Now().Add(limit)
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		if cond() {
			return true, nil
		}
		if h.clock.Now().After(end) {
			return false, nil
		}
		if h.clock.Waiters() >= waiters {
			h.clock.Step(step)
		}
		return false, nil
	})
	if err != nil || !cond() {
		h.t.Fatalf("waiting for %s (fake clock at +%s): %v\nlogs:\n%s", what, h.clock.Since(h.start), err, h.logs.String())
	}
}

func (h *harness) node() *corev1.Node {
	h.t.Helper()
	n, err := h.cs.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// events drains the recorder's events so far.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

type podOpt func(*corev1.Pod)

func withGrace(s int64) podOpt {
	return func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To(s) }
}
func withPriority(v int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Priority = ptr.To(v) }
}
func ownedBy(kind string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: "owner", UID: "owner-uid", Controller: ptr.To(true)}}
	}
}
func withPhase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func mirror() podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{mirrorAnnotation: "hash"} }
}

func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: testNode},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }
