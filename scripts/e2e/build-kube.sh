#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl and etcd from the Go module proxy, once per machine.
# Usage: scripts/e2e/build-kube.sh   (KUBE_VERSION, default v1.35.4; prints the bin folder on stdout, progress on stderr)
set -euo pipefail

VERSION="${KUBE_VERSION:-v1.35.4}"
STAGING_VERSION="v0${VERSION#v1}"   # the staging modules of k8s v1.35.4 are tagged v0.35.4
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/metaflow-kfp/e2e/kube-$VERSION"
TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd)

done_all=1
for t in "${TOOLS[@]}"; do [[ -x "$DEST/$t" ]] || done_all=0; done
if [[ $done_all == 1 ]]; then echo "$DEST"; exit 0; fi

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "failed to build Kubernetes $VERSION: go is not installed (install Go 1.25 or later, e.g. into /usr/local/go)" >&2
  exit 69
fi

# Why a scratch module: k8s.io/kubernetes cannot be `go install`ed, its go.mod replaces its ~31
# staging modules (k8s.io/api, k8s.io/client-go, ...) with folders inside its own repository. A
# module that requires it and replaces each staging module with its published tag builds the
# same commands from the proxy alone.
kube_mod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
if [[ -z "$kube_mod" || ! -f "$kube_mod" ]]; then
  echo "failed to download k8s.io/kubernetes@$VERSION from the Go module proxy (check GOPROXY and the network)" >&2
  exit 69
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
{
  echo "module metaflow-kfp.local/e2e-kube"
  echo
  echo "go $(awk '$1 == "go" {print $2; exit}' "$kube_mod")"
  echo
  echo "require k8s.io/kubernetes $VERSION"
  echo
  awk -v v="$STAGING_VERSION" '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " " v}' "$kube_mod"
} > "$work/go.mod"
if ! grep -q '^replace' "$work/go.mod"; then
  echo "failed to read the staging replacements from k8s.io/kubernetes@$VERSION's go.mod ($kube_mod)" >&2
  exit 70
fi

pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
mkdir -p "$work/bin"
start=$SECONDS
echo "build-kube: building Kubernetes $VERSION and etcd from the Go module proxy (about 6-10 minutes on 2 cores)" >&2
(
  cd "$work"
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  # Why no `go mod tidy`: nothing here imports k8s.io/kubernetes (its commands are main packages),
  # so tidy would drop the pinned requirement and the build would fetch the newest release.
  # Why nice: the build takes minutes of both cores on machines shared with other work.
  nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$work/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl >&2
  # etcd 3.6: k8s.io/kubernetes already requires its server module, whose root package is the etcd command.
  nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3 >&2
)
mkdir -p "$DEST"
for t in "${TOOLS[@]}"; do mv "$work/bin/$t" "$DEST/$t"; done
echo "build-kube: built ${TOOLS[*]} into $DEST in $((SECONDS - start)) s" >&2
echo "$DEST"
