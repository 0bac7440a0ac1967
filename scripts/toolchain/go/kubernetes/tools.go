//go:build tools

// Package tools pins the Kubernetes commands that scripts/toolchain/install.sh builds. The build
// tag keeps it out of normal builds; `go mod tidy` still sees the imports, so the generated go.mod
// requires k8s.io/kubernetes and every module those commands need. go.mod and go.sum are generated
// by install.sh in a temporary copy of this directory (never committed).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
