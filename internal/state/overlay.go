package state

import "strings"

// pending is a journalled version that the checkpoint does not cover yet:
// its file may not exist (materialised false) or may not be known to be
// covered by a durable checkpoint. Its data never changes.
type pending struct {
	name         string
	seq          uint64
	data         []byte
	materialised bool
}

// overlay holds the pending versions, so that reads, listings and deletes
// see them exactly as if they were files. It is guarded by journal.mu.
type overlay struct {
	byName   map[string]*pending
	byPrefix map[string]map[string]*pending // versionsPrefix → name → version
	bySeq    map[uint64]*pending
	bytes    int64
	// gen counts changes, so that a listing can tell whether the overlay
	// changed while it read the files.
	gen uint64
}

func newOverlay() overlay {
	return overlay{byName: map[string]*pending{}, byPrefix: map[string]map[string]*pending{}, bySeq: map[uint64]*pending{}}
}

// keyPrefix is the versionsPrefix of an object name: up to its last "@".
func keyPrefix(name string) string { return name[:strings.LastIndex(name, "@")+1] }

func (o *overlay) add(p *pending) {
	o.byName[p.name] = p
	o.bySeq[p.seq] = p
	prefix := keyPrefix(p.name)
	if o.byPrefix[prefix] == nil {
		o.byPrefix[prefix] = map[string]*pending{}
	}
	o.byPrefix[prefix][p.name] = p
	o.bytes += int64(len(p.data))
	o.gen++
}

// remove forgets p, if it is still there.
func (o *overlay) remove(p *pending) {
	if o.byName[p.name] != p {
		return
	}
	delete(o.byName, p.name)
	delete(o.bySeq, p.seq)
	prefix := keyPrefix(p.name)
	if delete(o.byPrefix[prefix], p.name); len(o.byPrefix[prefix]) == 0 {
		delete(o.byPrefix, prefix)
	}
	o.bytes -= int64(len(p.data))
	o.gen++
}

// under returns the pending versions whose names start with prefix: one
// key's (prefix ends in "@") or a namespace's or all.
func (o *overlay) under(prefix string) []*pending {
	var out []*pending
	if strings.HasSuffix(prefix, "@") {
		for _, p := range o.byPrefix[prefix] {
			out = append(out, p)
		}
		return out
	}
	for kp, ps := range o.byPrefix {
		if !strings.HasPrefix(kp, prefix) {
			continue
		}
		for _, p := range ps {
			out = append(out, p)
		}
	}
	return out
}

// unmaterialised returns the versions with no file yet.
func (o *overlay) unmaterialised() []*pending {
	var out []*pending
	for _, p := range o.byName {
		if !p.materialised {
			out = append(out, p)
		}
	}
	return out
}

// covered returns the highest sequence number from cp on, below next, up
// to which every record is materialised or gone (a write that failed and
// went the direct way): the checkpoint that may be written now.
func (o *overlay) covered(cp, next uint64) uint64 {
	for cp+1 < next {
		if p := o.bySeq[cp+1]; p != nil && !p.materialised {
			break
		}
		cp++
	}
	return cp
}

// dropThrough forgets the versions a checkpoint covers: their files are
// durable and replay will skip them.
func (o *overlay) dropThrough(from, cp uint64) {
	for seq := from + 1; seq <= cp; seq++ {
		if p := o.bySeq[seq]; p != nil {
			o.remove(p)
		}
	}
}
