package node

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Event reasons. Node events go to the Node; pod events to each pod; run
// events (ReasonRunFailed, ReasonRunTimedOut) to the TerminationRun.
const (
	ReasonInhibitDelay      = "NodeShutdownInhibitDelay"
	ReasonShutdownStarted   = "NodeShutdownStarted"
	ReasonShutdownDone      = "NodeShutdownDone"
	ReasonShutdownCancelled = "NodeShutdownCancelled"
	ReasonUncordoned        = "NodeShutdownUncordoned"
	ReasonNoPolicies        = "NodeShutdownNoPolicies"
	ReasonRunsStarted       = "NodeShutdownRunsStarted"
	ReasonRunsFailed        = "NodeShutdownRunsNotStarted"
	ReasonPodEvicted        = "NodeShutdownEvicted"
	ReasonPodOverridden     = "NodeShutdownPDBOverridden"
	ReasonPodLeft           = "NodeShutdownLeft"
	ReasonRunFailed         = "NodeShutdownRunFailed"
	ReasonRunTimedOut       = "NodeShutdownRunTimedOut"
)

// EventComponent is the source of the agent's Events.
const EventComponent = "lastcall-node-agent"

// NewRecorder returns an EventRecorder that writes core/v1 Events through
// client, and the function that stops it (flushing what is queued).
func NewRecorder(client kubernetes.Interface, node string) (record.EventRecorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: node}), b.Shutdown
}

// nodeRef is how Events refer to a node (as the kubelet does: UID = name).
func nodeRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Node", Name: name, UID: types.UID(name)}
}
