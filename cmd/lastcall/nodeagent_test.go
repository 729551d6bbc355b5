package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/node/logind/logindtest"
)

// TestNodeAgentPrepareLogindRaisesTheDelay runs the init container's command
// against a stand-in logind on a real dbus-daemon: it writes the drop-in,
// reloads logind and reports what logind grants.
func TestNodeAgentPrepareLogindRaisesTheDelay(t *testing.T) {
	svc := logindtest.Start(t, logindtest.Options{InhibitDelayMax: 5 * time.Second})
	dropIn := filepath.Join(svc.DropInDir(), "99-lastcall.conf")
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"node-agent", "prepare-logind", "--node", "n1", "--dbus-address", svc.Address, "--logind-drop-in", dropIn,
		"--shutdown-grace-period=40s", "--shutdown-grace-period-critical-pods=10s"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := svc.InhibitDelayMax(); got != 40*time.Second {
		t.Errorf("logind grants %s after prepare-logind, want 40s", got)
	}
	body, err := os.ReadFile(dropIn)
	if err != nil || !strings.Contains(string(body), "InhibitDelayMaxSec=40") {
		t.Errorf("drop-in %q, %v", body, err)
	}
	if !strings.Contains(out.String(), "requested 40s, was 5s, granted 40s") {
		t.Errorf("output:\n%s", out.String())
	}
}
