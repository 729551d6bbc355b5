package prestop

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/lastcall-dev/lastcall/internal/prestop/procnet"
)

// Step names one step of the hook. Steps run in the order of Steps.
type Step string

// The steps, each optional, in the order they run.
const (
	StepDrain Step = "drain" // POST the app's drain URL
	StepWait  Step = "wait"  // wait until the app's ports have no connections
	StepSave  Step = "save"  // upload files to the state API
	StepRun   Step = "run"   // ask the lastcall server to run a TerminationPolicy
)

// Steps lists every step in the order the hook runs them.
var Steps = []Step{StepDrain, StepWait, StepSave, StepRun}

// Defaults for the zero values of Config and RestoreConfig.
const (
	DefaultReserve                = 10 * time.Second
	DefaultFallbackBudget         = 30 * time.Second // Kubernetes' default terminationGracePeriodSeconds
	DefaultTokenPath              = "/var/run/secrets/lastcall/token"
	DefaultTerminationMessagePath = "/dev/termination-log"
	DefaultConsolePath            = "/proc/1/fd/1"
	DefaultServiceAccountDir      = "/var/run/secrets/kubernetes.io/serviceaccount"
	// Off disables an output path (TerminationMessagePath, ConsolePath).
	Off = "none"
)

// Config is one run of the preStop hook. The zero value of each field means
// the default documented on it, so Config{} is valid (it does nothing but
// report).
type Config struct {
	// Budget is the termination grace left when the hook starts. Zero: read
	// the pod from the API server (deletionTimestamp − now).
	Budget time.Duration
	// Reserve is kept for the app's own SIGTERM shutdown: every step ends by
	// start + Budget − Reserve. Zero means DefaultReserve.
	Reserve time.Duration

	// DrainURL, if set, is POSTed first (the app stops taking work).
	DrainURL string
	// DrainTimeout caps the drain step. Zero: a quarter of the time left.
	DrainTimeout time.Duration
	// Ports, if set, are waited on until no ESTABLISHED connection remains.
	Ports []int
	// WaitTimeout caps the wait step. Zero: half the time left when a save or
	// run step follows, else all of it.
	WaitTimeout time.Duration
	// Save lists files and directories uploaded as one tar. A directory's
	// contents go to the top of the tar, a file under its base name.
	Save []string
	// StateURL is the state API's base URL; required with Save.
	StateURL string
	// Key names the saved state. Zero: the pod name.
	Key string
	// RunURL, if set, gets a POST {"namespace","pod","policy"}.
	RunURL string
	// Policy names the TerminationPolicy sent to RunURL.
	Policy string
	// Optional steps may fail without failing the hook (exit code 0).
	Optional []Step

	// Pod and Namespace name this pod. Zero: $POD_NAME then $HOSTNAME, and
	// $POD_NAMESPACE then the ServiceAccount's namespace file.
	Pod, Namespace string
	// TokenPath holds the bearer token for the lastcall APIs, re-read at each
	// attempt because the kubelet rotates it. Zero: DefaultTokenPath.
	TokenPath string
	// CAFile is a PEM bundle trusted, with the system roots, for https
	// state and run URLs (the lastcall server's issuer). Zero: system roots.
	CAFile string
	// TerminationMessagePath gets the summary (at most 4096 bytes). Zero:
	// DefaultTerminationMessagePath; Off disables it.
	TerminationMessagePath string
	// ConsolePath gets the summary so that `kubectl logs` shows it. Zero:
	// DefaultConsolePath; Off disables it.
	ConsolePath string
	// ProcNetTCP lists the kernel TCP tables read by the wait step. Zero:
	// procnet.DefaultPaths.
	ProcNetTCP []string
	// APIServer is the Kubernetes API base URL, read when Budget is zero.
	// Zero: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	APIServer string
	// ServiceAccountDir holds token, ca.crt and namespace for the API server.
	// Zero: DefaultServiceAccountDir.
	ServiceAccountDir string
}

// AddFlags binds c's fields to flags whose defaults are c's current values.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.Budget, "budget", c.Budget, "termination grace left when the hook starts (terminationGracePeriodSeconds); 0 reads the pod's deletionTimestamp from the API server")
	fs.DurationVar(&c.Reserve, "reserve", cmp.Or(c.Reserve, DefaultReserve), "time kept for the app's SIGTERM shutdown: every step ends by start + budget − reserve")
	fs.StringVar(&c.DrainURL, "drain-url", c.DrainURL, "POST this URL first so the app stops taking work")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "cap for the drain step (0: a quarter of the time left)")
	fs.IntSliceVar(&c.Ports, "port", c.Ports, "wait until this listening port has no ESTABLISHED connections (repeatable)")
	fs.DurationVar(&c.WaitTimeout, "wait-timeout", c.WaitTimeout, "cap for the wait step (0: half the time left if save or run follows, else all)")
	fs.StringArrayVar(&c.Save, "save", c.Save, "file or directory to upload as one tar (repeatable; a directory's contents go to the tar's top)")
	fs.StringVar(&c.StateURL, "state-url", c.StateURL, "base URL of the lastcall state API (required with --save)")
	fs.StringVar(&c.Key, "key", c.Key, "name of the saved state (default: the pod name; set it for Deployments, whose pod names change)")
	fs.StringVar(&c.CAFile, "ca-file", c.CAFile, "PEM CA bundle to trust for https --state-url and --run-url (the lastcall server's certificate issuer), besides the system roots")
	fs.StringVar(&c.RunURL, "run-url", c.RunURL, "lastcall server endpoint to POST {namespace, pod, policy} to, last")
	fs.StringVar(&c.Policy, "policy", c.Policy, "TerminationPolicy name sent to --run-url")
	fs.Var(newStepsValue(&c.Optional), "optional", "step (drain, wait, save, run) whose failure does not fail the hook (repeatable)")
	fs.StringVar(&c.Pod, "pod", c.Pod, "this pod's name (default $POD_NAME, then $HOSTNAME)")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "this pod's namespace (default $POD_NAMESPACE, then the ServiceAccount's namespace)")
	fs.StringVar(&c.TokenPath, "token-file", cmp.Or(c.TokenPath, DefaultTokenPath), "projected ServiceAccount token (audience lastcall) for the lastcall APIs, re-read at each attempt")
	fs.StringVar(&c.TerminationMessagePath, "termination-message-path", cmp.Or(c.TerminationMessagePath, DefaultTerminationMessagePath), "write the summary here (max 4096 bytes); \"none\" disables")
	fs.StringVar(&c.ConsolePath, "console", cmp.Or(c.ConsolePath, DefaultConsolePath), "also write the summary here so kubectl logs shows it; \"none\" disables")
	fs.StringArrayVar(&c.ProcNetTCP, "proc-net-tcp", c.ProcNetTCP, "kernel TCP table read by the wait step (repeatable; default /proc/net/tcp and /proc/net/tcp6)")
	fs.StringVar(&c.APIServer, "api-server", c.APIServer, "Kubernetes API URL used when --budget is 0 (default from $KUBERNETES_SERVICE_HOST/PORT)")
	fs.StringVar(&c.ServiceAccountDir, "service-account-dir", cmp.Or(c.ServiceAccountDir, DefaultServiceAccountDir), "directory with the ServiceAccount token, ca.crt and namespace for the API server")
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	c.Reserve = cmp.Or(c.Reserve, DefaultReserve)
	c.TokenPath = cmp.Or(c.TokenPath, DefaultTokenPath)
	c.TerminationMessagePath = cmp.Or(c.TerminationMessagePath, DefaultTerminationMessagePath)
	c.ConsolePath = cmp.Or(c.ConsolePath, DefaultConsolePath)
	c.ServiceAccountDir = cmp.Or(c.ServiceAccountDir, DefaultServiceAccountDir)
	if len(c.ProcNetTCP) == 0 {
		c.ProcNetTCP = procnet.DefaultPaths
	}
	c.Pod, c.Namespace = podIdentity(c.Pod, c.Namespace, c.ServiceAccountDir)
	c.Key = cmp.Or(c.Key, c.Pod)
	if c.APIServer == "" {
		if host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"); host != "" && port != "" {
			c.APIServer = "https://" + net.JoinHostPort(host, port)
		}
	}
	return c
}

// validate reports configuration errors that no amount of retrying fixes.
func (c Config) validate() error {
	if len(c.Save) > 0 && c.StateURL == "" {
		return fmt.Errorf("--save needs --state-url")
	}
	if (len(c.Save) > 0 || c.RunURL != "") && (c.Namespace == "" || c.Key == "") {
		return fmt.Errorf("unknown pod: set --namespace and --pod (or $POD_NAMESPACE and $POD_NAME)")
	}
	for _, p := range c.Ports {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("--port %d: not a TCP port", p)
		}
	}
	if c.Budget < 0 || c.Reserve < 0 {
		return fmt.Errorf("--budget and --reserve cannot be negative")
	}
	return nil
}

// podIdentity fills the pod's name and namespace from the downward API's
// usual variables, the hostname (the pod name unless spec.hostname is set)
// and the ServiceAccount's namespace file.
func podIdentity(pod, ns, saDir string) (string, string) {
	if pod == "" {
		pod = os.Getenv("POD_NAME")
	}
	if pod == "" {
		pod, _ = os.Hostname()
	}
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if b, err := os.ReadFile(filepath.Join(saDir, "namespace")); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	return pod, ns
}

// stepsValue is a repeatable flag of step names, checked when parsed.
type stepsValue struct{ steps *[]Step }

func newStepsValue(p *[]Step) *stepsValue { return &stepsValue{p} }

func (v *stepsValue) String() string {
	if v.steps == nil {
		return ""
	}
	s := make([]string, len(*v.steps))
	for i, st := range *v.steps {
		s[i] = string(st)
	}
	return strings.Join(s, ",")
}

func (v *stepsValue) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		st, err := ParseStep(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		*v.steps = append(*v.steps, st)
	}
	return nil
}

func (v *stepsValue) Type() string { return "step" }

// ParseStep returns the step named s.
func ParseStep(s string) (Step, error) {
	for _, st := range Steps {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown step %q (want drain, wait, save or run)", s)
}
