package devcluster

import "fmt"

// Component versions. They must match the wrapper modules under
// hack/devcluster; TestVersionsMatchWrapperModules keeps them in step.
const (
	KubernetesVersion = "v1.34.4"
	EtcdVersion       = "v3.6.16"
	KwokVersion       = "v0.8.0"
	// HelmVersion is the helm the chart is linted, rendered and installed
	// with (hack/devcluster/helm).
	HelmVersion = "v4.3.2"
)

// Names of the binaries EnsureBinaries provides.
const (
	BinKubeAPIServer         = "kube-apiserver"
	BinKubeControllerManager = "kube-controller-manager"
	BinKubeScheduler         = "kube-scheduler"
	BinEtcd                  = "etcd"
	BinKwok                  = "kwok"
	// The real node's binaries, built only when BuildOptions.RealNode asks.
	BinKubelet   = "kubelet"
	BinKubeProxy = "kube-proxy"
	// BinHelm is built only when BuildOptions.Helm asks.
	BinHelm = "helm-" + HelmVersion
)

// binary says how one component is built from its wrapper module.
type binary struct {
	name     string
	realNode bool   // built only for the real node lane
	helm     bool   // built only when helm is asked for
	module   string // directory under hack/devcluster
	pkg      string // package to build, relative to the module
	ldflags  string
	approx   string // first-build time on 2 cores, for the progress message
}

func binaries() []binary {
	kubeVersion := fmt.Sprintf("-X k8s.io/component-base/version.gitVersion=%s "+
		"-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 "+
		"-X k8s.io/component-base/version.gitTreeState=clean", KubernetesVersion)
	return []binary{
		{name: BinEtcd, module: "etcd", pkg: ".", approx: "1 min"},
		{name: BinKwok, module: "kwok", pkg: "sigs.k8s.io/kwok/cmd/kwok", approx: "2–4 min"},
		{name: BinKubeAPIServer, module: "kube", pkg: "k8s.io/kubernetes/cmd/kube-apiserver", ldflags: kubeVersion, approx: "4–9 min"},
		{name: BinKubeControllerManager, module: "kube", pkg: "k8s.io/kubernetes/cmd/kube-controller-manager", ldflags: kubeVersion, approx: "1.5 min"},
		{name: BinKubeScheduler, module: "kube", pkg: "k8s.io/kubernetes/cmd/kube-scheduler", ldflags: kubeVersion, approx: "10 s"},
		{name: BinHelm, helm: true, module: "helm", pkg: "helm.sh/helm/v4/cmd/helm", ldflags: "-X helm.sh/helm/v4/internal/version.version=" + HelmVersion, approx: "3 min"},
		{name: BinKubelet, realNode: true, module: "kube", pkg: "k8s.io/kubernetes/cmd/kubelet", ldflags: kubeVersion, approx: "40 s after kube-apiserver"},
		{name: BinKubeProxy, realNode: true, module: "kube", pkg: "k8s.io/kubernetes/cmd/kube-proxy", ldflags: kubeVersion, approx: "20 s after kubelet"},
	}
}

// versionKey names the cache directory of one set of component versions.
func versionKey() string {
	return fmt.Sprintf("k8s-%s_etcd-%s_kwok-%s", KubernetesVersion, EtcdVersion, KwokVersion)
}
