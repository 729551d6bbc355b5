//go:build integration

package realnode

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestPreStopHookSavesStateAndTheReplacementRestoresIt is the seed's
// preStop scenario on the real kubelet (issue 17, item 1). The app's image
// lacks the helper: an initContainer of the lastcall-prestop image copies
// it into an emptyDir, and the app's exec preStop hook runs it. On
// deletion the kubelet runs the hook; the helper drains the app, waits for
// its connections, saves its state to lastcall's state API and returns, and
// only then does the app get SIGTERM. A new pod of the same name restores
// exactly those bytes in its initContainer. The app reports each moment to
// the test, which records the budget split.
func TestPreStopHookSavesStateAndTheReplacementRestoresIt(t *testing.T) {
	env := clustertest.New(t)
	ctx := context.Background()
	stateURL, _, rec := seedSetup(t, env)
	const grace, reserve = 10, 3
	pod := appPod(env.Namespace, "app-0", stateURL, rec.url, grace, reserve)
	pods := env.Client.CoreV1().Pods(env.Namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := waitPodReady(t, env, pod.Name)
	if got := rec.first("app-0", "start"); got == nil || got.detail != "" {
		t.Fatalf("the first pod should start with no state: %+v", got)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 7; i++ {
		resp, err := hc.Get("http://" + net.JoinHostPort(ip, "8080") + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	deleted := time.Now()
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Duration(grace+15)*time.Second, func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		return err != nil, nil
	}, "pod %s gone", pod.Name)
	gone := time.Now()
	drain, sigterm, exit := rec.first("app-0", "drain"), rec.first("app-0", "sigterm"), rec.first("app-0", "exit")
	if drain == nil || sigterm == nil || exit == nil {
		t.Fatalf("the app saw drain %v, SIGTERM %v, exit %v", drain != nil, sigterm != nil, exit != nil)
	}
	if !strings.Contains(drain.detail, "served=7 ") {
		t.Errorf("state written at drain: %q, want served=7", drain.detail)
	}
	if !sigterm.at.After(drain.at) {
		t.Errorf("SIGTERM at %s before the drain at %s: the kubelet must wait for the hook", sigterm.at, drain.at)
	}
	hook := sigterm.at.Sub(drain.at)
	t.Logf("budget split (grace %ds, reserve %ds): delete → drain (hook start) %s; drain → SIGTERM (wait, save, hook returned) %s; SIGTERM → exit %s; delete → pod gone %s",
		grace, reserve, drain.at.Sub(deleted).Round(time.Millisecond), hook.Round(time.Millisecond),
		exit.at.Sub(sigterm.at).Round(time.Millisecond), gone.Sub(deleted).Round(time.Millisecond))
	if sigterm.at.Sub(deleted) > time.Duration(grace-reserve+1)*time.Second {
		t.Errorf("SIGTERM came %s after the delete: the hook must leave the reserve of %ds", sigterm.at.Sub(deleted), reserve)
	}

	// The replacement (same name, as a StatefulSet makes it) restores the
	// bytes in its initContainer before the app starts.
	next := appPod(env.Namespace, "app-0", stateURL, rec.url, grace, reserve)
	if _, err := pods.Create(ctx, next, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodReady(t, env, next.Name)
	starts := rec.all("app-0", "start")
	if len(starts) != 2 || starts[1].detail != drain.detail {
		t.Fatalf("the replacement started with %+v, want exactly the state saved at drain %q", starts, drain.detail)
	}
	_ = pods.Delete(ctx, next.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
}

const (
	testAppImage = "lastcall.test/testapp:dev"
	prestopImage = "lastcall.test/lastcall-prestop:dev"
)

// appPod is the seed's app with the helper copied in and a preStop hook.
func appPod(ns, name, stateURL, recorder string, grace, reserve int) *corev1.Pod {
	podEnv := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "RECORDER", Value: recorder},
	}
	mounts := []corev1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "lastcall-token", MountPath: "/var/run/secrets/lastcall", ReadOnly: true},
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "seed"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{devcluster.RealNodeLabel: "true"},
			ServiceAccountName:            "app",
			TerminationGracePeriodSeconds: ptr.To(int64(grace)),
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "lastcall", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "lastcall-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "lastcall", ExpirationSeconds: ptr.To[int64](3600), Path: "token"}},
				}}}},
			},
			InitContainers: []corev1.Container{
				{Name: "install-prestop", Image: prestopImage, ImagePullPolicy: corev1.PullNever,
					Args: []string{"install", "/lastcall"}, VolumeMounts: []corev1.VolumeMount{{Name: "lastcall", MountPath: "/lastcall"}}},
				{Name: "restore", Image: prestopImage, ImagePullPolicy: corev1.PullNever,
					Args: []string{"restore", "--state-url=" + stateURL, "--dir=/data"}, Env: podEnv, VolumeMounts: mounts},
			},
			Containers: []corev1.Container{{
				Name: "app", Image: testAppImage, ImagePullPolicy: corev1.PullNever,
				Env:          podEnv,
				VolumeMounts: append(mounts, corev1.VolumeMount{Name: "lastcall", MountPath: "/lastcall", ReadOnly: true}),
				Ports:        []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1},
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{
					"/lastcall/lastcall-prestop",
					"--budget=" + strconv.Itoa(grace) + "s", "--reserve=" + strconv.Itoa(reserve) + "s",
					"--drain-url=http://127.0.0.1:8080/drain", "--port=8080",
					"--save=/data", "--state-url=" + stateURL,
				}}}},
			}},
		},
	}
}
