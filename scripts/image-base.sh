#!/usr/bin/env bash
# Makes the two offline stand-ins image-test builds from, once per machine: a Debian bookworm base
# with Python 3 (debootstrap from the apt mirror, in place of python:3.11-slim-bookworm) and a node
# image holding this machine's node at /usr/local/bin/node (in place of node:22-bookworm-slim).
# Usage: image-base.sh BASE_IMAGE NODE_IMAGE   (needs root, podman, debootstrap; CONTAINERS_CONF set)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?BASE_IMAGE}
node_image=${2:?NODE_IMAGE}
work=.cache/image

if podman image exists "$base"; then
  echo "image-base: $base exists, reusing it"
else
  sources=/etc/apt/sources.list.d/debian.sources
  mirror=$(awk '/^URIs:/{print $2; exit}' "$sources" 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "image-base: failed to find the Debian mirror in $sources or /etc/apt/sources.list: configure apt first" >&2; exit 69; }
  rootfs=$work/rootfs
  rm -rf "$rootfs"
  echo "image-base: debootstrap bookworm from $mirror (about 80 s)"
  start=$SECONDS
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; echo "image-base: failed to debootstrap bookworm: see $work/debootstrap.log" >&2; exit 1; }
  # Why: the apt lists and caches would add ~100 MB to every image built on this base.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet - "$base" >/dev/null
  rm -rf "$rootfs"
  echo "image-base: imported $base in $((SECONDS - start)) s"
fi

if podman image exists "$node_image"; then
  echo "image-base: $node_image exists, reusing it"
else
  node_bin=$(command -v node) || { echo "image-base: failed to find node on PATH: install Node 20+" >&2; exit 69; }
  node_root=$work/node-root
  rm -rf "$node_root"
  mkdir -p "$node_root/usr/local/bin"
  cp "$(readlink -f "$node_bin")" "$node_root/usr/local/bin/node"
  # Why: a distribution's node may carry debug symbols; they are most of its size and never used.
  if command -v strip >/dev/null; then strip --strip-debug "$node_root/usr/local/bin/node"; fi
  tar -C "$node_root" -c . | podman import --quiet - "$node_image" >/dev/null
  rm -rf "$node_root"
  echo "image-base: imported $node_image from $node_bin ($(node --version))"
fi
