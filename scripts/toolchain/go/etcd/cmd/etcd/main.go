// Command etcd is the etcd server, built from the upstream go.etcd.io/etcd/server/v3 module at
// the version pinned in scripts/toolchain/versions.json (same entry point as upstream's main.go).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
