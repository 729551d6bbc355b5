package gate

import "strings"

// fastDecode parses the common shape of Flagger's payload without
// reflection: one object whose keys are exactly Payload's JSON names, with
// string values, and a metadata object of plain strings. It reports ok=false
// for anything else (escapes, non-ASCII, null, numbers, unknown or repeated
// keys, keys differing only in case, malformed JSON), and the caller then
// decodes with encoding/json, whose answer is the reference:
// FuzzDecodePayload checks that both agree whenever this one accepts.
// encoding/json costs more than the rest of a check put together.
//
// The body is copied once, and every field is a substring of that copy: one
// allocation instead of one per field. A field kept after the request (a
// memo key, an Event) then keeps the whole body alive, so bodies larger
// than Flagger's usual few hundred bytes get fields of their own.
func fastDecode(b []byte) (Payload, bool) {
	p, ok := fastDecodeShared(b)
	if ok && len(b) > maxSharedBody {
		p = p.clone()
	}
	return p, ok
}

// maxSharedBody bounds what one retained field can keep alive.
const maxSharedBody = 1 << 10

// clone gives every string of p its own memory.
func (p Payload) clone() Payload {
	q := Payload{Name: strings.Clone(p.Name), Namespace: strings.Clone(p.Namespace), Phase: strings.Clone(p.Phase),
		Checksum: strings.Clone(p.Checksum), Type: HookType(strings.Clone(string(p.Type)))}
	if p.Metadata != nil {
		q.Metadata = make(map[string]string, len(p.Metadata))
		for k, v := range p.Metadata {
			q.Metadata[strings.Clone(k)] = strings.Clone(v)
		}
	}
	return q
}

func fastDecodeShared(b []byte) (p Payload, ok bool) {
	d := fastDecoder{b: string(b)}
	d.space()
	if !d.byte('{') {
		return Payload{}, false
	}
	var seen uint8
	d.space()
	if d.byte('}') {
		return p, d.end()
	}
	for {
		key, ok := d.str()
		if !ok {
			return Payload{}, false
		}
		bit, field := p.field(key)
		if bit == 0 || seen&bit != 0 {
			return Payload{}, false
		}
		seen |= bit
		d.space()
		if !d.byte(':') {
			return Payload{}, false
		}
		d.space()
		if field != nil {
			if *field, ok = d.str(); !ok {
				return Payload{}, false
			}
		} else if p.Metadata, ok = d.metadata(); !ok {
			return Payload{}, false
		}
		d.space()
		if d.byte('}') {
			return p, d.end()
		}
		if !d.byte(',') {
			return Payload{}, false
		}
		d.space()
	}
}

// field maps a key to a bit (for repeats) and the string field it sets; the
// metadata key has a bit and no string field. Unknown keys get bit 0.
func (p *Payload) field(key string) (uint8, *string) {
	switch key {
	case "name":
		return 1, &p.Name
	case "namespace":
		return 2, &p.Namespace
	case "phase":
		return 4, &p.Phase
	case "checksum":
		return 8, &p.Checksum
	case "type":
		return 16, (*string)(&p.Type)
	case "metadata":
		return 32, nil
	}
	return 0, nil
}

type fastDecoder struct {
	b string
	i int
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end accepts trailing whitespace only.
func (d *fastDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// str reads a string of printable ASCII without escapes: what is between
// the quotes, sharing the body's copy.
func (d *fastDecoder) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
		d.i++
	}
	return "", false
}

// metadata reads an object of strings, without repeated keys.
func (d *fastDecoder) metadata() (map[string]string, bool) {
	if !d.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	d.space()
	if d.byte('}') {
		return m, true
	}
	for {
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		d.space()
		if !d.byte(':') {
			return nil, false
		}
		d.space()
		if m[k], ok = d.str(); !ok {
			return nil, false
		}
		d.space()
		if d.byte('}') {
			return m, true
		}
		if !d.byte(',') {
			return nil, false
		}
		d.space()
	}
}
