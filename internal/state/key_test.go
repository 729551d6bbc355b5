package state

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	valid := []string{"a", "app/cache.tar", "A-Z_0.9/x", "..a", "a..", "a/.b/c",
		strings.Repeat("k", MaxKeySegmentLen), strings.Repeat("k", MaxKeySegmentLen) + "/" + strings.Repeat("j", MaxKeyLen-MaxKeySegmentLen-1)}
	for _, k := range valid {
		if _, err := ParseKey(k); err != nil {
			t.Errorf("ParseKey(%q) = %v, want ok", k, err)
		}
	}
	invalid := []string{
		"", "/abs", "a/", "a//b", ".", "..", "a/../b", "../a", "a/./b", "a/..",
		`a\b`, "a b", "a\x00b", "a\nb", "a\x7f", "ä", "a:b", "a@b", "x/@v/20260101T000000.000000000Z-abcd",
		"%2e%2e", strings.Repeat("k", MaxKeyLen+1), strings.Repeat("k", MaxKeySegmentLen+1), "a/" + strings.Repeat("k", MaxKeySegmentLen+1) + "/b",
	}
	for _, k := range invalid {
		if _, err := ParseKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestValidateNamespace(t *testing.T) {
	for _, ns := range []string{"a", "team-a", "x1", strings.Repeat("n", 63)} {
		if err := ValidateNamespace(ns); err != nil {
			t.Errorf("%q: %v", ns, err)
		}
	}
	for _, ns := range []string{"", "A", "a_b", "a.b", "-a", "a-", "..", strings.Repeat("n", 64)} {
		if err := ValidateNamespace(ns); !errors.Is(err, ErrInvalidNamespace) {
			t.Errorf("%q: %v, want ErrInvalidNamespace", ns, err)
		}
	}
}

func TestVersionsSortByTimeAndRoundTrip(t *testing.T) {
	base := time.Date(2026, 11, 25, 6, 5, 12, 123456789, time.UTC)
	prev := ""
	for _, d := range []time.Duration{0, time.Nanosecond, time.Microsecond, time.Second, time.Hour, 400 * 24 * time.Hour} {
		at := base.Add(d)
		v := newVersion(at)
		if v <= prev {
			t.Fatalf("%s does not sort after %s", v, prev)
		}
		prev = v
		got, err := ParseVersion(v)
		if err != nil || !got.Equal(at) {
			t.Fatalf("ParseVersion(%s) = %v, %v; want %v", v, got, err, at)
		}
		if _, err := ParseKey(v); err != nil {
			t.Fatalf("version %s is not a valid key segment: %v", v, err)
		}
	}
	if v := newVersion(base); !strings.HasPrefix(v, "20261125T060512.123456789Z-") {
		t.Fatalf("version %s", v)
	}
	for _, bad := range []string{"", "20261125T060512.123456789Z", "20261125T060512.123456789Z-ABCD", "20261125T060512.1Z-abcd", "20261325T060512.123456789Z-abcd", "x/../y"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("ParseVersion(%q) = %v, want ErrInvalidVersion", bad, err)
		}
	}
}

func TestObjectNamesDoNotMixKeys(t *testing.T) {
	v := newVersion(time.Now())
	for _, key := range []string{"a", "a/b", "a/b/c", "v", "a.v"} {
		ns, k, ver, ok := splitName(objectName("team", key, v))
		if !ok || ns != "team" || k != key || ver != v {
			t.Errorf("splitName(objectName(team, %s)) = %s %s %s %v", key, ns, k, ver, ok)
		}
	}
	if !strings.HasPrefix(objectName("team", "a/b", v), versionsPrefix("team", "a/b")) ||
		strings.HasPrefix(objectName("team", "a/b", v), versionsPrefix("team", "a")) {
		t.Error("versions of a/b are listed under a")
	}
	sh := shard("a")
	for _, name := range []string{
		"team/" + sh + "/a@" + v + ".1a2b.tmp", "team/" + sh + "/a", "Team/" + sh + "/a@" + v, "team/" + sh + "/../x@" + v,
		"team/a@" + v, "team/" + sh + "/@" + v, "team/" + shard("b") + "/a@" + v, // wrong shard: not ours
	} {
		if _, _, _, ok := splitName(name); ok {
			t.Errorf("splitName(%q) accepted", name)
		}
	}
}

// FuzzParseKey checks that no accepted key can leave its namespace's prefix
// or be read back as another key, and that every backend can store it: each
// component of its file name and of its temp file's name fits NAME_MAX, and
// its object name leaves 600 bytes of S3's 1024 to a bucket prefix.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../a", "a/..", "a//b", `a\b`, ".", "a/@v/x", "\x00", "app/cache.tar",
		strings.Repeat("k", MaxKeySegmentLen), strings.Repeat("k", MaxKeySegmentLen+1), strings.Repeat("ab/", 85) + "c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if k != key || len(k) > MaxKeyLen || strings.HasPrefix(k, "/") || strings.ContainsAny(k, "\\@\x00") {
			t.Fatalf("accepted %q", key)
		}
		if path.Clean("/"+k) != "/"+k {
			t.Fatalf("accepted %q, which path cleaning changes", key)
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
		v := newVersion(time.Unix(0, 0))
		if ns, gk, gv, ok := splitName(objectName("ns", k, v)); !ok || ns != "ns" || gk != k || gv != v {
			t.Fatalf("object name of %q parses back as %q %q %q", k, ns, gk, gv)
		}
		longest := objectName(strings.Repeat("n", 63), k, v)
		temp := longest + "." + strings.Repeat("0", 2*tempRandomBytes) + tempSuffix
		for _, name := range []string{longest, temp} {
			for _, c := range strings.Split(name, "/") {
				if len(c) > nameMax {
					t.Fatalf("key %q makes a %d-byte path component %q, beyond NAME_MAX", k, len(c), c)
				}
			}
		}
		if len(longest)+600 > 1024 {
			t.Fatalf("key %q makes a %d-byte object name: S3 keys are at most 1024 bytes with the bucket prefix", k, len(longest))
		}
	})
}
