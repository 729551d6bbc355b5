// Package scenario is lastcall's main scenario, end to end, against real
// components: a Deployment rolled out by a real Flagger (canary with a
// confirm-promotion webhook) whose old primary pods a real `lastcall server`
// drains through a TerminationRun before Flagger may promote. The pods are
// kwok pods served by real HTTP servers on their loopback pod IPs.
//
// Scenario.Run drives it, including the faults it must survive (a pod whose
// drain fails until the gate has been seen holding, and a SIGKILL of the
// lastcall server mid-run), and returns a Report of what every component
// did and when. It asserts nothing: test/e2e checks the Report, and
// hack/demo shows Snapshots live and the Report as a summary.
package scenario
