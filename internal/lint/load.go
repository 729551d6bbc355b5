package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Limits on what Load reads: manifests are small; anything bigger is a
// mistake (a binary, a log) and is refused rather than parsed.
const (
	MaxInputBytes = 32 << 20
	MaxDocuments  = 10000
)

// Object is one workload or PodDisruptionBudget found in the manifests.
type Object struct {
	Source    string // file name and document number, for messages
	Kind      string
	Namespace string
	Name      string
	// Pod is the pod spec and labels of a workload's pods; nil for a PDB.
	Pod      *corev1.PodTemplateSpec
	Replicas *int32 // nil when the kind has no replicas field or it is unset
	PDB      *policyv1.PodDisruptionBudget
	// Canary is a Flagger Canary, as written.
	Canary *unstructured.Unstructured
}

// ID names the object as kubectl would.
func (o Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// InputError is a manifest that cannot be read; it names the document.
type InputError struct {
	Source string
	Err    error
}

func (e *InputError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

var errTooLarge = fmt.Errorf("input is larger than %d bytes", MaxInputBytes)

// Load reads YAML (one or more documents) or JSON manifests from r. Kinds
// that carry no pod template and are not PDBs are skipped; a `List` is
// opened. name is used in Source.
func Load(name string, r io.Reader) ([]Object, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInputBytes+1))
	if err != nil {
		return nil, &InputError{name, err}
	}
	if len(data) > MaxInputBytes {
		return nil, &InputError{name, errTooLarge}
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []Object
	for doc := 1; ; doc++ {
		if doc > MaxDocuments {
			return nil, &InputError{name, fmt.Errorf("more than %d documents", MaxDocuments)}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, &InputError{fmt.Sprintf("%s: document %d", name, doc), err}
		}
		src := fmt.Sprintf("%s#%d", name, doc)
		objs, err := decode(src, raw, 0)
		if err != nil {
			return nil, &InputError{src, err}
		}
		out = append(out, objs...)
	}
}

type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decode turns one document into objects; depth bounds nested Lists.
func decode(src string, raw json.RawMessage, depth int) ([]Object, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil // an empty document, as between two "---"
	}
	var tm typeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if tm.Kind == "List" || (len(tm.Items) > 0 && len(tm.Kind) > 4 && tm.Kind[len(tm.Kind)-4:] == "List") {
		if depth > 0 {
			return nil, errors.New("a List inside a List")
		}
		var out []Object
		for i, item := range tm.Items {
			objs, err := decode(fmt.Sprintf("%s item %d", src, i), item, depth+1)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	o := Object{Source: src, Kind: tm.Kind}
	var err error
	switch tm.Kind {
	case "Pod":
		var p corev1.Pod
		err = json.Unmarshal(raw, &p)
		o.Namespace, o.Name = p.Namespace, p.Name
		o.Pod = &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
	case "PodTemplate":
		var p corev1.PodTemplate
		err = json.Unmarshal(raw, &p)
		o.Namespace, o.Name, o.Pod = p.Namespace, p.Name, &p.Template
	case "Deployment":
		var d appsv1.Deployment
		err = json.Unmarshal(raw, &d)
		o.Namespace, o.Name, o.Pod, o.Replicas = d.Namespace, d.Name, &d.Spec.Template, d.Spec.Replicas
	case "StatefulSet":
		var s appsv1.StatefulSet
		err = json.Unmarshal(raw, &s)
		o.Namespace, o.Name, o.Pod, o.Replicas = s.Namespace, s.Name, &s.Spec.Template, s.Spec.Replicas
	case "DaemonSet":
		var d appsv1.DaemonSet
		err = json.Unmarshal(raw, &d)
		o.Namespace, o.Name, o.Pod = d.Namespace, d.Name, &d.Spec.Template
	case "ReplicaSet":
		var r appsv1.ReplicaSet
		err = json.Unmarshal(raw, &r)
		o.Namespace, o.Name, o.Pod, o.Replicas = r.Namespace, r.Name, &r.Spec.Template, r.Spec.Replicas
	case "ReplicationController":
		var r corev1.ReplicationController
		err = json.Unmarshal(raw, &r)
		o.Namespace, o.Name, o.Replicas = r.Namespace, r.Name, r.Spec.Replicas
		if r.Spec.Template == nil {
			return nil, nil
		}
		o.Pod = r.Spec.Template
	case "Job":
		var j batchv1.Job
		err = json.Unmarshal(raw, &j)
		o.Namespace, o.Name, o.Pod = j.Namespace, j.Name, &j.Spec.Template
	case "Canary":
		if !strings.HasPrefix(tm.APIVersion, "flagger.app/") {
			return nil, nil
		}
		u := &unstructured.Unstructured{}
		err = u.UnmarshalJSON(raw)
		o.Namespace, o.Name, o.Canary = u.GetNamespace(), u.GetName(), u
	case "CronJob":
		var c batchv1.CronJob
		err = json.Unmarshal(raw, &c)
		o.Namespace, o.Name, o.Pod = c.Namespace, c.Name, &c.Spec.JobTemplate.Spec.Template
	case "PodDisruptionBudget":
		var p policyv1.PodDisruptionBudget
		err = json.Unmarshal(raw, &p)
		o.Namespace, o.Name, o.PDB = p.Namespace, p.Name, &p
	default:
		return nil, nil // not something with pods
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return []Object{o}, nil
}
