package run

import (
	"net/http"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// DefaultActions returns the built-in step kinds. saveState is not among
// them: it needs the state service, and is added where that is configured.
func DefaultActions(mgr manager.Manager, hc *http.Client, clk clock.Clock) Actions {
	cs := kubernetes.NewForConfigOrDie(mgr.GetConfig())
	return Actions{
		v1alpha1.StepHTTP:        HTTPAction{Client: hc},
		v1alpha1.StepWaitDrained: WaitDrainedAction{Client: hc, Clock: clk},
		v1alpha1.StepSleep:       SleepAction{Clock: clk},
		v1alpha1.StepExec:        ExecAction{Client: cs, Config: mgr.GetConfig()},
		v1alpha1.StepLabel:       MetadataAction{Client: cs},
		v1alpha1.StepAnnotate:    MetadataAction{Client: cs},
	}
}
