package devcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
)

// DevPodCIDR is the pod CIDR of a cluster started with a persistent Dir
// (`lastcall-dev up`), so that pod IPs stay the same across restarts.
const DevPodCIDR = "127.1.0.0/16"

// cidrLease reserves a loopback /16 for one cluster's pods. Test packages run
// their clusters side by side (go test -p 2) and serve pods on pod IPs: two
// clusters handing out the same IPs would make one test's server answer the
// other's requests, or fail to bind. The reservation is an flock on a file per
// /16, so a crashed test process frees its range with its last descriptor.
type cidrLease struct {
	cidr string
	f    *os.File
}

// leasePodCIDR reserves one of 127.2.0.0/16 … 127.254.0.0/16, leaving
// 127.0/16 to the host and 127.1/16 to the dev cluster.
func leasePodCIDR() (*cidrLease, error) {
	dir := filepath.Join(os.TempDir(), "lastcall-devcluster-cidr")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("pod CIDR lease: %w", err)
	}
	for _, i := range rand.Perm(253) {
		octet := i + 2
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("127.%d.lock", octet)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return nil, fmt.Errorf("pod CIDR lease: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &cidrLease{cidr: fmt.Sprintf("127.%d.0.0/16", octet), f: f}, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("pod CIDR lease: %w", err)
		}
	}
	return nil, errors.New("pod CIDR lease: every 127.x.0.0/16 is taken by a running cluster")
}

func (l *cidrLease) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
