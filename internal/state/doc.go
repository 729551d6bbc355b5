// Package state stores what dying pods hand over to their replacements: a
// versioned object per (namespace, key) in a blob store, behind an HTTP API
// that authenticates callers and keeps ServiceAccounts to their namespace.
//
// Basics: OpenStore opens a bucket URL (file://, s3://, mem://); NewServer
// serves a Store over HTTP (Register mounts the routes) and Run prunes old
// versions until its context ends. docs/state.md describes the protocol.
//
// Caveats: each version is one object, the payload followed by a small JSON
// footer, so a version appears whole or not at all on every backend; file://
// writes are durable before they are acknowledged (temp file, fsync, rename,
// directory fsync). A file:// directory belongs to one process, which
// serialises the changes of each key. Versions are never modified, only
// added and deleted.
package state
