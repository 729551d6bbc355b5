package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/lastcall-dev/lastcall/internal/devcluster/netns"
)

// DrainCall is one POST /drain a pod received.
type DrainCall struct {
	Start, End time.Time
	Status     int
}

// PodRecord is what the scenario saw of one pod.
type PodRecord struct {
	Name, IP, App string // App is the pod's app label: podinfo or podinfo-primary
	UID           types.UID
	Image         string
	Serving       time.Time // its server listened on the pod IP
	DeletionSeen  time.Time // the pod was first seen with a deletionTimestamp
	Gone          time.Time // the pod object was removed
	Drains        []DrainCall
	// Saves are the times the pod answered GET /state (a snapshot step).
	Saves []time.Time
}

// Drained reports the end of the first successful drain, if any.
func (p PodRecord) Drained() (time.Time, bool) {
	for _, d := range p.Drains {
		if d.Status == http.StatusOK {
			return d.End, true
		}
	}
	return time.Time{}, false
}

// drainFunc decides a pod's answer to POST /drain; it may block (until ctx,
// the request's, ends).
type drainFunc func(ctx context.Context, pod string) int

// podServers plays the app of every pod in a namespace: as pods get IPs it
// listens on <pod IP>:AppPort, answers /drain as drain says (200 otherwise)
// and records the calls and each pod's deletion.
type podServers struct {
	ns    string
	drain drainFunc
	onLog func(format string, args ...any)

	mu      sync.Mutex
	servers map[string]*http.Server // by pod IP; kept until Close (IPs are reused)
	owner   map[string]types.UID    // pod IP -> the pod that holds it now
	pods    map[types.UID]*PodRecord
	errs    []error
}

func newPodServers(ns string, drain drainFunc, onLog func(string, ...any)) *podServers {
	return &podServers{ns: ns, drain: drain, onLog: onLog, servers: map[string]*http.Server{},
		owner: map[string]types.UID{}, pods: map[types.UID]*PodRecord{}}
}

// run watches the namespace's pods until ctx ends.
func (s *podServers) run(ctx context.Context, cs kubernetes.Interface) error {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(s.ns))
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { s.observe(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.gone(p)
			}
		},
	})
	if err != nil {
		return err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return nil
}

func (s *podServers) observe(p *corev1.Pod) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.pods[p.UID]
	if rec == nil {
		rec = &PodRecord{Name: p.Name, UID: p.UID, App: p.Labels["app"]}
		if len(p.Spec.Containers) > 0 {
			rec.Image = p.Spec.Containers[0].Image
		}
		s.pods[p.UID] = rec
	}
	if p.DeletionTimestamp != nil && rec.DeletionSeen.IsZero() {
		rec.DeletionSeen = now
		s.onLog("pod %s deleted", p.Name)
	}
	if p.Status.PodIP == "" || rec.IP != "" {
		return
	}
	rec.IP = p.Status.PodIP
	s.owner[rec.IP] = p.UID
	if _, ok := s.servers[rec.IP]; !ok {
		if err := s.listen(rec.IP); err != nil {
			s.errs = append(s.errs, fmt.Errorf("serve pod %s: %w", p.Name, err))
			return
		}
	}
	rec.Serving = now
}

func (s *podServers) gone(p *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.pods[p.UID]; rec != nil && rec.Gone.IsZero() {
		rec.Gone = time.Now()
	}
}

// listen starts the server of one pod IP; s.mu is held.
func (s *podServers) listen(ip string) error {
	// With a real node, kwok's pod IPs are not loopback: they are added to
	// the test's own network namespace so that real pods reach them.
	if a := net.ParseIP(ip); a != nil && !a.IsLoopback() {
		if err := netns.AddAddress(ip + "/32"); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(AppPort)))
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/drain":
			s.serveDrain(w, r, ip)
		case r.Method == http.MethodGet && r.URL.Path == "/state":
			s.serveState(w, ip)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})}
	s.servers[ip] = srv
	go func() { _ = srv.Serve(l) }()
	return nil
}

func (s *podServers) serveDrain(w http.ResponseWriter, r *http.Request, ip string) {
	s.mu.Lock()
	rec := s.pods[s.owner[ip]]
	s.mu.Unlock()
	if rec == nil {
		http.Error(w, "no pod holds "+ip, http.StatusNotFound)
		return
	}
	call := DrainCall{Start: time.Now()}
	call.Status = s.drain(r.Context(), rec.Name)
	call.End = time.Now()
	w.WriteHeader(call.Status)
	s.mu.Lock()
	rec.Drains = append(rec.Drains, call)
	s.mu.Unlock()
	s.onLog("pod %s answered /drain %d", rec.Name, call.Status)
}

// serveState answers a snapshot of the pod's state, and keeps on serving:
// the app is not stopped by it.
func (s *podServers) serveState(w http.ResponseWriter, ip string) {
	s.mu.Lock()
	rec := s.pods[s.owner[ip]]
	if rec != nil {
		rec.Saves = append(rec.Saves, time.Now())
	}
	s.mu.Unlock()
	if rec == nil {
		http.Error(w, "no pod holds "+ip, http.StatusNotFound)
		return
	}
	_, _ = io.WriteString(w, "state of "+rec.Name)
	s.onLog("pod %s served its state", rec.Name)
}

// records returns copies of every pod's record, sorted by name.
func (s *podServers) records() []PodRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PodRecord, 0, len(s.pods))
	for _, r := range s.pods {
		c := *r
		c.Drains = append([]DrainCall(nil), r.Drains...)
		c.Saves = append([]time.Time(nil), r.Saves...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *podServers) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func (s *podServers) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.servers {
		_ = srv.Close()
	}
}
