#!/usr/bin/env bash
# make e2e-down: stops every process of the e2e cluster by pid and removes its containers, network
# namespaces, mounts, bridge, iptables chains and state. Keeps containerd's images (re-importing costs time)
# and the logs. Safe to run when nothing is up.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$E2E_ROOT"
log() { echo "e2e-down: $*" >&2; }

e2e_stop_pids workflow-controller kubelet kube-scheduler kube-controller-manager kube-apiserver

# The pods' containers, through containerd while it still runs; their network namespaces after.
netns=()
containerd_pid=$(cat "$E2E_DIR/pids/containerd.pid" 2>/dev/null)
if e2e_ours "$containerd_pid" && [[ -S "$E2E_CONTAINERD_SOCK" ]]; then
  ctr_() { timeout 60 ctr --address "$E2E_CONTAINERD_SOCK" -n k8s.io "$@"; }
  # Only running sandboxes hold a network namespace, and their bundles name it.
  mapfile -t netns < <(cat "$E2E_DIR"/containerd/state/io.containerd.runtime.v2.task/k8s.io/*/config.json 2>/dev/null |
    jq -r '.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null | sort -u)
  mapfile -t tasks < <(ctr_ tasks ls -q 2>/dev/null)
  # Why in parallel: a suite leaves hundreds of containers, and one ctr call each takes a while.
  for id in "${tasks[@]}"; do ctr_ tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 & done
  wait
  if [[ ${#tasks[@]} -gt 0 ]]; then
    for _ in $(seq 50); do ctr_ tasks ls 2>/dev/null | awk 'NR > 1 && $3 != "STOPPED"' | grep -q . || break; sleep 0.2; done
    ctr_ tasks delete --force "${tasks[@]}" >/dev/null 2>&1
  fi
  mapfile -t containers < <(ctr_ containers ls -q 2>/dev/null)
  if [[ ${#containers[@]} -gt 0 ]]; then ctr_ containers delete "${containers[@]}" >/dev/null 2>&1; fi
fi
e2e_stop_pids containerd
# Shims outlive containerd; each names our socket, so e2e_ours finds them.
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  if [[ "$(cat "$p/comm" 2>/dev/null)" == containerd-shim* ]] && e2e_ours "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
done
e2e_stop_pids

for path in $(printf '%s\n' "${netns[@]}" | sort -u); do
  name=$(basename "$path")
  if [[ "$path" == /var/run/netns/cni-* || "$path" == /run/netns/cni-* ]]; then ip netns delete "$name" 2>/dev/null || { umount "$path" 2>/dev/null; rm -f "$path"; }; fi
done
rm -f /var/lib/cni/results/mfkfp-e2e-* 2>/dev/null
# The shims' and runc's state folders under /run/containerd, only when empty (another containerd may use them).
rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd 2>/dev/null

# Mounts under the state folder (container root filesystems, pod volumes), deepest first.
if [[ -d "$E2E_DIR" ]]; then
  awk -v d="$E2E_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
fi
# The kubelet's pod cgroups (cgroupfs driver), now that their processes are gone.
for c in /sys/fs/cgroup/*/kubepods; do
  [[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
done

iptables -t nat -D PREROUTING -j "$E2E_CHAIN" 2>/dev/null
iptables -t nat -D OUTPUT -j "$E2E_CHAIN" 2>/dev/null
iptables -t nat -F "$E2E_CHAIN" 2>/dev/null && iptables -t nat -X "$E2E_CHAIN" 2>/dev/null
iptables -D INPUT -j "$E2E_CHAIN-IN" 2>/dev/null
iptables -F "$E2E_CHAIN-IN" 2>/dev/null && iptables -X "$E2E_CHAIN-IN" 2>/dev/null
iptables -D FORWARD -j "$E2E_CHAIN-FWD" 2>/dev/null
iptables -F "$E2E_CHAIN-FWD" 2>/dev/null && iptables -X "$E2E_CHAIN-FWD" 2>/dev/null
ip link show "$E2E_BRIDGE" >/dev/null 2>&1 && ip link delete "$E2E_BRIDGE"
if [[ -f "$E2E_DIR/ip_forward.orig" ]]; then
  cat "$E2E_DIR/ip_forward.orig" > /proc/sys/net/ipv4/ip_forward 2>/dev/null
  rm -f "$E2E_DIR/ip_forward.orig"
fi

rm -rf "$E2E_DIR"/{etcd,kubelet,pod-logs,cni,pki,pids,containerd/state,kubeconfig,containerd.toml,kubelet.yaml,image-import.tar} "$E2E_CONTAINERD_SOCK"*
left=$(awk -v d="$E2E_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)
if [[ $left -gt 0 ]]; then log "warning: $left mounts under $E2E_DIR remain (see /proc/self/mountinfo)"; fi
log "stopped; images kept in $E2E_DIR/containerd/root, logs in $E2E_DIR/logs"
