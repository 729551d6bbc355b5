package auth

import "strings"

// serviceAccountPrefix starts the user name of every ServiceAccount token:
// system:serviceaccount:<namespace>:<name>.
const serviceAccountPrefix = "system:serviceaccount:"

// AdminName is the user name given to callers presenting the static token.
const AdminName = "lastcall:admin"

// User is an authenticated caller.
type User struct {
	Name   string
	UID    string
	Groups []string
	// Extra holds the authenticator's extra attributes (for a pod-bound
	// ServiceAccount token, e.g. authentication.kubernetes.io/pod-name);
	// they are passed on in SubjectAccessReviews.
	Extra map[string][]string
	// Namespace is set for ServiceAccounts: the namespace they live in.
	Namespace string

	// admin is set only for the static token; it is unexported so that no
	// group name an identity provider might hand out can grant it.
	admin bool
}

// IsAdmin reports whether the user presented the static admin token, which
// may do everything.
func (u User) IsAdmin() bool { return u.admin }

// ServiceAccount returns the namespace and name of a ServiceAccount user and
// ok=false for any other user.
func (u User) ServiceAccount() (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(u.Name, serviceAccountPrefix)
	if !found {
		return "", "", false
	}
	namespace, name, found = strings.Cut(rest, ":")
	if !found || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}

// PodName returns the pod a bound ServiceAccount token belongs to, if the
// API server said so.
func (u User) PodName() string {
	if v := u.Extra["authentication.kubernetes.io/pod-name"]; len(v) == 1 {
		return v[0]
	}
	return ""
}

func newUser(name, uid string, groups []string, extra map[string][]string) User {
	u := User{Name: name, UID: uid, Groups: groups, Extra: extra}
	if ns, _, ok := u.ServiceAccount(); ok {
		u.Namespace = ns
	}
	return u
}
