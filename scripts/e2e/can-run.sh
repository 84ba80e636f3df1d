#!/usr/bin/env bash
# Exits 0 when make e2e can run here; otherwise prints why not (one line) and exits 1. Installs nothing.
set -uo pipefail
if [[ "$(id -u)" != 0 ]]; then
  echo "it needs root (a kubelet, containerd, a bridge and iptables rules)"; exit 1
fi
if [[ "$(uname -s)" != Linux ]]; then echo "it needs Linux"; exit 1; fi
for tool in containerd runc iptables podman; do
  if ! command -v "$tool" >/dev/null && ! command -v apt-get >/dev/null; then
    echo "$tool is not installed and there is no apt-get to install it"; exit 1
  fi
done
if ! command -v go >/dev/null && ! [[ -x /usr/local/go/bin/go ]]; then
  source "$(dirname "$0")/env.sh"
  if ! [[ -x "$E2E_KUBE_BIN/kubelet" && -x "$E2E_ARGO_BIN/argoexec" ]]; then
    echo "Go is not installed (needed once to build Kubernetes and Argo from the Go module proxy)"; exit 1
  fi
fi
# Why unshare: every pod needs mount, PID, IPC and network namespaces; an unprivileged sandbox refuses them.
if ! unshare --mount --pid --ipc --net --uts --fork true 2>/dev/null; then
  echo "this machine cannot create mount, PID and network namespaces, so it cannot run pods"; exit 1
fi
if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
  echo "the kernel has no overlay filesystem, which containerd's snapshotter needs"; exit 1
fi
probe=mfkfpp$$  # at most 15 characters, the kernel's limit for a link name
if ! ip link add "$probe" type bridge 2>/dev/null; then
  echo "this machine cannot create a network bridge for the pods"; exit 1
fi
ip link delete "$probe" 2>/dev/null
if command -v iptables >/dev/null && ! iptables -t nat -L PREROUTING -n >/dev/null 2>&1; then
  echo "iptables cannot use the nat table here (the kubernetes service address needs one DNAT rule)"; exit 1
fi
if [[ ! -d /sys/fs/cgroup/memory && ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
  echo "no cgroup filesystem at /sys/fs/cgroup for the kubelet"; exit 1
fi
exit 0
