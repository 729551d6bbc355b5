package devcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

func (c *Cluster) etcdArgs() []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.ports.EtcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports.EtcdPeer)
	return []string{
		"--name=devcluster",
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=devcluster=" + peer,
		"--listen-metrics-urls=",
		// A throwaway cluster: durability of etcd's own writes is not under
		// test, and fsync on every write slows every test down.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

// apiServerArgs: with a real node, the API server also listens on the node
// IP (inside the test's network namespace) and advertises it, so that pods
// reach it through the kubernetes Service.
func (c *Cluster) apiServerArgs(realNode bool) []string {
	bind, advertise := "127.0.0.1", "127.0.0.1"
	if realNode {
		bind, advertise = "0.0.0.0", NodeIP
	}
	return []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", c.ports.EtcdClient),
		"--bind-address=" + bind,
		"--advertise-address=" + advertise,
		"--kubelet-client-certificate=" + c.pki.path(apiServerKubeletClient+".crt"),
		"--kubelet-client-key=" + c.pki.path(apiServerKubeletClient+".key"),
		"--secure-port=" + strconv.Itoa(c.ports.APIServer),
		"--tls-cert-file=" + c.pki.servingCert(),
		"--tls-private-key-file=" + c.pki.servingKey(),
		"--client-ca-file=" + c.pki.caCert(),
		"--token-auth-file=" + c.pki.tokenFile(),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + c.pki.saPub(),
		"--service-account-signing-key-file=" + c.pki.saKey(),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allow-privileged=true",
		"--kubelet-preferred-address-types=InternalIP",
		// kwok serves the kubelet API (exec, logs) with a certificate from
		// the same CA, so the API server can verify it as it would a kubelet.
		"--kubelet-certificate-authority=" + c.pki.caCert(),
		"--profiling=false",
		"--v=1",
	}
}

func (c *Cluster) controllerManagerArgs() []string {
	kc := c.KubeconfigPath()
	return []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports.ControllerManager),
		"--leader-elect=false",
		"--controllers=*",
		"--service-account-private-key-file=" + c.pki.saKey(),
		"--root-ca-file=" + c.pki.caCert(),
		"--use-service-account-credentials=false",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--v=1",
	}
}

func (c *Cluster) schedulerArgs() []string {
	kc := c.KubeconfigPath()
	return []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports.Scheduler),
		"--leader-elect=false",
		"--v=1",
	}
}

func (c *Cluster) kwokArgs(podCIDR string) []string {
	return []string{
		"--kubeconfig=" + c.KubeconfigPath(),
		"--config=" + filepath.Join(c.dir, "kwok.yaml"),
		"--manage-nodes-with-annotation-selector=" + NodeAnnotation + "=fake",
		"--cidr=" + podCIDR,
		"--node-ip=127.0.0.1",
		"--node-port=" + strconv.Itoa(c.ports.Kwok),
		"--server-address=127.0.0.1:" + strconv.Itoa(c.ports.Kwok),
		"--tls-cert-file=" + c.pki.servingCert(),
		"--tls-private-key-file=" + c.pki.servingKey(),
		// kwok renews each node's Lease every quarter of this, as the
		// kubelet does; without it only the heartbeat Stage (every 20–45 s)
		// keeps nodes Ready, and on a loaded machine the node-lifecycle
		// controller's 50 s grace ran out mid-test.
		"--node-lease-duration-seconds=40",
	}
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	ca, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["devcluster"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: ca}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken, ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile}
	kc.Contexts["lastcall-dev"] = &clientcmdapi.Context{Cluster: "devcluster", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "lastcall-dev"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Only used for health endpoints of components on loopback that
		// serve self-signed certificates of their own.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		resp, err := hc.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *Cluster) waitAPIServer(ctx context.Context, timeout time.Duration) error {
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	rc := cs.Discovery().RESTClient()
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		body, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// waitComponents waits for the controller manager (the serviceaccount
// controller has made the default ServiceAccount), the scheduler and kwok
// (every node Ready and schedulable).
func (c *Cluster) waitComponents(ctx context.Context, cs kubernetes.Interface, nodes int) error {
	if err := c.waitHTTP(ctx, BinKubeControllerManager, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports.ControllerManager), 60*time.Second); err != nil {
		return fmt.Errorf("kube-controller-manager healthz: %w", err)
	}
	if err := c.waitHTTP(ctx, BinKubeScheduler, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports.Scheduler), 60*time.Second); err != nil {
		return fmt.Errorf("kube-scheduler healthz: %w", err)
	}
	if err := ensureNodes(ctx, cs, nodes); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		ready, err := nodesSchedulable(ctx, cs)
		if err != nil {
			return false, nil
		}
		return ready >= nodes, nil
	})
}

// exited reports a component that died while we waited for it.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		if !p.running() {
			return fmt.Errorf("%s exited; see %s", p.name, p.logPath)
		}
	}
	return nil
}
