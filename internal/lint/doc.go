// Package lint finds grace-budget mistakes in Kubernetes manifests before
// they cost a dropped request or lost state: preStop hooks that eat the
// whole terminationGracePeriodSeconds (the kubelet then gives the app its
// one-off 2 s after SIGTERM), `lastcall prestop` flags that promise more
// time than the pod has, hooks on pods that are killed at once, grace
// periods longer than a node's shutdown budget, and PodDisruptionBudgets
// that let no eviction through. It reads manifests only; it never talks to
// a cluster.
package lint
