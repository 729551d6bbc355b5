// Package text shortens messages for status fields and Events without
// cutting a UTF-8 character in half (the API server rejects invalid UTF-8 in
// some fields, and a torn character shows as garbage everywhere else).
package text

import "unicode/utf8"

// Truncate returns s if it fits in max bytes, else its longest prefix that
// ends on a character boundary and leaves room for suffix, followed by
// suffix.
func Truncate(s string, max int, suffix string) string {
	if len(s) <= max {
		return s
	}
	n := max - len(suffix)
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + suffix
}
