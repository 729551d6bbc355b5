// Command soakapp is the app of the preStop soak test: it appends numbered
// records to $APP_DATA/records.log until drained or terminated, and serves
// POST /drain (stop writing, answer when the last record is on disk) and
// GET /slow (a request in flight for the hook's wait step to wait on).
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soakapp:", err)
		os.Exit(2)
	}
}

func run() error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	path := filepath.Join(os.Getenv("APP_DATA"), "records.log")
	next, err := lastRecord(path)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			next++
			// One write per record: a kill lands between records, never
			// inside one.
			if _, err := f.WriteString(strconv.Itoa(next) + "\n"); err != nil {
				fmt.Fprintln(os.Stderr, "soakapp: write:", err)
				return
			}
		}
	}()
	var once sync.Once
	halt := func() {
		once.Do(func() { close(stop); <-stopped; _ = f.Sync() })
	}

	srv := &http.Server{ReadHeaderTimeout: time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		halt() // idempotent: a second drain finds it stopped
		srv.SetKeepAlivesEnabled(false)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // a request being served
		fmt.Fprintln(w, "ok")
	})
	srv.Handler = mux
	ln, err := net.Listen("tcp4", os.Getenv("APP_ADDR"))
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	ready := os.Getenv("APP_READY")
	if err := os.WriteFile(ready+".tmp", []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(ready+".tmp", ready); err != nil {
		return err
	}
	<-term
	halt()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return f.Close()
}

// lastRecord checks that path holds 1..n in order and returns n.
func lastRecord(path string) (int, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, err := strconv.Atoi(sc.Text())
		if err != nil || v != n+1 {
			return n, fmt.Errorf("%s: record %q after %d: not contiguous", path, sc.Text(), n)
		}
		n = v
	}
	return n, sc.Err()
}
