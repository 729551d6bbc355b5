package devcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionsMatchWrapperModules(t *testing.T) {
	for _, tc := range []struct{ module, require string }{
		{"kube", "k8s.io/kubernetes " + KubernetesVersion},
		{"etcd", "go.etcd.io/etcd/server/v3 " + EtcdVersion},
		{"kwok", "sigs.k8s.io/kwok " + KwokVersion},
		{"helm", "helm.sh/helm/v4 " + HelmVersion},
	} {
		b, err := os.ReadFile(filepath.Join("..", "..", "hack", "devcluster", tc.module, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.require) {
			t.Errorf("hack/devcluster/%s/go.mod does not require %s: update versions.go or the wrapper", tc.module, tc.require)
		}
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 4}
	tb.Write([]byte("abc"))
	tb.Write([]byte("defg"))
	if tb.String() != "defg" {
		t.Fatalf("got %q", tb.String())
	}
}
