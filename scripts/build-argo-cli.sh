#!/usr/bin/env bash
# Builds Argo's own CLI (for `argo lint --offline --strict`) from the Go module proxy, once per machine.
# Usage: scripts/build-argo-cli.sh [DEST]   (default: ~/.cache/metaflow-kfp/bin/argo-<version>)
set -euo pipefail

VERSION="${ARGO_VERSION:-v4.0.5}"
MODULE="github.com/argoproj/argo-workflows/v4"
DEST="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/metaflow-kfp/bin/argo-$VERSION}"

if [[ -x "$DEST" ]]; then exit 0; fi

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "failed to build the argo CLI: go is not installed (install Go 1.25 or later, e.g. into /usr/local/go)" >&2
  exit 1
fi

# `go install MODULE/cmd/argo@VERSION` stops at ui/embed.go: the module ships without the
# built web UI that it embeds. The linter never serves the UI, so build from a copy of the
# module with an empty placeholder page in its place.
src_dir="$(GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src_dir" || ! -d "$src_dir" ]]; then
  echo "failed to download $MODULE@$VERSION from the Go module proxy" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" && rm -rf "$work"' EXIT
cp -R "$src_dir" "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$work/src/ui/dist/app"
echo '<!-- the argo UI is not built into this lint-only binary -->' > "$work/src/ui/dist/app/index.html"

mkdir -p "$(dirname "$DEST")"
(cd "$work/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$work/argo" ./cmd/argo)
mv "$work/argo" "$DEST"
echo "built $DEST"
