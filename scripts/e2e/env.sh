# Sourced by scripts/e2e/*.sh: where the e2e cluster lives and the addresses it uses (all on this machine).
E2E_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_DIR="${E2E_DIR:-$E2E_ROOT/.cache/e2e}"       # state, logs, pids, kubeconfig: removed by down.sh except images
E2E_BRIDGE=mfkfp-e2e0                             # the pods' bridge; no uplink, forwarding off it is dropped
E2E_POD_CIDR=10.244.0.0/24
E2E_HOST_IP=10.244.0.1                            # the host on the bridge: apiserver and kubelet listen here only
E2E_SERVICE_CIDR=10.96.0.0/24
E2E_KUBE_SERVICE_IP=10.96.0.1                     # the `kubernetes` service, DNATed to the apiserver (no kube-proxy)
E2E_APISERVER_PORT=6443
E2E_ETCD_PORT=23790
E2E_ETCD_PEER_PORT=23800
E2E_NODE=e2e-node
E2E_NAMESPACE=argo
E2E_CHAIN=MFKFP-E2E                               # our iptables chains: $E2E_CHAIN (nat), $E2E_CHAIN-IN, $E2E_CHAIN-FWD (filter)
E2E_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/metaflow-kfp"
E2E_KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
E2E_ARGO_VERSION="${ARGO_VERSION:-v4.0.5}"
E2E_KUBE_BIN="$E2E_CACHE/e2e/kube-$E2E_KUBE_VERSION"
E2E_ARGO_BIN="$E2E_CACHE/e2e/argo-$E2E_ARGO_VERSION"
E2E_ARGO_CLI="${ARGO_CLI:-$E2E_CACHE/bin/argo-$E2E_ARGO_VERSION}"
E2E_CONTAINERD_SOCK="$E2E_DIR/containerd/containerd.sock"
E2E_KUBECONFIG="$E2E_DIR/kubeconfig"
E2E_PAUSE_IMAGE=localhost/metaflow-kfp-e2e-pause:1
E2E_ARGOEXEC_IMAGE=localhost/metaflow-kfp-e2e-argoexec:$E2E_ARGO_VERSION

# True when PID is alive and is one of ours: every process the harness starts names $E2E_DIR in its arguments.
# Why: a pid file can outlive its process, and the pid may since belong to someone else's.
e2e_ours() {
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF "$E2E_DIR"
}

# Stops the processes named in $E2E_DIR/pids/NAME.pid (all of them when no NAME is given), by pid:
# TERM, then KILL after 10 s.
e2e_stop_pids() {
  local files=() f pid
  if [[ $# -gt 0 ]]; then for f in "$@"; do files+=("$E2E_DIR/pids/$f.pid"); done
  else files=("$E2E_DIR"/pids/*.pid); fi
  for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f"); if e2e_ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do
    local alive=0
    for f in "${files[@]}"; do
      [[ -f "$f" ]] || continue
      pid=$(cat "$f"); if e2e_ours "$pid"; then alive=1; fi
    done
    [[ $alive == 0 ]] && break
    sleep 0.2
  done
  for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    # Why KILL: workflow-controller may ignore SIGTERM when it runs outside a pod.
    if e2e_ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
}
