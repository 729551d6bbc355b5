// Package v1alpha1 holds lastcall's API: TerminationPolicy (what to do
// before pods die) and TerminationRun (one durable execution of a policy for
// a fixed set of pods), group lastcall.dev.
//
// +kubebuilder:object:generate=true
// +groupName=lastcall.dev
package v1alpha1
