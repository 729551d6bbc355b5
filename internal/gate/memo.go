package gate

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// maxMemoAnswers bounds the memo; past it, it starts over.
const maxMemoAnswers = 4096

// memoAnswer is a rendered /flagger/gate answer for one version of a run.
type memoAnswer struct {
	rv     string
	code   int
	result string
	body   []byte
}

// answerMemo keeps each run's rendered answer: a cached object never
// changes (an update is a new object with a new resourceVersion), so the
// answer to Flagger's repeated calls is rendered once per version. Failed
// runs are not kept: their answer also depends on their policy. A plain map
// under a read lock: a lookup allocates nothing.
type answerMemo struct {
	mu sync.RWMutex
	m  map[types.NamespacedName]*memoAnswer
}

func (a *answerMemo) get(run *v1alpha1.TerminationRun) *memoAnswer {
	a.mu.RLock()
	m := a.m[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	a.mu.RUnlock()
	if m == nil || m.rv != run.ResourceVersion {
		return nil
	}
	return m
}

func (a *answerMemo) put(run *v1alpha1.TerminationRun, m *memoAnswer) {
	if run.Status.Phase == v1alpha1.RunFailed || m.rv == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil || len(a.m) >= maxMemoAnswers {
		a.m = make(map[types.NamespacedName]*memoAnswer)
	}
	a.m[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}] = m
}

// nameKey is what a gate run's name is derived from.
type nameKey struct{ namespace, name, checksum, hook, policy string }

// nameMemo keeps RunName's results: Flagger repeats a revision's call every
// interval, and hashing is most of what such a call costs the gate itself.
type nameMemo struct {
	mu sync.RWMutex
	m  map[nameKey]string
}

func (n *nameMemo) runName(p Payload, hook HookType) string {
	k := nameKey{p.Namespace, p.Name, p.Checksum, string(hook), p.Metadata[MetaPolicy]}
	n.mu.RLock()
	name, ok := n.m[k]
	n.mu.RUnlock()
	if ok {
		return name
	}
	name = RunName(p, hook)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil || len(n.m) >= maxMemoAnswers {
		n.m = make(map[nameKey]string)
	}
	n.m[k] = name
	return name
}
