package state

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Key limits, derived from what every backend must store. A key's segments
// become path components on file:// (the last one followed by "@" and the
// version, and while it is written by a temp suffix), and the whole name an
// object key on S3:
//
//   - nameMax (255 bytes, Linux NAME_MAX) bounds every path component, so a
//     segment may take what is left after "@<version>" and the temp suffix;
//   - S3 object keys are at most 1024 bytes: an optional bucket prefix, the
//     namespace (at most 63), two slashes, the shard, the key, "@<version>".
//     MaxKeyLen leaves more than 600 bytes of that to the prefix.
//
// Checked before any write, so no accepted key can make an object the store
// cannot write, list or read back. FuzzParseKey holds ParseKey to this.
const (
	nameMax          = 255
	versionSuffixLen = len("@") + len(versionLayout) + len("-0000")
	tempNameLen      = len(".") + 2*tempRandomBytes + len(tempSuffix)
	// MaxKeySegmentLen is the longest segment of a key, in bytes.
	MaxKeySegmentLen = nameMax - versionSuffixLen - tempNameLen
	// MaxKeyLen is the longest key accepted, in bytes.
	MaxKeyLen = 256
)

// ParseKey checks a key: segments of [A-Za-z0-9._-] joined by "/", none
// empty, "." or "..", each at most MaxKeySegmentLen bytes and all at most
// MaxKeyLen. It rejects rather than cleans, so that a key names exactly one
// object and can never step outside its namespace's prefix in the bucket.
func ParseKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !keyChar(c) {
			return "", fmt.Errorf("%w: character %q at %d not in [A-Za-z0-9._-/]", ErrInvalidKey, c, i)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return "", fmt.Errorf("%w: empty segment (leading, trailing or double slash)", ErrInvalidKey)
		case ".", "..":
			return "", fmt.Errorf("%w: %q segment", ErrInvalidKey, seg)
		}
		if len(seg) > MaxKeySegmentLen {
			return "", fmt.Errorf("%w: a segment (between slashes) longer than %d bytes, the most a file name can hold after the version", ErrInvalidKey, MaxKeySegmentLen)
		}
	}
	return key, nil
}

func keyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '/'
}

// ValidateNamespace checks that ns is a DNS-1123 label, as Kubernetes
// namespaces are.
func ValidateNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidNamespace, ns, strings.Join(errs, "; "))
	}
	return nil
}

// validatePod checks an optional pod name.
func validatePod(pod string) error {
	if pod == "" {
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(pod); len(errs) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidPod, pod, strings.Join(errs, "; "))
	}
	return nil
}

// maxContentTypeLen keeps the footer small; real media types are far shorter.
const maxContentTypeLen = 256

func validateContentType(ct string) error {
	if len(ct) > maxContentTypeLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidContentType, maxContentTypeLen)
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidContentType, err)
	}
	return nil
}

// versionLayout sorts lexically in time order (fixed width, UTC) and has no
// character outside the key charset, so a version is also a file name.
const versionLayout = "20060102T150405.000000000Z"

// newVersion returns a version ID for an object created at t: the time plus
// 16 random bits, so writers on different replicas never collide in the
// same nanosecond by more than chance.
func newVersion(t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return t.UTC().Format(versionLayout) + "-" + hex.EncodeToString(b[:])
}

// ParseVersion checks a version ID and returns its creation time.
func ParseVersion(v string) (time.Time, error) {
	ts, suffix, ok := strings.Cut(v, "-")
	if !ok || len(ts) != len(versionLayout) || len(suffix) != 4 || !isLowerHex(suffix) {
		return time.Time{}, fmt.Errorf("%w %q", ErrInvalidVersion, v)
	}
	t, err := time.Parse(versionLayout, ts)
	if err != nil || t.Format(versionLayout) != ts {
		return time.Time{}, fmt.Errorf("%w %q", ErrInvalidVersion, v)
	}
	return t, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
