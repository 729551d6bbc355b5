package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ExitWhen says when an exit handler runs.
// +kubebuilder:validation:Enum=Succeeded;Failed;Always
type ExitWhen string

// Exit handler conditions.
const (
	ExitSucceeded ExitWhen = "Succeeded"
	ExitFailed    ExitWhen = "Failed"
	ExitAlways    ExitWhen = "Always"
)

// ExitHandler runs when a run attempt ends, as an Argo Workflow's onExit does.
//
// +kubebuilder:validation:XValidation:rule="has(self.notify) != has(self.retry)",message="an exit handler sets exactly one of notify or retry"
// +kubebuilder:validation:XValidation:rule="!has(self.retry) || self.when == 'Failed'",message="retry runs only when: Failed"
type ExitHandler struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +kubebuilder:default=Always
	// +optional
	When ExitWhen `json:"when,omitempty"`
	// +optional
	Notify *NotifyAction `json:"notify,omitempty"`
	// +optional
	Retry *RetryAction `json:"retry,omitempty"`
}

// NotifyAction posts to a webhook. Body is a Go template that sees .Run (the
// TerminationRun object), .Policy, .Phase, .Message and .Attempt; the json
// function quotes a value for a JSON body, e.g. a Slack message:
// {"text": {{printf "run %s %s: %s" .Run.Name .Phase .Message | json}}}.
type NotifyAction struct {
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// +kubebuilder:default=POST
	// +kubebuilder:validation:Enum=POST;PUT
	// +optional
	Method string `json:"method,omitempty"`
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	Body string `json:"body,omitempty"`
}

// RetryScope says what a retry runs again.
// +kubebuilder:validation:Enum=Run;FailedPods
type RetryScope string

// Retry scopes.
const (
	RetryRun        RetryScope = "Run"
	RetryFailedPods RetryScope = "FailedPods"
)

// RetryAction starts a new attempt of a Failed run.
type RetryAction struct {
	// +kubebuilder:default=FailedPods
	// +optional
	Scope RetryScope `json:"scope,omitempty"`
	// Limit is the number of attempts after the first.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Limit int32 `json:"limit"`
	// Backoff before the next attempt; doubled for each further one. Default 5s.
	// +optional
	Backoff *metav1.Duration `json:"backoff,omitempty"`
}

// TerminationRun is one execution of a TerminationPolicy for a fixed set of
// pods: the durable record of what was done to each of them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=trun,categories=lastcall
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policyRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Done",type=integer,JSONPath=`.status.podsDone`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.podsTotal`
// +kubebuilder:printcolumn:name="Attempt",type=integer,JSONPath=`.status.attempt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TerminationRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TerminationRunSpec   `json:"spec"`
	Status TerminationRunStatus `json:"status,omitempty"`
}

// TerminationRunSpec is fixed when the run is created.
//
// +kubebuilder:validation:XValidation:rule="self.policyRef == oldSelf.policyRef && self.pods == oldSelf.pods",message="policyRef and pods are fixed once the run exists"
type TerminationRunSpec struct {
	PolicyRef PolicyRef `json:"policyRef"`
	// Pods are resolved when the run is created and fixed thereafter.
	// +kubebuilder:validation:MaxItems=5000
	// +listType=atomic
	Pods []PodRef `json:"pods"`
	// Trigger says who started the run and why.
	// +optional
	Trigger Trigger `json:"trigger,omitempty"`
	// Gate holds a manual override of the Flagger gate for this run.
	// +optional
	Gate *GateOverride `json:"gate,omitempty"`
	// TTLSecondsAfterFinished deletes the run that long after it is
	// complete, as for a Job; unset keeps it. The gate sets it on its runs.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// PolicyRef names a TerminationPolicy in the run's namespace.
type PolicyRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// PodRef is one pod of a run; the UID guards against a new pod of the same name.
type PodRef struct {
	Name string `json:"name"`
	// +optional
	UID types.UID `json:"uid,omitempty"`
}

// TriggerSource names what started a run.
// +kubebuilder:validation:Enum=Gate;NodeShutdown;CLI;Watcher;PreStop
type TriggerSource string

// Trigger sources.
const (
	TriggerGate         TriggerSource = "Gate"
	TriggerNodeShutdown TriggerSource = "NodeShutdown"
	TriggerCLI          TriggerSource = "CLI"
	TriggerWatcher      TriggerSource = "Watcher"
	TriggerPreStop      TriggerSource = "PreStop"
)

// Trigger records who started a run and why.
type Trigger struct {
	// +optional
	Source TriggerSource `json:"source,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
	// Canary is set for runs started by the Flagger gate.
	// +optional
	Canary *CanaryRef `json:"canary,omitempty"`
	// Node is set for runs started by the node agent.
	// +optional
	Node string `json:"node,omitempty"`
}

// CanaryRef identifies the Flagger canary revision a gate run is for.
type CanaryRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Checksum  string `json:"checksum,omitempty"`
	HookType  string `json:"hookType,omitempty"`
}

// GateOverrideAction forces the gate's answer.
// +kubebuilder:validation:Enum=Open;Closed
type GateOverrideAction string

// Gate override actions.
const (
	GateOverrideOpen   GateOverrideAction = "Open"
	GateOverrideClosed GateOverrideAction = "Closed"
)

// GateOverride records a manual decision on the gate.
type GateOverride struct {
	Action GateOverrideAction `json:"action"`
	// +optional
	By string `json:"by,omitempty"`
	// +optional
	At metav1.Time `json:"at,omitempty"`
}
