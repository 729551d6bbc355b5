package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Version describes one stored version of a key.
type Version struct {
	ID          string    `json:"version"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Pod         string    `json:"pod"`
	ContentType string    `json:"contentType"`
	Created     time.Time `json:"created"`
}

// Meta is a Version with the namespace and key it belongs to; it is the
// JSON answer to a write and the footer of every stored object.
type Meta struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	Version
}

// Each object is the payload followed by the footer: Meta as JSON, then its
// length (uint32, big-endian) and footerMagic. The footer goes last because
// the size and SHA-256 are known only once the payload has streamed through,
// and keeping it in the same object makes a version appear atomically on
// every backend (one rename, one PUT) with no sidecar to get out of step.
const (
	footerMagic   = "LCS1"
	trailerLen    = 8
	maxFooterJSON = 4096
)

func encodeFooter(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > maxFooterJSON {
		return nil, fmt.Errorf("footer of %d bytes exceeds %d", len(b), maxFooterJSON)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(b)))
	return append(b, footerMagic...), nil
}

// decodeFooter parses the footer at the end of tail, the last bytes of an
// object of objSize bytes, and checks it against the object it ends.
func decodeFooter(tail []byte, objSize int64) (Meta, error) {
	if len(tail) < trailerLen || !bytes.HasSuffix(tail, []byte(footerMagic)) {
		return Meta{}, fmt.Errorf("%w: no footer", ErrCorrupt)
	}
	n := int64(binary.BigEndian.Uint32(tail[len(tail)-trailerLen:]))
	if n > maxFooterJSON || n+trailerLen > int64(len(tail)) {
		return Meta{}, fmt.Errorf("%w: footer length %d", ErrCorrupt, n)
	}
	start := int64(len(tail)) - trailerLen - n
	var m Meta
	if err := json.Unmarshal(tail[start:start+n], &m); err != nil {
		return Meta{}, fmt.Errorf("%w: footer: %w", ErrCorrupt, err)
	}
	if m.Size != objSize-n-trailerLen {
		return Meta{}, fmt.Errorf("%w: footer says %d payload bytes, object holds %d", ErrCorrupt, m.Size, objSize-n-trailerLen)
	}
	return m, nil
}
