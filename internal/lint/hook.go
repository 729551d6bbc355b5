package lint

import (
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/lastcall-dev/lastcall/internal/prestop"
)

// hook is what can be known of a preStop hook's duration from the manifest.
type hook struct {
	what string // for messages: "sleep 30", "lastcall prestop", "httpGet"
	// min is how long the hook runs at least; max how long at most (0:
	// unknown). A plain sleep has min == max.
	min, max time.Duration
	// helper is set for `lastcall prestop`, with its parsed flags.
	helper    *prestop.Config
	helperErr error // the flags lastcall prestop would refuse
}

// analyzeHook reads a container's preStop handler.
func analyzeHook(h *corev1.LifecycleHandler) hook {
	switch {
	case h.Sleep != nil:
		d := time.Duration(h.Sleep.Seconds) * time.Second
		return hook{what: "sleep action of " + strconv.FormatInt(h.Sleep.Seconds, 10) + " s", min: d, max: d}
	case h.HTTPGet != nil:
		return hook{what: "httpGet"}
	case h.TCPSocket != nil:
		return hook{what: "tcpSocket"}
	case h.Exec != nil:
		return analyzeCommand(h.Exec.Command)
	}
	return hook{what: "handler"}
}

// analyzeCommand recognises `sleep N`, `lastcall prestop ...` and
// `lastcall-prestop ...`, run directly or as the first command of an
// `sh -c` script; a sleep followed by more commands gives a lower bound.
func analyzeCommand(argv []string) hook {
	if len(argv) == 0 {
		return hook{what: "exec"}
	}
	if isShell(argv[0]) && len(argv) >= 3 && argv[1] == "-c" {
		return analyzeScript(argv[2])
	}
	h, ok := simpleCommand(argv)
	if !ok {
		return hook{what: "exec " + path.Base(argv[0])}
	}
	return h
}

func isShell(p string) bool {
	switch path.Base(p) {
	case "sh", "bash", "ash", "dash", "zsh", "busybox":
		return true
	}
	return false
}

// analyzeScript looks at the script's first command; with more commands
// after it, its duration is only a lower bound.
func analyzeScript(script string) hook {
	cmds := strings.FieldsFunc(script, func(r rune) bool { return r == ';' || r == '\n' || r == '&' || r == '|' })
	var first []string
	rest := false
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		if first == nil {
			first = f
			continue
		}
		rest = true
	}
	h, ok := simpleCommand(unquote(first))
	if !ok {
		return hook{what: "shell script"}
	}
	if rest {
		h.max = 0
		h.what += ", then more"
	}
	return h
}

func unquote(f []string) []string {
	out := make([]string, len(f))
	for i, s := range f {
		out[i] = strings.Trim(s, `"'`)
	}
	return out
}

func simpleCommand(argv []string) (hook, bool) {
	if len(argv) > 1 && argv[0] == "exec" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return hook{}, false
	}
	switch path.Base(argv[0]) {
	case "sleep":
		if len(argv) != 2 {
			return hook{}, false
		}
		d, ok := sleepDuration(argv[1])
		if !ok {
			return hook{}, false
		}
		return hook{what: "sleep " + argv[1], min: d, max: d}, true
	case "lastcall-prestop":
		if len(argv) > 1 && argv[1] == "restore" {
			return hook{}, false
		}
		return helperHook(argv[1:]), true
	case "lastcall":
		if len(argv) > 1 && argv[1] == "prestop" {
			return helperHook(argv[2:]), true
		}
	}
	return hook{}, false
}

// sleepDuration parses sleep's operand: seconds, or a number with coreutils'
// s, m, h or d suffix.
func sleepDuration(s string) (time.Duration, bool) {
	if s == "infinity" || s == "inf" {
		return math.MaxInt64, true // never ends: it always takes the whole grace
	}
	unit := time.Second
	switch {
	case strings.HasSuffix(s, "s"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		s, unit = s[:len(s)-1], time.Minute
	case strings.HasSuffix(s, "h"):
		s, unit = s[:len(s)-1], time.Hour
	case strings.HasSuffix(s, "d"):
		s, unit = s[:len(s)-1], 24*time.Hour
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, false
	}
	return time.Duration(f * float64(unit)), true
}

// helperHook parses the flags as lastcall prestop itself does. With a
// budget, every step ends by budget − reserve; without one the helper
// reads its deadline from the API server and keeps reserve for the app.
func helperHook(args []string) hook {
	var c prestop.Config
	fs := pflag.NewFlagSet("lastcall prestop", pflag.ContinueOnError)
	fs.SetOutput(discard{})
	c.AddFlags(fs)
	h := hook{what: "lastcall prestop", helper: &c}
	if err := fs.Parse(args); err != nil {
		h.helperErr = err
		return h
	}
	if c.Budget > 0 {
		h.max = max(c.Budget-c.Reserve, 0)
	}
	return h
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
