package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
	"github.com/lastcall-dev/lastcall/internal/auth"
	"github.com/lastcall-dev/lastcall/internal/httpjson"
)

// StartRequest is the body of POST /v1/runs: run a policy for one pod. It is
// what `lastcall prestop`'s run step sends from the pod's preStop hook.
type StartRequest struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Policy names the TerminationPolicy; empty: the one policy that
	// covers the pod.
	Policy string `json:"policy,omitempty"`
}

// StartAnswer is the body of a successful POST /v1/runs.
type StartAnswer struct {
	Run       string `json:"run"`
	Namespace string `json:"namespace"`
	// Created is false when the pod's run of this policy existed already
	// (a hook that ran twice, or a second container's hook).
	Created bool   `json:"created"`
	Phase   string `json:"phase,omitempty"`
}

// Reasons of the runs API's errors (auth's for credentials).
const (
	ReasonInvalid  = "InvalidRequest"
	ReasonNotFound = "NotFound"
	ReasonNoPolicy = "NoPolicy"
)

// maxStartBody bounds a StartRequest: three names.
const maxStartBody = 4 << 10

// DefaultAPIRunTTL is how long a run started through the API is kept after
// it completes.
const DefaultAPIRunTTL = 24 * time.Hour

// API serves POST /v1/runs. Callers authenticate like the state API. A
// ServiceAccount may start runs only for pods of its own namespace, and with
// a token bound to a pod (the projected token of the pod's own ServiceAccount)
// only for that pod; anyone else needs RBAC create on terminationruns in the
// namespace. A run is started only for a pod that exists and that the policy
// covers, and once per pod (by UID) and policy: a repeated call answers the
// same run. So no caller can make the server do more than the policies of
// the pods it may act for.
type API struct {
	Authn   *auth.Authenticator
	Authz   *auth.Authorizer
	Cache   client.Reader
	Starter *Starter
	TTL     time.Duration
	Log     *slog.Logger
}

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/runs", a.start)
}

var (
	errInvalid  = errors.New("invalid request")
	errNotFound = errors.New("not found")
	errNoPolicy = errors.New("no policy")
)

func (a *API) start(w http.ResponseWriter, r *http.Request) {
	ans, code, err := a.serve(r.Context(), w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpjson.Write(w, code, ans)
}

func (a *API) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) (StartAnswer, int, error) {
	u, err := a.Authn.Authenticate(r)
	if err != nil {
		return StartAnswer{}, 0, httpjson.AuthError(err)
	}
	req, err := decodeStart(http.MaxBytesReader(w, r.Body, maxStartBody))
	if err != nil {
		return StartAnswer{}, 0, err
	}
	if err := a.authorize(ctx, u, req); err != nil {
		return StartAnswer{}, 0, err
	}
	pod, err := cachedPod(ctx, a.Cache, req)
	if err != nil {
		return StartAnswer{}, 0, err
	}
	pol, err := a.policy(ctx, pod, req.Policy)
	if err != nil {
		return StartAnswer{}, 0, err
	}
	run, created, err := a.Starter.Start(ctx, Request{Policy: pol, Pods: []corev1.Pod{*pod},
		NamePrefix: pol.Name + "-prestop", Key: []string{string(pod.UID), pol.Name}, TTL: a.TTL,
		Trigger: v1alpha1.Trigger{Source: v1alpha1.TriggerPreStop, Node: pod.Spec.NodeName,
			Reason: fmt.Sprintf("requested by %s for pod %s (its preStop hook)", u.Name, pod.Name)}})
	if err != nil {
		return StartAnswer{}, 0, err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		a.Log.Info("run started through the API", "namespace", run.Namespace, "run", run.Name, "pod", pod.Name, "policy", pol.Name, "by", u.Name)
	}
	return StartAnswer{Run: run.Name, Namespace: run.Namespace, Created: created, Phase: string(run.Status.Phase)}, code, nil
}

func decodeStart(body io.Reader) (StartRequest, error) {
	var req StartRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return req, fmt.Errorf("%w: the body is over %d bytes", errInvalid, maxStartBody)
		}
		return req, fmt.Errorf("%w: body: %v", errInvalid, err)
	}
	var problems []string
	if errs := validation.IsDNS1123Label(req.Namespace); len(errs) > 0 {
		problems = append(problems, "namespace: "+strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(req.Pod); len(errs) > 0 {
		problems = append(problems, "pod: "+strings.Join(errs, "; "))
	}
	if req.Policy != "" {
		if errs := validation.IsDNS1123Subdomain(req.Policy); len(errs) > 0 {
			problems = append(problems, "policy: "+strings.Join(errs, "; "))
		}
	}
	if len(problems) > 0 {
		return req, fmt.Errorf("%w: %s", errInvalid, strings.Join(problems, ", "))
	}
	return req, nil
}

// authorize: the static token anything; a ServiceAccount its own namespace
// (and its own pod when the token is pod-bound); anyone else what RBAC
// allows (create terminationruns).
func (a *API) authorize(ctx context.Context, u auth.User, req StartRequest) error {
	switch {
	case u.IsAdmin():
		return nil
	case u.Namespace != "":
		if u.Namespace != req.Namespace {
			return fmt.Errorf("%w: ServiceAccount %s may start runs only for pods in namespace %s", auth.ErrForbidden, u.Name, u.Namespace)
		}
		if bound := u.PodName(); bound != "" && bound != req.Pod {
			return fmt.Errorf("%w: this token is bound to pod %s and may start runs only for it", auth.ErrForbidden, bound)
		}
		return nil
	case a.Authz == nil:
		return fmt.Errorf("%w: %s may not create terminationruns in %s", auth.ErrForbidden, u.Name, req.Namespace)
	}
	return httpjson.AuthError(a.Authz.Authorize(ctx, u, auth.Attributes{Verb: "create", Resource: "terminationruns", Namespace: req.Namespace}))
}

func cachedPod(ctx context.Context, c client.Reader, req StartRequest) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := c.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Pod}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: pod %s/%s", errNotFound, req.Namespace, req.Pod)
	case err != nil:
		return nil, err
	}
	return &pod, nil
}

// policy is the named policy if it covers the pod, else the only policy
// that does.
func (a *API) policy(ctx context.Context, pod *corev1.Pod, name string) (*v1alpha1.TerminationPolicy, error) {
	covering, err := CoveringPolicies(ctx, a.Cache, pod.Namespace, Covered{Kind: "Pod", Name: pod.Name, Labels: pod.Labels}, nil)
	if err != nil {
		return nil, err
	}
	if name != "" {
		for _, p := range covering {
			if p.Name == name {
				return p, nil
			}
		}
		return nil, fmt.Errorf("%w: TerminationPolicy %s/%s does not exist or does not cover pod %s", errNoPolicy, pod.Namespace, name, pod.Name)
	}
	switch len(covering) {
	case 0:
		return nil, fmt.Errorf("%w: no TerminationPolicy in %s covers pod %s", errNoPolicy, pod.Namespace, pod.Name)
	case 1:
		return covering[0], nil
	}
	names := make([]string, len(covering))
	for i, p := range covering {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("%w: policies %s all cover pod %s: name one", errNoPolicy, strings.Join(names, ", "), pod.Name)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if code, reason, ok := httpjson.AuthStatus(err); ok {
		httpjson.Fail(w, r, a.Log, code, reason, err)
		return
	}
	code, reason := http.StatusInternalServerError, "Internal"
	switch {
	case errors.Is(err, errInvalid):
		code, reason = http.StatusBadRequest, ReasonInvalid
	case errors.Is(err, errNotFound):
		code, reason = http.StatusNotFound, ReasonNotFound
	case errors.Is(err, errNoPolicy):
		code, reason = http.StatusUnprocessableEntity, ReasonNoPolicy
	}
	httpjson.Fail(w, r, a.Log, code, reason, err)
}
