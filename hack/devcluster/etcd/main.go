// Command etcd is etcd's own server, built from the Go module proxy so that the
// dev cluster does not depend on a distribution's older etcd (Debian ships 3.4,
// which lacks RequestWatchProgress and makes kwok's watches lag).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
