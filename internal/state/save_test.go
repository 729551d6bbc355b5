package state

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestParseSaveBodyDefaults(t *testing.T) {
	for _, c := range []struct {
		body, callerNS      string
		ns, key, payload    string
		contentType, errStr string
	}{
		{body: `{"namespace":"a","data":"x","pod":"web-0"}`, ns: "a", key: "web-0", payload: "x", contentType: "text/plain; charset=utf-8"},
		{body: `{"namespace":"a","data":[1, "two"]}`, ns: "a", key: "default", payload: `[1, "two"]`, contentType: "application/json"},
		{body: `{"data":"x"}`, callerNS: "mine", ns: "mine", key: "default", payload: "x", contentType: "text/plain; charset=utf-8"},
		{body: `{"data":"\u00e9"}`, callerNS: "a", ns: "a", key: "default", payload: "é", contentType: "text/plain; charset=utf-8"},
		{body: `{"data":"x"}`, errStr: "invalid namespace"},
		{body: `{"namespace":"a","data":null}`, errStr: "no data"},
		{body: `[]`, errStr: "invalid body"},
		{body: `{"namespace":"a","data":"x","pod":"../etc"}`, errStr: "invalid pod"},
	} {
		got, err := parseSaveBody([]byte(c.body), c.callerNS)
		if c.errStr != "" {
			if err == nil || !strings.Contains(err.Error(), c.errStr) {
				t.Errorf("%s: err %v, want %q", c.body, err, c.errStr)
			}
			continue
		}
		if err != nil || got.namespace != c.ns || got.key != c.key || string(got.payload) != c.payload || got.contentType != c.contentType {
			t.Errorf("%s: %+v %v", c.body, got, err)
		}
	}
}

// FuzzSaveBody checks that no body panics the parser and that whatever it
// accepts names a valid namespace and a key that cannot escape it.
func FuzzSaveBody(f *testing.F) {
	for _, s := range []string{
		`{"namespace":"a","data":"x"}`, `{"namespace":"a","key":"../../etc/passwd","data":1}`,
		`{"namespace":"a","key":"a/./b","data":{}}`, `{"data":"x","pod":"p"}`, `{"namespace":"a","data":"\ud800"}`,
		`{"namespace":"a","key":"a\\b","data":[]}`, `null`, `{"namespace":"a","data":`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseSaveBody(body, "caller")
		if err != nil {
			for _, e := range []error{ErrInvalidBody, ErrInvalidNamespace, ErrInvalidKey, ErrInvalidPod} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if ValidateNamespace(got.namespace) != nil {
			t.Fatalf("accepted namespace %q", got.namespace)
		}
		if _, err := ParseKey(got.key); err != nil || path.Clean("/"+got.key) != "/"+got.key {
			t.Fatalf("accepted key %q", got.key)
		}
		if len(got.payload) == 0 && got.contentType == "application/json" {
			t.Fatal("accepted JSON data with no bytes")
		}
	})
}
