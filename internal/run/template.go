package run

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// templateData is what URL, header and body templates see.
type templateData struct {
	Pod    podData
	Run    runData
	Policy policyData
}

type podData struct {
	Name, Namespace, IP, UID, Node string
	Labels, Annotations            map[string]string
}

type runData struct {
	Name, Namespace string
	Attempt         int32
}

type policyData struct{ Name string }

func dataFor(t Target) templateData {
	d := templateData{
		Run:    runData{Name: t.Run.Name, Namespace: t.Run.Namespace, Attempt: t.Run.Status.Attempt},
		Policy: policyData{Name: t.Policy.Name},
	}
	if p := t.Pod; p != nil {
		d.Pod = podData{Name: p.Name, Namespace: p.Namespace, IP: p.Status.PodIP, UID: string(p.UID),
			Node: p.Spec.NodeName, Labels: p.Labels, Annotations: p.Annotations}
	}
	return d
}

// funcs are available to every template: json quotes a value for a JSON
// body, so that messages with quotes or newlines stay valid JSON.
var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// render executes a template; errors are permanent (retrying cannot help).
func render(name, text string, data any) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return "", permanent("parse %s template: %v", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return "", permanent("render %s template: %v", name, err)
	}
	return buf.String(), nil
}

// endpointURL resolves an Endpoint for a target.
func endpointURL(e v1alpha1.Endpoint, t Target) (string, error) {
	data := dataFor(t)
	if e.URL != "" {
		u, err := render("url", e.URL, data)
		if err != nil {
			return "", err
		}
		if !t.URLs.Allows(u) {
			return "", permanent("endpoint url %s is not allowed: a step calls its pod unless the operator allows URL prefixes (lastcall server --step-url-prefix)", u)
		}
		return u, nil
	}
	if data.Pod.IP == "" {
		return "", fmt.Errorf("pod %s has no IP yet", data.Pod.Name)
	}
	return fmt.Sprintf("http://%s:%d%s", data.Pod.IP, e.Port, e.Path), nil
}

func renderHeaders(h map[string]string, t Target) (map[string]string, error) {
	out := make(map[string]string, len(h))
	for k, v := range h {
		r, err := render("header "+k, v, dataFor(t))
		if err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, nil
}

// URLAllowList is the operator's list of URL prefixes that policies may
// make the server call (endpoint.url of a step, a notify exit handler).
// Policy authors are namespace users, and the server calls from inside the
// cluster with its own network reach: without the list, a step calls only
// the pod it runs for.
type URLAllowList struct{ prefixes []string }

// NewURLAllowList takes prefixes such as "https://hooks.slack.com/"; each
// must be an http or https URL with a host, ending at a path boundary.
func NewURLAllowList(prefixes []string) (*URLAllowList, error) {
	for _, p := range prefixes {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(p, "/") {
			return nil, fmt.Errorf("URL prefix %q: want http(s)://host/ or http(s)://host/path/, ending in /", p)
		}
	}
	return &URLAllowList{prefixes: prefixes}, nil
}

// Allows reports whether raw starts with an allowed prefix.
func (l *URLAllowList) Allows(raw string) bool {
	if l == nil {
		return false
	}
	for _, p := range l.prefixes {
		if strings.HasPrefix(raw, p) || raw == strings.TrimSuffix(p, "/") {
			return true
		}
	}
	return false
}
