package prestop

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/lastcall-dev/lastcall/internal/prestop/prestoptest"
)

const testToken = "test-token"

// podEnv is a fake pod filesystem: token, termination log, console.
type podEnv struct {
	dir, token, termLog, console, tcp string
}

func newPodEnv(t *testing.T) podEnv {
	t.Helper()
	dir := t.TempDir()
	e := podEnv{
		dir:     dir,
		token:   filepath.Join(dir, "token"),
		termLog: filepath.Join(dir, "termination-log"),
		console: filepath.Join(dir, "console"),
		tcp:     filepath.Join(dir, "tcp"),
	}
	writeFile(t, e.token, testToken+"\n")
	writeFile(t, e.console, "")
	writeFile(t, e.tcp, "  sl  local_address rem_address   st\n")
	return e
}

// config is a Config for this fake pod with everything but the steps set.
func (e podEnv) config() Config {
	return Config{
		Budget: 5e9, Reserve: 1e9,
		Pod: "web-0", Namespace: "shop",
		TokenPath: e.token, TerminationMessagePath: e.termLog, ConsolePath: e.console,
		ProcNetTCP: []string{e.tcp},
	}
}

func (e podEnv) restoreConfig(stateURL, dir string) RestoreConfig {
	return RestoreConfig{StateURL: stateURL, Dir: dir, Pod: "web-0", Namespace: "shop", TokenPath: e.token, Timeout: 5e9}
}

// newStateServer serves a fake state API, wrapped by wrap when not nil.
func newStateServer(t *testing.T, wrap func(http.Handler) http.Handler) (*prestoptest.StateServer, string) {
	t.Helper()
	st := prestoptest.NewStateServer(testToken)
	mux := http.NewServeMux()
	st.Register(mux)
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return st, srv.URL
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
