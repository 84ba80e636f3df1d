#!/usr/bin/env bash
# Builds Argo Workflows' workflow-controller and argoexec from the Go module proxy, once per machine.
# Usage: scripts/e2e/build-argo.sh   (ARGO_VERSION, default v4.0.5; prints the bin folder on stdout, progress on stderr)
set -euo pipefail

VERSION="${ARGO_VERSION:-v4.0.5}"
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/metaflow-kfp/e2e/argo-$VERSION"

if [[ -x "$DEST/workflow-controller" && -x "$DEST/argoexec" ]]; then echo "$DEST"; exit 0; fi

source "$(dirname "${BASH_SOURCE[0]}")/../argo-module.sh"
MODULE="$ARGO_MODULE"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
argo_module_copy "$VERSION" "Argo Workflows $VERSION" "$work/src" || exit 69
# Why: upstream signal_linux.go is a symlink to signal_darwin.go, and module zips drop symlinks,
# so ./cmd/argoexec does not compile from the proxy's copy until the file is back.
osdir="$work/src/workflow/executor/osspecific"
[[ -e "$osdir/signal_linux.go" ]] || cp "$osdir/signal_darwin.go" "$osdir/signal_linux.go"

start=$SECONDS
echo "build-argo: building workflow-controller and argoexec $VERSION from the Go module proxy (about a minute or two)" >&2
ldflags="-s -w -X $MODULE.version=$VERSION -X $MODULE.gitTag=$VERSION -X $MODULE.gitTreeState=clean"
(
  cd "$work/src"
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  # Why nice: the build takes minutes of both cores on machines shared with other work.
  nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$work/bin/" ./cmd/workflow-controller ./cmd/argoexec >&2
)
mkdir -p "$DEST"
mv "$work/bin/workflow-controller" "$work/bin/argoexec" "$DEST/"
echo "build-argo: built workflow-controller and argoexec into $DEST in $((SECONDS - start)) s" >&2
echo "$DEST"
