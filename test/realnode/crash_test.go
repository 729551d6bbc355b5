//go:build integration

package realnode

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
	"github.com/lastcall-dev/lastcall/internal/devcluster/clustertest"
)

// TestForceDeletedServerOnFileStoreIsReplacedWithoutCrashLoop: the chart's
// default install (one replica, file:// store on a volume). The server's
// pod is force-deleted: the Deployment makes a replacement at once, while
// the old server may still hold the store Lease (stopping, or killed
// without releasing it). The replacement must wait until the Lease is free
// and serve, not exit and be restarted with the kubelet's growing back-off
// (82 s in the demo before the fix, with one restart).
func TestForceDeletedServerOnFileStoreIsReplacedWithoutCrashLoop(t *testing.T) {
	env := clustertest.New(t)
	c := clustertest.Cluster()
	ctx := context.Background()
	importLastcallImage(t, "test-1")
	const rel, ns = "lc-file", "lastcall-file"

	dir := t.TempDir()
	if err := os.Chown(dir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "lc-file-state"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
		},
	}
	if _, err := env.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
	helm := func(args ...string) {
		t.Helper()
		if out, err := devcluster.Helm(ctx, devcluster.BuildOptions{}, append(args, "--kubeconfig", c.KubeconfigPath())...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	helm("install", rel, chartDir, "-n", ns, "--create-namespace", "--wait=watcher", "--timeout=3m",
		"--set", "image.repository="+imageRepo, "--set", "image.tag=test-1", "--set", "image.pullPolicy=Never",
		"--set", "server.priorityClass.name=lc-file-server",
		"--set-string", "server.nodeSelector.devcluster\\.lastcall\\.dev/real-node=true")
	t.Cleanup(func() {
		_, _ = devcluster.Helm(context.Background(), devcluster.BuildOptions{}, "uninstall", rel, "-n", ns, "--wait", "--kubeconfig", c.KubeconfigPath())
		_ = env.Client.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), rel+"-state", metav1.DeleteOptions{})
	})

	pods := env.Client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("server pods: %v %d", err, len(list.Items))
	}
	old := list.Items[0]
	killed := time.Now()
	if err := pods.Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	var next corev1.Pod
	clustertest.Eventually(t, 2*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.UID != old.UID && p.DeletionTimestamp == nil && ready(&p) {
				next = p
				return true, nil
			}
		}
		return false, nil
	}, "a Ready replacement server")
	took := time.Since(killed)
	restarts := next.Status.ContainerStatuses[0].RestartCount
	t.Logf("force-deleted server replaced and Ready after %s (%d container restarts)", took.Round(100*time.Millisecond), restarts)
	if restarts != 0 {
		prev, _ := pods.GetLogs(next.Name, &corev1.PodLogOptions{Previous: true}).DoRaw(ctx)
		t.Errorf("the replacement restarted %d times (%+v): it exited on the dead server's Lease instead of waiting it out; its log:\n%s",
			restarts, next.Status.ContainerStatuses[0].LastTerminationState.Terminated, prev)
	}
	// The old server's drain (5 s) and shutdown, or the Lease's 15 s past
	// its last renewal; then the elector's retry and the readiness probe.
	if took > 45*time.Second {
		t.Errorf("replacement Ready after %s, want under 45 s", took)
	}
}
