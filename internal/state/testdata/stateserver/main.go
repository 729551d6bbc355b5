// Command stateserver serves the state API over a file:// store with a
// static admin token and nothing else: the benchmarks run it as a process of
// its own, so that its memory is the state service's alone, not a test
// binary's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/state"
)

func main() {
	dir := flag.String("dir", "", "state directory")
	tokenFile := flag.String("token-file", "", "admin token file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "stateserver:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*dir, *tokenFile); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "stateserver:", err)
		os.Exit(1)
	}
}

func run(dir, tokenFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := state.OpenStore(ctx, "file://"+dir)
	if err != nil {
		return err
	}
	defer store.Close()
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{TokenFile: tokenFile})
	if err != nil {
		return err
	}
	srv := state.NewServer(store, authn, nil, state.Options{Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	srv.Register(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String()) // the parent waits for this line
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	pruned := make(chan error, 1)
	go func() { pruned <- srv.Run(ctx) }() // retention, as on the leader
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return <-pruned
}
