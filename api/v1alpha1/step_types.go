package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StepKind names what a step does.
type StepKind string

// Step kinds.
const (
	StepHTTP        StepKind = "http"
	StepExec        StepKind = "exec"
	StepWaitDrained StepKind = "waitDrained"
	StepSleep       StepKind = "sleep"
	StepLabel       StepKind = "label"
	StepAnnotate    StepKind = "annotate"
	StepSaveState   StepKind = "saveState"
)

// Step is one thing done to a pod before it dies. Exactly one action is set.
// Steps are executed at least once: after a crash, an interrupted step runs
// again, so they must be idempotent, as Kubernetes lifecycle hooks must be.
//
// +kubebuilder:validation:XValidation:rule="[has(self.http), has(self.exec), has(self.waitDrained), has(self.sleep), has(self.label), has(self.annotate), has(self.saveState)].filter(x, x).size() == 1",message="a step sets exactly one of http, exec, waitDrained, sleep, label, annotate, saveState"
type Step struct {
	// Name identifies the step in status; unique within the policy.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	StepPolicy `json:",inline"`

	// +optional
	HTTP *HTTPAction `json:"http,omitempty"`
	// +optional
	Exec *ExecAction `json:"exec,omitempty"`
	// +optional
	WaitDrained *WaitDrainedAction `json:"waitDrained,omitempty"`
	// +optional
	Sleep *SleepAction `json:"sleep,omitempty"`
	// +optional
	Label *MetadataAction `json:"label,omitempty"`
	// +optional
	Annotate *MetadataAction `json:"annotate,omitempty"`
	// +optional
	SaveState *SaveStateAction `json:"saveState,omitempty"`
}

// Kind returns which action the step sets.
func (s *Step) Kind() StepKind {
	switch {
	case s.HTTP != nil:
		return StepHTTP
	case s.Exec != nil:
		return StepExec
	case s.WaitDrained != nil:
		return StepWaitDrained
	case s.Sleep != nil:
		return StepSleep
	case s.Label != nil:
		return StepLabel
	case s.Annotate != nil:
		return StepAnnotate
	case s.SaveState != nil:
		return StepSaveState
	}
	return ""
}

// Endpoint addresses an HTTP endpoint of the pod, or any URL. URL is a Go
// template that sees .Pod (Name, Namespace, IP, UID, Labels, Annotations),
// .Run (Name, Namespace, Attempt) and .Policy (Name); when empty the URL is
// http://<pod IP>:<port><path>.
//
// +kubebuilder:validation:XValidation:rule="has(self.url) || has(self.port)",message="set url, or port (and path) to call the pod itself"
type Endpoint struct {
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	URL string `json:"url,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`
	// Headers are templates too.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
}

// HTTPAction sends one request, e.g. to make the app stop taking work.
type HTTPAction struct {
	Endpoint `json:",inline"`
	// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH;DELETE
	// +kubebuilder:default=POST
	// +optional
	Method string `json:"method,omitempty"`
	// Body is a template.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	Body string `json:"body,omitempty"`
	// ExpectedStatus lists the codes that count as success; default any 2xx.
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	// +optional
	ExpectedStatus []int32 `json:"expectedStatus,omitempty"`
}

// ExecAction runs a command in a container through the pods/exec subresource.
type ExecAction struct {
	// Container defaults to the pod's first container.
	// +optional
	Container string `json:"container,omitempty"`
	// +kubebuilder:validation:MinItems=1
	Command []string `json:"command"`
}

// WaitDrainedAction polls an endpoint (GET) until a condition holds. With no
// condition set, it waits for a 2xx answer.
//
// +kubebuilder:validation:XValidation:rule="[has(self.status), has(self.jsonField), has(self.metric)].filter(x, x).size() <= 1",message="set at most one of status, jsonField, metric"
type WaitDrainedAction struct {
	Endpoint `json:",inline"`
	// Interval between polls. Default 1s.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Status: done when the answer's code is one of these.
	// +optional
	Status []int32 `json:"status,omitempty"`
	// JSONField: done when a field of the JSON answer has a value.
	// +optional
	JSONField *JSONFieldCondition `json:"jsonField,omitempty"`
	// Metric: done when a Prometheus text-format metric is at most a value.
	// +optional
	Metric *MetricCondition `json:"metric,omitempty"`
}

// JSONFieldCondition compares a field of a JSON document.
type JSONFieldCondition struct {
	// Path is a dot-separated path into the document, e.g. "connections.active".
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`
	// Equals is compared with the field's JSON text (strings unquoted).
	// +optional
	Equals *string `json:"equals,omitempty"`
	// AtMost is compared with a numeric field.
	// +optional
	AtMost *float64 `json:"atMost,omitempty"`
}

// MetricCondition reads a metric from a Prometheus text exposition.
type MetricCondition struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Labels the series must carry; all matching series are summed.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// AtMost is the value the sum must not exceed. Default 0.
	// +optional
	AtMost float64 `json:"atMost,omitempty"`
}

// SleepAction waits, e.g. for endpoints to propagate after a label change.
type SleepAction struct {
	Duration metav1.Duration `json:"duration"`
}

// MetadataAction sets or removes labels or annotations on the pod, e.g. to
// take it out of a Service's endpoints before draining it.
//
// +kubebuilder:validation:XValidation:rule="has(self.set) || has(self.remove)",message="set or remove something"
type MetadataAction struct {
	// +optional
	Set map[string]string `json:"set,omitempty"`
	// +optional
	Remove []string `json:"remove,omitempty"`
}

// SaveStateAction fetches state from the pod (GET) and stores it in the state
// service under Key (a template; default "{{.Pod.Name}}").
type SaveStateAction struct {
	Endpoint `json:",inline"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Key string `json:"key,omitempty"`
}
