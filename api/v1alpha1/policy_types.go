package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TerminationPolicy says which pods it covers and what to do with each of
// them before it dies.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=tpol,categories=lastcall
// +kubebuilder:printcolumn:name="Runner",type=string,JSONPath=`.spec.runner.type`
// +kubebuilder:printcolumn:name="Steps",type=integer,JSONPath=`.status.stepCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:subresource:status
type TerminationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TerminationPolicySpec   `json:"spec"`
	Status TerminationPolicyStatus `json:"status,omitempty"`
}

// TerminationPolicySpec is the desired behaviour.
//
// +kubebuilder:validation:XValidation:rule="has(self.selector) != has(self.targetRef)",message="set exactly one of selector or targetRef"
// +kubebuilder:validation:XValidation:rule="self.runner.type != 'builtin' || (has(self.steps) && size(self.steps) > 0)",message="the builtin runner needs at least one step"
// +kubebuilder:validation:XValidation:rule="self.runner.type != 'argo' || has(self.runner.argo)",message="runner.type argo needs runner.argo.workflowTemplateRef"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",message="step names must be unique"
type TerminationPolicySpec struct {
	// Selector picks pods in the policy's namespace by label.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// TargetRef picks the pods of a workload in the policy's namespace.
	// +optional
	TargetRef *TargetRef `json:"targetRef,omitempty"`

	// Steps run in order for each pod.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Steps []Step `json:"steps,omitempty"`

	// Concurrency is how many pods are worked on at once.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Concurrency int32 `json:"concurrency,omitempty"`

	// Deadline bounds a whole run attempt; pods not done by then fail.
	// +kubebuilder:default="10m"
	// +optional
	Deadline *metav1.Duration `json:"deadline,omitempty"`

	// StepDefaults apply to steps that do not set their own.
	// +optional
	StepDefaults StepPolicy `json:"stepDefaults,omitempty"`

	// ExitHandlers run when a run attempt ends.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ExitHandlers []ExitHandler `json:"exitHandlers,omitempty"`

	// Runner executes the steps: the built-in runner, or Argo Workflows.
	// +kubebuilder:default={type: builtin}
	// +optional
	Runner Runner `json:"runner,omitempty"`

	// Gate configures how the Flagger gate answers for runs of this policy.
	// +optional
	Gate GatePolicy `json:"gate,omitempty"`

	// RunOnFailedPreStop makes the watcher of `lastcall server` start a run
	// of this policy for a pod it selects whose own preStop hook failed (a
	// FailedPreStopHook Event) while the pod is still terminating: the
	// policy's steps stand in for the hook that did not do its work.
	// +optional
	RunOnFailedPreStop bool `json:"runOnFailedPreStop,omitempty"`
}

// TargetRef names a workload whose pods a policy covers.
type TargetRef struct {
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet;ReplicaSet
	Kind string `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// StepPolicy bounds one step's execution.
type StepPolicy struct {
	// Timeout bounds one attempt of the step. Default 30s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Retries after the first failed attempt. Default 2.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=20
	// +optional
	Retries *int32 `json:"retries,omitempty"`
	// Backoff before the first retry; doubled for each further one. Default 1s.
	// +optional
	Backoff *metav1.Duration `json:"backoff,omitempty"`
}

// RunnerType selects how a run's steps are executed.
// +kubebuilder:validation:Enum=builtin;argo
type RunnerType string

// Runner types.
const (
	RunnerBuiltin RunnerType = "builtin"
	RunnerArgo    RunnerType = "argo"
)

// Runner selects and configures the backend.
type Runner struct {
	// +kubebuilder:default=builtin
	// +optional
	Type RunnerType `json:"type,omitempty"`
	// +optional
	Argo *ArgoRunner `json:"argo,omitempty"`
}

// ArgoRunner runs a run as an Argo Workflow created from a WorkflowTemplate.
type ArgoRunner struct {
	WorkflowTemplateRef WorkflowTemplateRef `json:"workflowTemplateRef"`
	// ServiceAccountName the Workflow runs as.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// WorkflowTemplateRef names a WorkflowTemplate in the policy's namespace.
type WorkflowTemplateRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// GateFailureAction is what the gate answers when a run Failed.
// +kubebuilder:validation:Enum=hold;open
type GateFailureAction string

// Gate failure actions.
const (
	GateHold GateFailureAction = "hold"
	GateOpen GateFailureAction = "open"
)

// GatePolicy configures the Flagger gate for this policy's runs.
type GatePolicy struct {
	// OnFailure: hold (default) keeps the gate closed after a Failed run;
	// open lets Flagger go on anyway.
	// +kubebuilder:default=hold
	// +optional
	OnFailure GateFailureAction `json:"onFailure,omitempty"`
	// DrainsTraffic says whether the steps stop the pods taking work (a
	// drain, taking them out of a Service). True (the default): the gate
	// starts the run only when the old primary pods carry no traffic, and
	// passes without it where they always do until Flagger replaces them
	// (see docs/gate.md). False (a state snapshot that leaves the app
	// serving): the run may start at any confirm-promotion call.
	// +kubebuilder:default=true
	// +optional
	DrainsTraffic *bool `json:"drainsTraffic,omitempty"`
}

// Drains reports DrainsTraffic with its default.
func (g GatePolicy) Drains() bool { return g.DrainsTraffic == nil || *g.DrainsTraffic }

// TerminationPolicyStatus is what the controller observed.
type TerminationPolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	StepCount int32 `json:"stepCount,omitempty"`
}

// TerminationPolicyList is a list of TerminationPolicy.
//
// +kubebuilder:object:root=true
type TerminationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TerminationPolicy `json:"items"`
}
