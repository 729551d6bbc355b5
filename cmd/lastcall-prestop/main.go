// Command lastcall-prestop is the small static build of `lastcall prestop`
// and `lastcall restore`, to copy into app images: no client-go, no cloud
// SDK, plain HTTP to the API server and the state API.
//
//	lastcall-prestop [flags]          the preStop hook (also: lastcall-prestop prestop)
//	lastcall-prestop restore [flags]  the initContainer's restore
//	lastcall-prestop version
//	lastcall-prestop install DIR      copy itself into DIR (an initContainer's shared emptyDir)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
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
	if len(args) > 0 && (args[0] == "prestop" || args[0] == "restore" || args[0] == "version" || args[0] == "install") {
		mode, args = args[0], args[1:]
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var err error
	switch mode {
	case "version":
		_, err = fmt.Fprintf(stdout, "lastcall-prestop %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "install":
		err = install(args, stdout)
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

// install copies this binary into dir as lastcall-prestop, executable by
// anyone: an initContainer of the lastcall-prestop image runs it to put the
// helper into an emptyDir that the app container mounts, so an app image
// without the helper can still call it in its preStop hook. The copy is
// written under a temporary name and renamed, so the app never sees half
// of it.
func install(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: lastcall-prestop install DIR")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := filepath.Join(args[0], "lastcall-prestop")
	tmp, err := os.CreateTemp(args[0], ".lastcall-prestop-*")
	if err != nil {
		return fmt.Errorf("install into %s: %w", args[0], err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "installed %s\n", dst)
	return err
}

func newFlagSet(name, help string, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\n\nFlags:\n%s", name, help, fs.FlagUsages())
	}
	return fs
}
