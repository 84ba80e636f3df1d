#!/usr/bin/env bash
# make e2e-up: starts a single-node Kubernetes and Argo Workflows' controller as host processes under .cache/e2e.
# Builds what is missing first (cached per machine). Everything stays on this machine: etcd, the controllers
# and containerd on 127.0.0.1 or unix sockets; the apiserver and kubelet on the pods' own bridge.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$E2E_ROOT"

log() { echo "e2e-up: $*" >&2; }
fail() { echo "e2e-up: $*" >&2; exit 1; }

if [[ -f "$E2E_DIR/pids/workflow-controller.pid" ]] && e2e_ours "$(cat "$E2E_DIR/pids/workflow-controller.pid")" \
   && KUBECONFIG="$E2E_KUBECONFIG" "$E2E_KUBE_BIN/kubectl" get --raw /readyz >/dev/null 2>&1; then
  log "the cluster is already up (KUBECONFIG=$E2E_KUBECONFIG)"
  exit 0
fi
if [[ -d "$E2E_DIR/pids" ]] && compgen -G "$E2E_DIR/pids/*.pid" >/dev/null; then
  log "a previous cluster is partly up: stopping it first"
  scripts/e2e/down.sh
fi

scripts/e2e/install-packages.sh
scripts/e2e/build-kube.sh >/dev/null
scripts/e2e/build-argo.sh >/dev/null
scripts/e2e/build-pause.sh >/dev/null
start=$SECONDS

mkdir -p "$E2E_DIR"/{pids,logs,pki,etcd,kubelet,pod-logs,cni/net.d,cni/ipam,containerd}
rm -f "$E2E_DIR"/logs/*.log
chmod 755 "$E2E_DIR"

# --- certificates and the admin token (made once; the certificate names the bridge and service IPs)
pki="$E2E_DIR/pki"
if [[ ! -f "$pki/apiserver.crt" ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj /CN=metaflow-kfp-e2e-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
  printf '%s\n' "subjectAltName=IP:$E2E_HOST_IP,IP:$E2E_KUBE_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost" \
    'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' > "$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/apiserver.crt" -days 3650 -extfile "$pki/apiserver.ext" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  token=$(openssl rand -hex 24)
  echo "$token,admin,admin,system:masters" > "$pki/tokens.csv"
  chmod 600 "$pki"/*.key "$pki/tokens.csv"
fi
token=$(cut -d, -f1 "$pki/tokens.csv")
cat > "$E2E_KUBECONFIG" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$E2E_HOST_IP:$E2E_APISERVER_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: $E2E_NAMESPACE}
current-context: e2e
KUBECONFIG
chmod 600 "$E2E_KUBECONFIG"
export KUBECONFIG="$E2E_KUBECONFIG"
kubectl() { "$E2E_KUBE_BIN/kubectl" "$@"; }

# --- the pods' bridge and our iptables chains
if ! ip link show "$E2E_BRIDGE" >/dev/null 2>&1; then
  ip link add "$E2E_BRIDGE" type bridge
  ip addr add "$E2E_HOST_IP/${E2E_POD_CIDR#*/}" dev "$E2E_BRIDGE"
fi
ip link set "$E2E_BRIDGE" up
cat /proc/sys/net/ipv4/ip_forward > "$E2E_DIR/ip_forward.orig" 2>/dev/null || true
iptables -t nat -N "$E2E_CHAIN" 2>/dev/null || iptables -t nat -F "$E2E_CHAIN"
iptables -t nat -A "$E2E_CHAIN" -d "$E2E_KUBE_SERVICE_IP/32" -p tcp --dport 443 \
  -j DNAT --to-destination "$E2E_HOST_IP:$E2E_APISERVER_PORT"
iptables -t nat -C PREROUTING -j "$E2E_CHAIN" 2>/dev/null || iptables -t nat -I PREROUTING -j "$E2E_CHAIN"
iptables -t nat -C OUTPUT -j "$E2E_CHAIN" 2>/dev/null || iptables -t nat -I OUTPUT -j "$E2E_CHAIN"
# Inbound: the bridge's addresses only from this machine or the pods; the workflow-controller's health port
# (hard-wired to every interface) only from loopback.
iptables -N "$E2E_CHAIN-IN" 2>/dev/null || iptables -F "$E2E_CHAIN-IN"
iptables -A "$E2E_CHAIN-IN" -i lo -j RETURN
iptables -A "$E2E_CHAIN-IN" -i "$E2E_BRIDGE" -j RETURN
iptables -A "$E2E_CHAIN-IN" -d "$E2E_POD_CIDR" -j DROP
iptables -A "$E2E_CHAIN-IN" -p tcp --dport 6060 -j DROP
iptables -C INPUT -j "$E2E_CHAIN-IN" 2>/dev/null || iptables -I INPUT -j "$E2E_CHAIN-IN"
# Forwarding: pods talk to each other and to this machine, never beyond it (the CNI bridge plugin turns
# on ip_forward for its gateway).
iptables -N "$E2E_CHAIN-FWD" 2>/dev/null || iptables -F "$E2E_CHAIN-FWD"
iptables -A "$E2E_CHAIN-FWD" -i "$E2E_BRIDGE" -o "$E2E_BRIDGE" -j ACCEPT
iptables -A "$E2E_CHAIN-FWD" -i "$E2E_BRIDGE" -j DROP
iptables -A "$E2E_CHAIN-FWD" -o "$E2E_BRIDGE" -j DROP
iptables -C FORWARD -j "$E2E_CHAIN-FWD" 2>/dev/null || iptables -I FORWARD -j "$E2E_CHAIN-FWD"

# Starts NAME as a background process logging to logs/NAME.log; its pid goes to pids/NAME.pid.
launch() {
  local name=$1; shift
  setsid "$@" >> "$E2E_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$E2E_DIR/pids/$name.pid"
}
# Waits up to $2 seconds for the command after it to succeed; fails naming $1 and its log.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  local pid; pid=$(cat "$E2E_DIR/pids/$name.pid" 2>/dev/null)
  until "$@" >/dev/null 2>&1; do
    # Why kill -0 and not e2e_ours: until the launched child has exec'd, its command line is this
    # script's, so a check right after launch took a process still starting for one that exited.
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$E2E_DIR/logs/$name.log" >&2; fail "failed to start $name: it exited (log: $E2E_DIR/logs/$name.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -20 "$E2E_DIR/logs/$name.log" >&2; fail "failed to start $name: not ready after $secs s (log: $E2E_DIR/logs/$name.log)"
    fi
    sleep 0.3
  done
}

# --- etcd, then the control plane (fresh state each time: a cluster lives from up to down)
rm -rf "$E2E_DIR/etcd"; mkdir -p "$E2E_DIR/etcd"; chmod 700 "$E2E_DIR/etcd"
etcd_url="http://127.0.0.1:$E2E_ETCD_PORT"
launch etcd "$E2E_KUBE_BIN/etcd" --name e2e --data-dir "$E2E_DIR/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
  --initial-cluster "e2e=http://127.0.0.1:$E2E_ETCD_PEER_PORT" --listen-metrics-urls "" --log-level warn
wait_for etcd 30 curl -sf "$etcd_url/health"

# Why AlwaysAllow and a static token: a throwaway cluster reachable only from this machine; RBAC
# for Argo's executor and client certificates for each component would add setup, not coverage.
launch kube-apiserver "$E2E_KUBE_BIN/kube-apiserver" \
  --etcd-servers "$etcd_url" --bind-address "$E2E_HOST_IP" --advertise-address "$E2E_HOST_IP" \
  --secure-port "$E2E_APISERVER_PORT" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" --authorization-mode AlwaysAllow \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$E2E_SERVICE_CIDR" --kubelet-preferred-address-types InternalIP \
  --allow-privileged=true --profiling=false --v=1
wait_for kube-apiserver 90 kubectl get --raw /readyz

launch kube-controller-manager "$E2E_KUBE_BIN/kube-controller-manager" \
  --kubeconfig "$E2E_KUBECONFIG" --bind-address 127.0.0.1 --leader-elect=false \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=false --v=1
launch kube-scheduler "$E2E_KUBE_BIN/kube-scheduler" \
  --kubeconfig "$E2E_KUBECONFIG" --bind-address 127.0.0.1 --leader-elect=false --v=1

# --- containerd, its CNI network and runc
runc_bin=$(command -v runc)
if grep -q '^CapBnd:' /proc/self/status && (( ( 0x$(awk '/^CapBnd:/{print $2}' /proc/self/status) >> 24 & 1 ) == 0 )); then
  log "root lacks CAP_SYS_RESOURCE here: containerd runs runc through scripts/e2e/runc-wrapper.sh"
  runc_bin="$E2E_ROOT/scripts/e2e/runc-wrapper.sh"
fi
cat > "$E2E_DIR/cni/net.d/10-mfkfp-e2e.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "mfkfp-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$E2E_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$E2E_DIR/cni/ipam",
        "ranges": [[{"subnet": "$E2E_POD_CIDR", "gateway": "$E2E_HOST_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
cni_bin=/usr/lib/cni
cat > "$E2E_DIR/containerd.toml" <<TOML
version = 2
root = "$E2E_DIR/containerd/root"
state = "$E2E_DIR/containerd/state"
[grpc]
  address = "$E2E_CONTAINERD_SOCK"
[ttrpc]
  address = "$E2E_CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$E2E_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$runc_bin"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$E2E_DIR/cni/net.d"
TOML
launch containerd env E2E_REAL_RUNC="$(command -v runc)" containerd --config "$E2E_DIR/containerd.toml"
wait_for containerd 30 ctr --address "$E2E_CONTAINERD_SOCK" version
scripts/e2e/images.sh system

# --- the kubelet
cat > "$E2E_DIR/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $E2E_HOST_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$E2E_CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: ""
podLogsDir: $E2E_DIR/pod-logs
maxPods: 250
serializeImagePulls: false
# Why: imported images cannot be pulled again offline, so they must never be collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
KUBELET
# Why the retries: containerd answers before its CRI service is initialized, and the kubelet exits on that.
for _ in $(seq 20); do
  launch kubelet "$E2E_KUBE_BIN/kubelet" --config "$E2E_DIR/kubelet.yaml" --kubeconfig "$E2E_KUBECONFIG" \
    --root-dir "$E2E_DIR/kubelet" --cert-dir "$E2E_DIR/kubelet/pki" \
    --hostname-override "$E2E_NODE" --node-ip "$E2E_HOST_IP" --v=1
  sleep 2
  e2e_ours "$(cat "$E2E_DIR/pids/kubelet.pid")" && break
  grep -q 'server is not initialized yet' "$E2E_DIR/logs/kubelet.log" || break
  : > "$E2E_DIR/logs/kubelet.log"
done
wait_for kubelet 90 bash -c "\"$E2E_KUBE_BIN/kubectl\" get node $E2E_NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"

# --- Argo Workflows: its CRDs, a namespace, the controller's config, the controller
argo_src="$(GOFLAGS=-mod=mod PATH="$PATH:/usr/local/go/bin" go mod download -json "github.com/argoproj/argo-workflows/v4@$E2E_ARGO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crds=(); for f in "$argo_src"/manifests/base/crds/minimal/argoproj.io_*.yaml; do crds+=(-f "$f"); done
kubectl apply --server-side "${crds[@]}" >/dev/null
kubectl create namespace "$E2E_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$E2E_NAMESPACE" apply -f - >/dev/null <<CONFIGMAP
apiVersion: v1
kind: ConfigMap
metadata: {name: workflow-controller-configmap}
data:
  executor: |
    imagePullPolicy: Never
  metricsConfig: |
    enabled: false
  telemetryConfig: |
    enabled: false
CONFIGMAP
for _ in $(seq 100); do kubectl -n "$E2E_NAMESPACE" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.3; done
launch workflow-controller env LEADER_ELECTION_DISABLE=true "$E2E_ARGO_BIN/workflow-controller" \
  --kubeconfig "$E2E_KUBECONFIG" --namespaced --managed-namespace "$E2E_NAMESPACE" \
  --executor-image "$E2E_ARGOEXEC_IMAGE" --executor-image-pull-policy Never --workflow-workers 8
wait_for workflow-controller 60 curl -sf http://127.0.0.1:6060/healthz

log "up in $((SECONDS - start)) s: KUBECONFIG=$E2E_KUBECONFIG, namespace $E2E_NAMESPACE, logs in $E2E_DIR/logs"
