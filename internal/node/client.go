package node

import (
	"k8s.io/client-go/rest"
)

// Client-side rate limit of the agent's API clients. A shutdown sends a
// burst: one eviction per pod of the node (at most 110 with the kubelet's
// default max-pods), runs, Events, and retries while PDBs refuse; client-go's
// default 5 QPS would stretch that into tens of seconds. The burst covers a
// full node at once; the API server's priority and fairness protects it
// when many nodes shut down together.
const (
	clientQPS   = 200
	clientBurst = 400
)

// ClientConfig returns a copy of cfg with the agent's rate limits.
func ClientConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = clientQPS, clientBurst
	return c
}
