package auth

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzPeekClaims feeds arbitrary bearer tokens to the unverified claim
// reader: it must never panic, and what it reads from a well-formed JWT
// payload must be what was encoded.
func FuzzPeekClaims(f *testing.F) {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return "e30." + base64.RawURLEncoding.EncodeToString(b) + ".sig"
	}
	f.Add(enc(map[string]any{"aud": "lastcall", "exp": 1700000000}), "lastcall", int64(1700000000))
	f.Add(enc(map[string]any{"aud": []string{"a", "b"}, "exp": 1}), "a", int64(1))
	f.Add("static-token", "", int64(0))
	f.Add("a.b.c", "", int64(0))
	f.Add("..", "", int64(0))
	f.Fuzz(func(t *testing.T, token, aud string, exp int64) {
		_, _ = peekClaims(token)
		c, ok := peekClaims(enc(map[string]any{"aud": aud, "exp": exp}))
		if !ok {
			t.Fatalf("a well-formed JWT payload was not read")
		}
		// JSON carries text: invalid UTF-8 is replaced when encoded.
		if utf8.ValidString(aud) && (len(c.Audience) != 1 || c.Audience[0] != aud) || c.Expiry != exp {
			t.Fatalf("read aud %q exp %d, encoded %q %d", c.Audience, c.Expiry, aud, exp)
		}
	})
}
