// Package devcluster runs a real, local Kubernetes control plane for tests and
// for `lastcall-dev`: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler built from source, with kwok playing the kubelet for fake
// nodes whose pods get loopback IPs, so a test can serve a "pod" for real.
//
// Basics: EnsureBinaries builds the components once and caches them under
// the user cache dir; Start launches them on free 127.0.0.1 ports and returns
// a Cluster with a *rest.Config and a kubeconfig file; Stop ends every
// process it started.
//
// Caveats: kwok runs no containers and no lifecycle hooks. A deleted pod stays
// Terminating until its deletionTimestamp, as a container that uses its whole
// grace period would; the annotation AnnotationExitAfter makes it go sooner.
package devcluster
