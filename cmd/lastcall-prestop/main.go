// Command lastcall-prestop is the small static build of `lastcall prestop`
// and `lastcall restore`, to copy into app images: no client-go, no cloud
// SDK, plain HTTP to the API server and the state API.
//
//	lastcall-prestop [flags]          the preStop hook (also: lastcall-prestop prestop)
//	lastcall-prestop restore [flags]  the initContainer's restore
//	lastcall-prestop version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/utils/clock"

	"github.com/lastcall-dev/lastcall/internal/prestop"
	"github.com/lastcall-dev/lastcall/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches on the first argument and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	mode := "prestop"
	if len(args) > 0 && (args[0] == "prestop" || args[0] == "restore" || args[0] == "version") {
		mode, args = args[0], args[1:]
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var err error
	switch mode {
	case "version":
		_, err = fmt.Fprintf(stdout, "lastcall-prestop %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "restore":
		var cfg prestop.RestoreConfig
		fs := newFlagSet("lastcall-prestop restore", prestop.RestoreHelp, stderr)
		cfg.AddFlags(fs)
		if err = fs.Parse(args); err == nil {
			var res *prestop.RestoreResult
			if res, err = prestop.NewRestorer(cfg, clock.RealClock{}, log).Run(ctx); err == nil {
				_, err = fmt.Fprintln(stdout, res)
			}
		}
	default:
		var cfg prestop.Config
		fs := newFlagSet("lastcall-prestop", prestop.HookHelp+"\n\nAlso: lastcall-prestop restore --help, lastcall-prestop version.", stderr)
		cfg.AddFlags(fs)
		if err = fs.Parse(args); err == nil {
			_, err = prestop.NewHook(cfg, clock.RealClock{}, log, stdout).Run(ctx)
		}
	}
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "lastcall-prestop:", err)
		return 1
	}
	return 0
}

func newFlagSet(name, help string, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\n\nFlags:\n%s", name, help, fs.FlagUsages())
	}
	return fs
}
