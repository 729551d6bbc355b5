package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// RunPhase is where a run is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type RunPhase string

// Run phases.
const (
	RunPending   RunPhase = "Pending"
	RunRunning   RunPhase = "Running"
	RunSucceeded RunPhase = "Succeeded"
	RunFailed    RunPhase = "Failed"
)

// Finished reports whether the phase is terminal for the current attempt.
func (p RunPhase) Finished() bool { return p == RunSucceeded || p == RunFailed }

// PodPhase is where one pod of a run is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Gone
type PodPhase string

// Pod phases. Gone means the pod was deleted (or replaced) during the run:
// there was nothing left to do for it, and it does not fail the run.
const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodGone      PodPhase = "Gone"
)

// Done reports whether nothing more will be done for the pod in this attempt.
func (p PodPhase) Done() bool { return p == PodSucceeded || p == PodFailed || p == PodGone }

// StepPhase is where one step of one pod is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type StepPhase string

// Step phases.
const (
	StepPending   StepPhase = "Pending"
	StepRunning   StepPhase = "Running"
	StepSucceeded StepPhase = "Succeeded"
	StepFailed    StepPhase = "Failed"
)

// Condition types of a TerminationRun.
const (
	// ConditionComplete is True when the run ended (Succeeded or Failed and
	// no retry pending).
	ConditionComplete = "Complete"
)

// TerminationRunStatus is the durable record of a run.
type TerminationRunStatus struct {
	// +optional
	Phase RunPhase `json:"phase,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Attempt counts from 1; exit-handler retries increase it.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// NextAttemptTime is set while a retry waits for its backoff.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	PodsTotal int32 `json:"podsTotal,omitempty"`
	// PodsDone counts pods Succeeded or Gone.
	// +optional
	PodsDone int32 `json:"podsDone,omitempty"`
	// +optional
	PodsFailed int32 `json:"podsFailed,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=name
	Pods []PodStatus `json:"pods,omitempty"`
	// ExitHandlers records the handlers run at the end of each attempt.
	// +optional
	ExitHandlers []ExitHandlerStatus `json:"exitHandlers,omitempty"`
	// Workflow is the Argo Workflow of the current attempt (runner argo).
	// +optional
	Workflow *WorkflowStatus `json:"workflow,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PodStatus is what was done to one pod.
type PodStatus struct {
	Name string `json:"name"`
	// +optional
	UID types.UID `json:"uid,omitempty"`
	// +optional
	Phase PodPhase `json:"phase,omitempty"`
	// +optional
	Steps []StepStatus `json:"steps,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// StepStatus is one step of one pod.
type StepStatus struct {
	Name string `json:"name"`
	// +optional
	Phase StepPhase `json:"phase,omitempty"`
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Message is the outcome, or trimmed output for exec steps.
	// +optional
	Message string `json:"message,omitempty"`
}

// ExitHandlerStatus records one exit handler run.
type ExitHandlerStatus struct {
	Name    string `json:"name"`
	Attempt int32  `json:"attempt"`
	// +optional
	Phase StepPhase `json:"phase,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// WorkflowStatus mirrors an Argo Workflow.
type WorkflowStatus struct {
	Name string `json:"name"`
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// TerminationRunList is a list of TerminationRun.
//
// +kubebuilder:object:root=true
type TerminationRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TerminationRun `json:"items"`
}
