# Sourced by scripts/build-argo-cli.sh and scripts/e2e/build-argo.sh: a writable copy of Argo Workflows' Go module from the Go module proxy.
ARGO_MODULE="github.com/argoproj/argo-workflows/v4"

# argo_module_copy VERSION WHAT DIR: puts go on PATH and copies $ARGO_MODULE@VERSION's source into DIR
# (which must not exist yet), writable so the caller can patch it. On failure prints one line,
# "failed to build WHAT: ..." or "failed to download ...", on stderr and returns 1.
argo_module_copy() {
  local version="$1" what="$2" dir="$3" src_dir
  export PATH="$PATH:/usr/local/go/bin"
  if ! command -v go >/dev/null; then
    echo "failed to build $what: go is not installed (install Go 1.25 or later, e.g. into /usr/local/go)" >&2
    return 1
  fi
  src_dir="$(GOFLAGS=-mod=mod go mod download -json "$ARGO_MODULE@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || src_dir=""
  if [[ -z "$src_dir" || ! -d "$src_dir" ]]; then
    echo "failed to download $ARGO_MODULE@$version from the Go module proxy (check GOPROXY and the network)" >&2
    return 1
  fi
  # Why chmod: the module cache is read-only, and both callers patch files in the copy.
  cp -R "$src_dir" "$dir" && chmod -R u+w "$dir"
}
