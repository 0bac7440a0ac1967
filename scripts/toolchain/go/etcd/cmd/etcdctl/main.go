// Command etcdctl is etcd's command-line client, built from the upstream
// go.etcd.io/etcd/etcdctl/v3 module (same entry point as upstream's main.go).
package main

import (
	"go.etcd.io/etcd/etcdctl/v3/ctlv3"
)

func main() {
	ctlv3.MustStart()
}
