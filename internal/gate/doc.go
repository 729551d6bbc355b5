// Package gate answers Flagger's webhooks. POST /flagger/gate holds a canary
// while a TerminationRun drains the pods about to be replaced and lets it go
// on once the run Succeeded; /gate/* and /rollback/* are flagger-loadtester's
// manual gates, kept in Gate objects so that they survive restarts and every
// replica answers alike; /flagger/event turns Flagger's events into
// Kubernetes Events.
//
// Basics: New mounts nothing by itself; Register puts the endpoints on a
// mux. Checks need no credentials (Flagger calls them bare); control
// endpoints need a bearer token allowed ControlVerb on ControlResource.
//
// Caveats: every check is answered from the informer cache, never from the
// API server, so a replica that has not yet seen a write answers from what
// it has (a control request waits until its own replica's cache shows its
// write). Gate run names derive from the canary revision, so Flagger's
// repeated calls, two replicas and a restarted server create one run.
package gate
