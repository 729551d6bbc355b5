// Package run executes TerminationRuns: the controller that owns each run's
// lifecycle (attempts, deadline, exit handlers), the built-in step runner
// with one file per step kind, and the Argo Workflows backend.
//
// Steps are executed at least once. Each step's outcome is written to the
// run's status before the pod's next step starts, so a restarted controller
// never repeats a step recorded as Succeeded; a step interrupted by a crash
// runs again, as a Kubernetes lifecycle hook may.
package run
