#!/usr/bin/env bash
# Installs what the e2e cluster needs from Debian's packages when missing: containerd, runc, CNI plugins, iptables, podman, jq, openssl.
set -euo pipefail

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "e2e: failed to find ${need[*]}: install them (Debian: apt-get install ${need[*]}) or run as root on Debian" >&2
  exit 69
fi
echo "e2e: installing ${need[*]} with apt-get" >&2
apt-get update -qq >&2
# Why the lock timeout: other jobs on the machine may hold the dpkg lock for a while.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >&2
