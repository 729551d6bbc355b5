package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateKeepsCharactersWhole(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 8, "abcde..."},
		{"ééééé", 7, "éé..."}, // 10 bytes; a cut at 4 is a boundary
		{"😀😀😀", 8, "😀..."},    // the second emoji would be torn at 5
	} {
		if got := Truncate(c.in, c.max, "..."); got != c.want || len(got) > c.max || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld 😀", 7)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 || !utf8.ValidString(s) {
			return
		}
		got := Truncate(s, max, "…")
		if len(s) > max && (len(got) > max && max >= len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…")) {
			t.Fatalf("Truncate(%q, %d) = %q", s, max, got)
		}
	})
}
