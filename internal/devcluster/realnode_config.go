package devcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The real node's network, which exists only inside the network namespace
// the test created (package netns): the node IP sits on that namespace's
// loopback, the pods on a bridge beside it.
const (
	NodeIP      = "10.250.0.2"
	RealPodCIDR = "10.251.0.0/24"
	ServiceCIDR = "10.96.0.0/16"
	// KwokPodCIDRWithRealNode is kwok's pod range in a cluster with a real
	// node (inside the test's network namespace too).
	KwokPodCIDRWithRealNode = "10.252.0.0/16"
	RealNodeName            = "real-node"
	// SandboxImage is the name containerd is told to use for pod sandboxes;
	// the project's lastcall-pause is imported under it.
	SandboxImage = "registry.k8s.io/pause:3.10"
	// RealNodeLabel is on the real node (value "true"), for nodeSelectors.
	RealNodeLabel = "devcluster.lastcall.dev/real-node"
	kubeletPort   = 10250
	bridgeName    = "lcbr0"
)

// nodePaths are the real node's files, all under the cluster's directory.
type nodePaths struct{ dir string }

func (p nodePaths) path(elem ...string) string {
	return filepath.Join(append([]string{p.dir}, elem...)...)
}
func (p nodePaths) containerdConfig() string { return p.path("containerd.toml") }
func (p nodePaths) containerdSocket() string { return p.path("containerd.sock") }
func (p nodePaths) cniConfDir() string       { return p.path("cni") }
func (p nodePaths) kubeletConfig() string    { return p.path("kubelet.yaml") }
func (p nodePaths) kubeletKubeconfig() string {
	return p.path("kubelet.kubeconfig")
}
func (p nodePaths) kubeletRoot() string { return p.path("kubelet") }

// containerdConfig is containerd 1.6's config (version 2) for the node:
// every path in the cluster's directory, cgroupfs (no systemd as PID 1),
// the project's pause image, and restrict_oom_score_adj, without which runc
// init fails on a machine lacking CAP_SYS_RESOURCE.
func (p nodePaths) containerdConfigText() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, p.path("containerd", "root"), p.path("containerd", "state"), p.containerdSocket(),
		p.path("containerd", "opt"), SandboxImage, p.cniConfDir())
}

// cniConfigText is a bridge with host-local addresses: the node needs a CNI
// config to become Ready, and pods need addresses the test can reach.
func (p nodePaths) cniConfigText() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "devcluster",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": %q
    }
  }]
}
`, bridgeName, RealPodCIDR, p.path("cni-ipam"))
}

// kubeletConfigText is the KubeletConfiguration: cgroupfs on cgroup v1, no
// iptables chains, images never collected (they are imported, not pulled),
// eviction thresholds low enough that a busy disk does not evict the tests'
// pods, and pods' cgroups under a root of this cluster's own, which Stop
// removes. extra is appended (YAML keys of KubeletConfiguration).
func (p nodePaths) kubeletConfigText(pk pki, certFile, keyFile, cgroupRoot, extra string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%}
volumePluginDir: %s
resolvConf: /etc/resolv.conf
serializeImagePulls: false
%s`, NodeIP, kubeletPort, certFile, keyFile, pk.caCert(), p.containerdSocket(), cgroupRoot,
		p.path("volume-plugins"), extra)
}

func writeFiles(files map[string]string) error {
	for path, text := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(strings.TrimLeft(text, "\n")), 0o600); err != nil {
			return err
		}
	}
	return nil
}
