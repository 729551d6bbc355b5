package state

import "errors"

// Errors returned by the Store and the request parsers. The HTTP handlers
// map each to a status and a reason (see respond.go).
var (
	// ErrInvalidKey is returned for a key that breaks the rules of ParseKey.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidNamespace is returned for a namespace that is not a DNS-1123
	// label.
	ErrInvalidNamespace = errors.New("invalid namespace")
	// ErrInvalidVersion is returned for a version ID not made by this package.
	ErrInvalidVersion = errors.New("invalid version")
	// ErrInvalidPod is returned for a pod name that is not a DNS-1123
	// subdomain.
	ErrInvalidPod = errors.New("invalid pod name")
	// ErrInvalidContentType is returned for an unparseable or overlong
	// Content-Type.
	ErrInvalidContentType = errors.New("invalid content type")
	// ErrInvalidChecksum is returned for an X-Content-SHA256 that is not 64
	// hex digits.
	ErrInvalidChecksum = errors.New("invalid checksum")
	// ErrChecksumMismatch is returned by Put when the payload's SHA-256
	// differs from the expected one; nothing was stored.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrIncompleteBody is returned by Put when reading the payload failed
	// (client gone, truncated body, size limit); nothing was stored.
	ErrIncompleteBody = errors.New("incomplete body")
	// ErrNotFound is returned when a key or version does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt is returned for an object whose footer cannot be read: it
	// was not written by this package, or was damaged in the store.
	ErrCorrupt = errors.New("corrupt object")
)

// ErrInvalidBody is returned for a POST /state/save body that is not the
// expected JSON object.
var ErrInvalidBody = errors.New("invalid body")
