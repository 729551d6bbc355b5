// Command demo runs lastcall's scenario on the dev cluster started by
// `lastcall dev up` (see `make demo`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cache, err := devcluster.DefaultCacheDir()
	if err != nil {
		return err
	}
	kubeconfig := flag.String("kubeconfig", filepath.Join(filepath.Dir(cache), "dev", "kubeconfig"), "dev cluster kubeconfig")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load %s (is the dev cluster up? `lastcall dev up`): %w", *kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	const ns = "demo"
	say := func(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

	say("creating namespace %s and Deployment web (3 replicas) on the kwok nodes", ns)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Containers:                    []corev1.Container{{Name: "app", Image: "example.invalid/web:1"}},
				},
			},
		},
	}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	start := time.Now()
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas == 3, nil
	})
	if err != nil {
		return fmt.Errorf("wait for web to be available: %w", err)
	}
	say("web is Available after %s", time.Since(start).Round(time.Millisecond))
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		fmt.Printf("    pod %-28s node %-12s ip %-12s %s\n", p.Name, p.Spec.NodeName, p.Status.PodIP, p.Status.Phase)
	}
	say("look for yourself:")
	fmt.Printf("    kubectl --kubeconfig %s -n %s get deploy,pods -o wide\n", *kubeconfig, ns)
	fmt.Printf("    kubectl --kubeconfig %s -n %s delete pod %s   # stays Terminating for its 10 s grace\n", *kubeconfig, ns, pods.Items[0].Name)
	say("stop the cluster with: go run ./cmd/lastcall dev down")
	return nil
}
