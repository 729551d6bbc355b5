package run

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// ExecAction runs a command in a container through pods/exec, as Velero's
// hooks and `kubectl exec` do. The step's timeout bounds it; the kubelet
// gives exec no timeout of its own.
type ExecAction struct {
	Client kubernetes.Interface
	Config *rest.Config
}

// Do implements Action.
func (a ExecAction) Do(ctx context.Context, t Target) (string, error) {
	spec := t.Step.Exec
	container := spec.Container
	if container == "" {
		container = t.Pod.Spec.Containers[0].Name
	} else if !hasContainer(t.Pod, container) {
		return "", permanent("pod %s has no container %q", t.Pod.Name, container)
	}
	req := a.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(t.Pod.Namespace).Name(t.Pod.Name).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: container, Command: spec.Command, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(a.Config, http.MethodPost, req.URL())
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", t.Pod.Name, container, err)
	}
	var out limitedBuffer
	out.max = 4 << 10
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out})
	msg := strings.TrimSpace(out.String())
	if err != nil {
		return "", fmt.Errorf("exec %q in %s/%s: %w: %s", strings.Join(spec.Command, " "), t.Pod.Name, container, err, trim(msg))
	}
	return trim(msg), nil
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// limitedBuffer keeps the last max bytes of a command's combined output;
// stdout and stderr are copied by two goroutines, hence the lock.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _ := b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return n, nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
