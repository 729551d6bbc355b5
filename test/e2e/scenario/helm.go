package scenario

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// HelmInstall runs lastcall as a user installs it: the chart, with the
// project's image, on the cluster's real node (devcluster.RealNode), its
// state on a hostPath PersistentVolume. The kill is a force delete of the
// server's pod, which the kubelet answers with SIGKILL; the Deployment
// makes the next one.
type HelmInstall struct {
	// Chart is the chart's directory; Image and Tag the image the node has.
	Chart, Image, Tag string
	// Namespace of the release; default lastcall-system.
	Namespace string
	// ClusterIP is the Service's fixed address, so that the gate recorder
	// can forward to it before the install; default 10.96.0.80.
	ClusterIP string
}

// lastcallRunner is where the scenario's lastcall server runs.
type lastcallRunner interface {
	// start makes a server ready: the first one, or the next after kill.
	start(ctx context.Context) error
	// kill ends the server as a crash would (SIGKILL).
	kill()
	// stop ends it for good.
	stop()
	// exited returns the log tail of a server that exited by itself, or "".
	exited() string
	// addr is the host:port of its HTTP API.
	addr() string
	// logs are its log files, for the report.
	logs() []string
}

func (l *lastcallServer) addr() string { return l.httpAddr }

func (l *lastcallServer) logs() []string {
	var out []string
	for i := 1; i <= l.starts; i++ {
		out = append(out, l.logPath(i))
	}
	return out
}

type helmLastcall struct {
	cfg        HelmInstall
	kubeconfig string
	stateDir   string
	cs         kubernetes.Interface
	installed  bool
	killedUID  string
	starts     int
}

const stateVolume = "lastcall-scenario-state"

func newHelmLastcall(cfg HelmInstall, cs kubernetes.Interface, kubeconfig, logDir string) *helmLastcall {
	if cfg.Namespace == "" {
		cfg.Namespace = "lastcall-system"
	}
	if cfg.ClusterIP == "" {
		cfg.ClusterIP = "10.96.0.80"
	}
	return &helmLastcall{cfg: cfg, cs: cs, kubeconfig: kubeconfig, stateDir: filepath.Join(logDir, "lastcall-state")}
}

func (h *helmLastcall) addr() string { return net.JoinHostPort(h.cfg.ClusterIP, "8080") }

func (h *helmLastcall) helm(ctx context.Context, args ...string) error {
	out, err := devcluster.Helm(ctx, devcluster.BuildOptions{}, append(args, "--kubeconfig", h.kubeconfig)...)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

func (h *helmLastcall) start(ctx context.Context) error {
	h.starts++
	if !h.installed {
		if err := h.install(ctx); err != nil {
			return err
		}
		h.installed = true
		return nil
	}
	// After a kill: wait for the Deployment's next pod to be Ready.
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := h.cs.CoreV1().Pods(h.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if string(p.UID) != h.killedUID && p.DeletionTimestamp == nil && podReady(&p) {
				return true, nil
			}
		}
		return false, nil
	})
}

// install creates the state volume (a hostPath the image's user 65532 may
// write) and the release, and waits until the server is Ready.
func (h *helmLastcall) install(ctx context.Context) error {
	if err := os.MkdirAll(h.stateDir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(h.stateDir, 65532, 65532); err != nil {
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: stateVolume},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: h.stateDir}},
		},
	}
	if _, err := h.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return h.helm(ctx, "install", "lastcall", h.cfg.Chart, "-n", h.cfg.Namespace, "--create-namespace",
		"--wait=watcher", "--timeout=3m",
		"--set", "image.repository="+h.cfg.Image, "--set", "image.tag="+h.cfg.Tag, "--set", "image.pullPolicy=Never",
		"--set", "service.clusterIP="+h.cfg.ClusterIP,
		"--set-string", "server.nodeSelector.devcluster\\.lastcall\\.dev/real-node=true")
}

func (h *helmLastcall) kill() {
	ctx := context.Background()
	pods, err := h.cs.CoreV1().Pods(h.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
	if err != nil || len(pods.Items) == 0 {
		return
	}
	p := pods.Items[0]
	h.killedUID = string(p.UID)
	_ = h.cs.CoreV1().Pods(h.cfg.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
}

func (h *helmLastcall) stop() {
	if !h.installed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = h.helm(ctx, "uninstall", "lastcall", "-n", h.cfg.Namespace, "--wait")
	// The claim is kept by uninstall (its resource policy): the scenario's
	// volume goes with it.
	_ = h.cs.CoreV1().PersistentVolumeClaims(h.cfg.Namespace).Delete(ctx, "lastcall-state", metav1.DeleteOptions{})
	_ = h.cs.CoreV1().PersistentVolumes().Delete(ctx, stateVolume, metav1.DeleteOptions{})
}

// exited: the Deployment restarts a server that exits; the scenario sees
// that as a gate it cannot reach.
func (h *helmLastcall) exited() string { return "" }

// logs: the server's container logs are in the node's pod log directory;
// `kubectl logs` reads them while the pods exist.
func (h *helmLastcall) logs() []string {
	return []string{fmt.Sprintf("kubectl -n %s logs deploy/lastcall (%d server pods started)", h.cfg.Namespace, h.starts)}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
