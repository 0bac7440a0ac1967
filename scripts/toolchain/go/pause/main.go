// Command pause is the sandbox ("infra") container of a pod, built by scripts/toolchain/images.sh
// into the locally built pause image. It only holds the pod's namespaces: it sleeps, reaps the
// zombies re-parented to it when it is the pod's PID 1 (shared process namespace), and exits 0 on
// SIGINT or SIGTERM so the runtime can stop the sandbox without a kill timeout.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by images.sh from the image tag.
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause (marina) %s\n", version)
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
