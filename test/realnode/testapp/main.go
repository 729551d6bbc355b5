// Command testapp is the app of the real node's tests, built into an image
// by the project: an HTTP server whose state is a file, and which reports
// what happens to it (requests, drain, SIGTERM, exit, the state it found at
// start) to the test's recorder, so that the test can time the kubelet's
// termination from the app's side.
//
// Environment: RECORDER (the recorder's base URL), POD_NAME, DATA (the
// state directory, default /data), DRAIN_DELAY (how long /drain takes),
// SHUTDOWN_DELAY (how long the app takes to exit after SIGTERM). Endpoints:
// GET / (served, counted), POST /drain (stop taking work, write the final
// state), /healthz.
//
// `testapp hook fail` exits 1 and `testapp hook sleep DURATION` sleeps: the
// preStop hooks of the seed's failure cases (the image has no shell).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

type app struct {
	mu       sync.Mutex
	served   int
	draining bool
	dir      string
	recorder string
	pod      string
}

// report tells the recorder that event happened now, with detail.
func (a *app) report(event, detail string) {
	if a.recorder == "" {
		return
	}
	q := url.Values{"pod": {a.pod}, "event": {event}, "at": {time.Now().UTC().Format(time.RFC3339Nano)}}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Post(a.recorder+"/event?"+q.Encode(), "text/plain", bytes.NewReader([]byte(detail)))
	if err == nil {
		resp.Body.Close()
	}
}

func (a *app) stateFile() string { return filepath.Join(a.dir, "state.txt") }

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	a.served++
	fmt.Fprintf(w, "served %d\n", a.served)
}

// drain stops taking work and writes the final state: the count and a
// nonce, so that a restore of older bytes cannot pass for this one.
func (a *app) drain(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if d, err := time.ParseDuration(os.Getenv("DRAIN_DELAY")); err == nil {
		time.Sleep(d)
	}
	a.mu.Lock()
	a.draining = true
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	state := fmt.Sprintf("pod=%s served=%d nonce=%s\n", a.pod, a.served, hex.EncodeToString(nonce))
	err := os.WriteFile(a.stateFile(), []byte(state), 0o644)
	a.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.report("drain", state)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hook" {
		hook(os.Args[2:])
		return
	}
	a := &app{dir: os.Getenv("DATA"), recorder: os.Getenv("RECORDER"), pod: os.Getenv("POD_NAME")}
	if a.dir == "" {
		a.dir = "/data"
	}
	restored, _ := os.ReadFile(a.stateFile())
	a.report("start", string(restored))
	mux := http.NewServeMux()
	mux.HandleFunc("/drain", a.drain)
	mux.HandleFunc("/healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/", a.serve)
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		a.report("sigterm", "")
		if d, err := time.ParseDuration(os.Getenv("SHUTDOWN_DELAY")); err == nil {
			time.Sleep(d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a.report("exit", "")
}

func hook(args []string) {
	switch {
	case len(args) == 1 && args[0] == "fail":
		fmt.Fprintln(os.Stderr, "testapp hook: failing as asked")
		os.Exit(1)
	case len(args) == 2 && args[0] == "sleep":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		time.Sleep(d)
	default:
		fmt.Fprintln(os.Stderr, "usage: testapp hook fail | testapp hook sleep DURATION")
		os.Exit(2)
	}
}
