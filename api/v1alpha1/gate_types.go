package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GateState is the position of a manual gate.
// +kubebuilder:validation:Enum=Open;Closed
type GateState string

// Gate states. A gate that does not exist is Closed, as in flagger-loadtester.
const (
	GateStateOpen   GateState = "Open"
	GateStateClosed GateState = "Closed"
)

// Gate holds the manual gates of one Flagger canary: the gate and the
// rollback switch of flagger-loadtester's /gate/* and /rollback/* endpoints,
// kept in the cluster so that every lastcall replica answers the same and a
// restart forgets nothing. It is named after the canary and lives in the
// canary's namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=lastcall
// +kubebuilder:printcolumn:name="Gate",type=string,JSONPath=`.spec.gate.state`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.gate.by`
// +kubebuilder:printcolumn:name="Changed",type=date,JSONPath=`.spec.gate.at`
// +kubebuilder:printcolumn:name="Rollback",type=string,JSONPath=`.spec.rollback.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Gate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec GateSpec `json:"spec,omitempty"`
}

// GateSpec is the state of both switches.
type GateSpec struct {
	// Gate answers /gate/check: Open passes (200 Approved), Closed holds
	// the canary (403 Forbidden).
	// +kubebuilder:default={state: Closed}
	// +optional
	Gate GateSwitch `json:"gate,omitempty"`
	// Rollback answers /rollback/check: Open makes Flagger roll back.
	// +kubebuilder:default={state: Closed}
	// +optional
	Rollback GateSwitch `json:"rollback,omitempty"`
}

// GateSwitch is one switch and who last moved it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.at) || has(self.by)",message="a change time (at) is recorded with who made it (by)"
type GateSwitch struct {
	// +kubebuilder:default=Closed
	// +optional
	State GateState `json:"state,omitempty"`
	// By is who last changed the state (a user or ServiceAccount name).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	By string `json:"by,omitempty"`
	// At is when the state was last changed.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
}

// IsOpen reports whether the switch passes; anything but Open holds.
func (s GateSwitch) IsOpen() bool { return s.State == GateStateOpen }

// GateList is a list of Gate.
//
// +kubebuilder:object:root=true
type GateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Gate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Gate{}, &GateList{})
}
