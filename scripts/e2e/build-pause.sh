#!/usr/bin/env bash
# Builds the pods' sandbox ("pause") program once per machine: a static binary that waits for SIGTERM or SIGINT.
# Why our own: the usual registry.k8s.io/pause image cannot be pulled offline. Prints the binary's path.
set -euo pipefail
source "$(dirname "$0")/env.sh"
dest="$E2E_CACHE/e2e/pause-1/pause"
if [[ -x "$dest" ]]; then echo "$dest"; exit 0; fi
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "failed to build the pause program: go is not installed (install Go 1.25 or later)" >&2; exit 69; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/main.go" <<'GO'
// The pod sandbox's process: holds the pod's namespaces until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
GO
printf 'module pause\n\ngo 1.21\n' > "$work/go.mod"
mkdir -p "$(dirname "$dest")"
(cd "$work" && CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags '-s -w' -o "$work/pause" .)
mv "$work/pause" "$dest"
echo "$dest"
