#!/usr/bin/env bash
# Puts images into the e2e cluster's containerd (namespace k8s.io), which cannot pull from any registry.
# Usage: images.sh system   the pause and argoexec images, made from binaries built here (when missing)
#        images.sh agent    builds the agent's image as `make image-test` does and imports it under every
#                           image name pipeline-templates/*.argo.yaml uses
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$E2E_ROOT"

ctr_() { ctr --address "$E2E_CONTAINERD_SOCK" -n k8s.io "$@"; }
have() { ctr_ images ls -q | grep -qxF "$1"; }
CONTAINERS_CONF=$(scripts/podman-env.sh)
export CONTAINERS_CONF

# Imports podman image $1 into containerd, named $1 and each further argument.
import_image() {
  local src=$1; shift
  local tar="$E2E_DIR/image-import.tar"
  rm -f "$tar"
  podman save --quiet --format docker-archive -o "$tar" "$src"
  ctr_ images import "$tar" >/dev/null
  rm -f "$tar"
  for name in "$@"; do ctr_ images tag --force "$src" "$name" >/dev/null; done
}

# Makes podman image $1 from the static binary $2 placed at $3, with entrypoint $3.
image_from_binary() {
  local name=$1 bin=$2 path=$3
  local root; root=$(mktemp -d)
  mkdir -p "$root$(dirname "$path")" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$bin" "$root$path"
  tar -C "$root" -c . | podman import --quiet --change "ENTRYPOINT [\"$path\"]" --change 'ENV PATH=/bin:/usr/bin' - "$name" >/dev/null
  rm -rf "$root"
}

case "${1:-}" in
  system)
    if ! have "$E2E_PAUSE_IMAGE"; then
      image_from_binary "$E2E_PAUSE_IMAGE" "$(scripts/e2e/build-pause.sh)" /pause
      import_image "$E2E_PAUSE_IMAGE"
    fi
    if ! have "$E2E_ARGOEXEC_IMAGE"; then
      image_from_binary "$E2E_ARGOEXEC_IMAGE" "$E2E_ARGO_BIN/argoexec" /bin/argoexec
      import_image "$E2E_ARGOEXEC_IMAGE"
    fi
    ;;
  agent)
    # The same steps and names as scripts/image-test.sh, so both share podman's build cache.
    export PODMAN_RUNTIME=runc IMAGE=${IMAGE_TEST:-localhost/metaflow-kfp:test}
    base=${TEST_BASE_IMAGE:-localhost/metaflow-kfp-base:bookworm}
    node_image=localhost/metaflow-kfp-node:$(node --version)
    scripts/image-base.sh "$base" "$node_image" >&2
    scripts/image-context.sh >&2
    ENGINE=podman BUILD_NETWORK=host BASE_IMAGE=$base NODE_IMAGE=$node_image scripts/image-build.sh >&2
    mapfile -t names < <(sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]]*\).*/\1/p' pipeline-templates/*.argo.yaml | sort -u)
    import_image "$IMAGE" "${names[@]}"
    echo "e2e: imported $IMAGE into the cluster as ${names[*]}" >&2
    ;;
  *) echo "usage: images.sh system|agent" >&2; exit 64 ;;
esac
