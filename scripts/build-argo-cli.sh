#!/usr/bin/env bash
# Builds Argo's own CLI (for `argo lint --offline --strict`) from the Go module proxy, once per machine.
# Usage: scripts/build-argo-cli.sh [DEST]   (default: ~/.cache/metaflow-kfp/bin/argo-<version>)
set -euo pipefail

VERSION="${ARGO_VERSION:-v4.0.5}"
DEST="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/metaflow-kfp/bin/argo-$VERSION}"

if [[ -x "$DEST" ]]; then exit 0; fi

source "$(dirname "${BASH_SOURCE[0]}")/argo-module.sh"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
argo_module_copy "$VERSION" "the argo CLI" "$work/src" || exit 1
# `go install MODULE/cmd/argo@VERSION` stops at ui/embed.go: the module ships without the
# built web UI that it embeds. The linter never serves the UI, so build from a copy of the
# module with an empty placeholder page in its place.
mkdir -p "$work/src/ui/dist/app"
echo '<!-- the argo UI is not built into this lint-only binary -->' > "$work/src/ui/dist/app/index.html"

mkdir -p "$(dirname "$DEST")"
(cd "$work/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$work/argo" ./cmd/argo)
mv "$work/argo" "$DEST"
echo "built $DEST"
