#!/usr/bin/env bash
# Makes podman usable for image-test on a Debian machine: installs podman, runc and debootstrap, writes a containers.conf.
# Prints the CONTAINERS_CONF path on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "image-test: failed to find ${missing[*]}: install them (Debian: apt-get install podman runc debootstrap) or run as root on Debian" >&2
    exit 69
  fi
  echo "image-test: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >&2
fi

# Why: podman's default ulimits make runc fail on setrlimit in these sandboxes; dropping them is harmless elsewhere.
conf=.cache/image/containers.conf
mkdir -p "$(dirname "$conf")"
printf '[containers]\ndefault_ulimits = []\n' > "$conf"
echo "$PWD/$conf"
