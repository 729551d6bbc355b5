// Package watch surfaces the termination failures Kubernetes reports only in
// passing: the kubelet's FailedPreStopHook and FailedPostStartHook Events
// (whose message recent kubelets reduce to "PreStopHook failed") and
// containers SIGKILLed at their termination deadline, which produce no Event
// at all. It counts both in metrics, logs each with the pod, and puts a
// KilledAtDeadline Event on the pod so that `kubectl describe pod` and event
// alerting show what the kubelet does not.
package watch
