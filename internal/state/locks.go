package state

import (
	"hash/maphash"
	"sync"
)

// keyLocks serialises the changes to one key (a commit, a prune, a delete)
// with a fixed set of mutexes picked by the key's hash: memory stays the
// same whatever keys callers send, and two keys rarely share a stripe.
type keyLocks struct {
	seed    maphash.Seed
	once    sync.Once
	stripes [256]sync.Mutex
}

// lock locks ns/key and returns the unlock.
func (l *keyLocks) lock(ns, key string) func() {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	var h maphash.Hash
	h.SetSeed(l.seed)
	_, _ = h.WriteString(ns)
	_ = h.WriteByte('/')
	_, _ = h.WriteString(key)
	m := &l.stripes[h.Sum64()%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}
