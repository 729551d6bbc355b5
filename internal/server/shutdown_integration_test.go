//go:build integration

package server_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryAcknowledgedSaveIsAFileAfterShutdown: every save answered 201
// before the server stopped is a whole file of its full size after Run
// returns.
func TestEveryAcknowledgedSaveIsAFileAfterShutdown(t *testing.T) {
	base, dir, stop := startStateServer(t)
	want := map[string]bool{}
	for i := range 40 {
		body := `{"data":"` + strings.Repeat("x", 4096) + `","namespace":"team-a","key":"k` + string(rune('a'+i%20)) + `"}`
		req, err := http.NewRequest(http.MethodPost, base+"/state/save", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+controlToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Key     string `json:"key"`
			Version string `json:"version"`
		}
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("save %d: status %d, %v", i, resp.StatusCode, err)
		}
		want[m.Key+"@"+m.Version] = true
	}
	if err := stop(); err != nil {
		t.Fatalf("server stopped with %v", err)
	}
	// Retention keeps 5 versions of each of the 20 keys: every one of the
	// 40 saves is kept, and each must now be a file of its full size.
	got := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(dir, "team-a"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		got[d.Name()] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		size, ok := got[name]
		if !ok {
			t.Errorf("acknowledged save %s has no file after shutdown (files: %d)", name, len(got))
			continue
		}
		if size <= 4096 {
			t.Errorf("%s is %d bytes, want the 4096-byte payload and its footer", name, size)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d files after shutdown, want %d: %v", len(got), len(want), got)
	}
}
