package run

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzDecodeStart: whatever the body, decodeStart either refuses it as
// invalid or returns names every backend accepts.
func FuzzDecodeStart(f *testing.F) {
	for _, s := range []string{
		`{"namespace":"shop","pod":"web-0","policy":"drain"}`,
		`{"namespace":"shop","pod":"web-0"}`,
		`{"namespace":"Shop","pod":"web-0"}`,
		`{"namespace":"shop","pod":"web-0","extra":1}`,
		`{"namespace":"shop","pod":"` + strings.Repeat("a", 300) + `"}`,
		`[]`, ``, `{"namespace":"shop","pod":"web-0"}{"x":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeStart(strings.NewReader(body))
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("%q: error %v is not errInvalid", body, err)
			}
			return
		}
		if len(validation.IsDNS1123Label(req.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(req.Pod)) > 0 ||
			(req.Policy != "" && len(validation.IsDNS1123Subdomain(req.Policy)) > 0) {
			t.Fatalf("%q: accepted invalid names %+v", body, req)
		}
	})
}
