# `scripts/cluster.sh up`: the control plane, the node and the add-ons, as local processes
# (the way Kubernetes' hack/local-up-cluster.sh runs them), each step idempotent so a second
# `up` changes nothing and an `up` after a crash picks up what is left.
# shellcheck shell=bash

# Kernel settings the cluster changes (some by kubelet and kube-proxy themselves); `down`
# puts back the values saved before the first `up`.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
    net.bridge.bridge-nf-call-arptables net.ipv4.conf.all.route_localnet vm.overcommit_memory
    vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
    kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
    net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)

check_built() {
    local b
    for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd \
        coredns local-path-provisioner kube-router crane crictl pause helm; do
        [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing: run scripts/cluster.sh build first"
    done
}

# Neither range may overlap a route the machine already has: pod traffic must never find a
# way off the machine through an existing network.
check_address_ranges() {
    ip -4 route show table all | grep -v "dev $BRIDGE\( \|$\)" |
        awk '$1 == "local" || $1 == "broadcast" {print $2; next} $1 != "default" {print $1}' | python3 -c '
import ipaddress, sys
ours = [ipaddress.ip_network(c) for c in sys.argv[1:]]
for line in sys.stdin:
    try:
        net = ipaddress.ip_network(line.split()[0], strict=False)
    except ValueError:
        continue
    for o in ours:
        if net.overlaps(o):
            sys.exit(f"{o} overlaps the existing route {net}; set STATELAB_POD_CIDR / STATELAB_SERVICE_CIDR")
' "$POD_CIDR" "$SERVICE_CIDR"
}

save_baseline() {
    # What the machine looked like before the first `up`: `down` restores it.
    [ -f "$STATE_DIR/baseline/sysctl" ] && return 0
    mkdir -p "$STATE_DIR/baseline"
    local key
    for key in "${SYSCTLS[@]}"; do
        [ -e "/proc/sys/${key//.//}" ] && echo "$key=$(sysctl -n "$key")"
    done >"$STATE_DIR/baseline/sysctl.tmp"
    { iptables-save; ip6tables-save; } 2>/dev/null | awk '/^:/ {print $1}' | sort -u >"$STATE_DIR/baseline/chains"
    ls /var/run/netns 2>/dev/null >"$STATE_DIR/baseline/netns" || true
    nft list tables 2>/dev/null >"$STATE_DIR/baseline/nft-tables" || true
    for d in /run/containerd /var/lib/cni /etc/cni /opt/cni; do [ -e "$d" ] && echo "$d"; done >"$STATE_DIR/baseline/paths"
    mv "$STATE_DIR/baseline/sysctl.tmp" "$STATE_DIR/baseline/sysctl"
}

network_up() {
    check_address_ranges || die "address ranges overlap"
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$NODE_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Every pod and Service address is routed to the bridge, never to the default route.
    ip route replace "$POD_CIDR" dev "$BRIDGE"
    ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
    # The egress guard, before any pod exists: nothing that arrives from the bridge is
    # forwarded anywhere but back to the bridge. A table of its own: neither kube-proxy nor
    # the policy controller touches it, and a drop here holds whatever their chains accept.
    nft -f - <<NFT
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
    chain forward {
        type filter hook forward priority -150; policy accept;
        iifname "$BRIDGE" oifname != "$BRIDGE" counter drop
        ip saddr $POD_CIDR oifname != "$BRIDGE" counter drop
    }
}
NFT
}

registry_up() {
    mkdir -p "$STATE_DIR/registry"
    start_process registry "$BIN_DIR/crane" registry serve --address "$REGISTRY_ADDR" --disk "$STATE_DIR/registry"
    wait_for 30 "the registry on $REGISTRY_ADDR" curl -sf "http://$REGISTRY_ADDR/v2/"
    # The registry keeps manifests in memory: after a restart the images are pushed again.
    "$BIN_DIR/crane" digest "$(registry_ref "registry.k8s.io/pause:$PAUSE_VERSION")" >/dev/null 2>&1 || build_system_images
}

etcd_up() {
    start_process etcd "$BIN_DIR/etcd" --name "$NODE_NAME" --data-dir "$STATE_DIR/etcd" \
        --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
        --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
        --initial-cluster "$NODE_NAME=https://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
        --cert-file "$PKI_DIR/etcd-server.crt" --key-file "$PKI_DIR/etcd-server.key" \
        --client-cert-auth --trusted-ca-file "$PKI_DIR/ca.crt" \
        --peer-cert-file "$PKI_DIR/etcd-server.crt" --peer-key-file "$PKI_DIR/etcd-server.key" \
        --peer-client-cert-auth --peer-trusted-ca-file "$PKI_DIR/ca.crt"
    wait_for 60 etcd curl -sf http://127.0.0.1:2381/health
}

control_plane_up() {
    start_process kube-apiserver "$BIN_DIR/kube-apiserver" \
        --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
        --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$PKI_DIR/ca.crt" \
        --etcd-certfile "$PKI_DIR/apiserver-etcd-client.crt" --etcd-keyfile "$PKI_DIR/apiserver-etcd-client.key" \
        --client-ca-file "$PKI_DIR/ca.crt" \
        --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
        --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$PKI_DIR/ca.crt" --kubelet-preferred-address-types InternalIP \
        --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --allow-privileged=true --profiling=false
    wait_for 120 "the API server" kubectl_admin get --raw /readyz
    start_process kube-controller-manager "$BIN_DIR/kube-controller-manager" \
        --kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
        --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
        --root-ca-file "$PKI_DIR/ca.crt" --service-account-private-key-file "$PKI_DIR/sa.key" \
        --allocate-node-cidrs --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
        --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
    start_process kube-scheduler "$BIN_DIR/kube-scheduler" \
        --kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

containerd_up() {
    local dir=$STATE_DIR/containerd host
    CONFIG_CHANGED=0
    mkdir -p "$dir/certs.d" "$STATE_DIR/cni/net.d" "$RUN_DIR/containerd"
    # Every registry name resolves to the loopback registry, with no upstream to fall back on:
    # a pull never leaves the machine, and an image that is not there fails at once.
    for host in _default docker.io registry-1.docker.io index.docker.io registry.k8s.io k8s.gcr.io \
        gcr.io quay.io ghcr.io mcr.microsoft.com public.ecr.aws registry.gitlab.com "$REGISTRY_ADDR"; do
        mkdir -p "$dir/certs.d/$host"
        write_config "$dir/certs.d/$host/hosts.toml" <<TOML
server = "http://$REGISTRY_ADDR"

[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
TOML
    done
    write_config "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$RUN_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:$PAUSE_VERSION"
  stream_server_address = "127.0.0.1"
  enable_unprivileged_ports = false
  # This machine's root has no CAP_SYS_RESOURCE, so no process may lower an OOM score below
  # its own: containerd clamps the scores kubelet asks for (-998 for sandboxes) at 0.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
    # The pod network: the bridge `up` made, host-local addresses from the node's /24, no
    # masquerade (nothing is meant to leave), hairpin so a pod can reach itself via a Service.
    write_config "$STATE_DIR/cni/net.d/10-statelab.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "statelab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
JSON
    restart_if_changed containerd
    PATH=/usr/sbin:/usr/bin:/sbin:/bin start_process containerd containerd --config "$dir/config.toml"
    wait_for 60 containerd ctr --address "$CONTAINERD_SOCK" version
}

kubelet_up() {
    local dir=$STATE_DIR/kubelet
    CONFIG_CHANGED=0
    mkdir -p "$dir/root" "$STATE_DIR/pod-logs"
    # No nameserver for pods with dnsPolicy Default: the machine's resolvers are not theirs.
    [ -f "$dir/resolv.conf" ] || : >"$dir/resolv.conf"
    write_config "$dir/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI_DIR/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$DNS_SERVICE_IP]
resolvConf: $dir/resolv.conf
podLogsDir: $STATE_DIR/pod-logs
serializeImagePulls: false
# This machine's disk is shared with everything else on it: evict only when it is really full.
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
YAML
    restart_if_changed kubelet
    start_process kubelet "$BIN_DIR/kubelet" --config "$dir/config.yaml" \
        --kubeconfig "$STATE_DIR/kubelet.kubeconfig" --hostname-override "$NODE_NAME" \
        --node-ip "$NODE_IP" --root-dir "$dir/root" --oom-score-adj=0
    wait_for 120 "node $NODE_NAME to register" kubectl_admin get node "$NODE_NAME"
}

proxy_up() {
    CONFIG_CHANGED=0
    write_config "$STATE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE_DIR/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $NODE_NAME
oomScoreAdj: 0
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts on the node's bridge address only: never on the machine's own network.
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
    restart_if_changed kube-proxy
    start_process kube-proxy "$BIN_DIR/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml"
}

addons_up() {
    local file
    for file in "$CLUSTER_SRC"/addons/*.yaml; do
        sed -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" \
            -e "s|@COREDNS_IMAGE@|registry.k8s.io/coredns/coredns:$COREDNS_VERSION|g" \
            -e "s|@LOCAL_PATH_PROVISIONER_IMAGE@|docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|g" \
            -e "s|@LOCAL_PATH_DIR@|$STATE_DIR/local-path|g" "$file"
        echo ---
    done | kubectl_admin apply -f - >/dev/null
}

policy_up() {
    # kube-router as NetworkPolicy firewall only: routing and service proxying stay with the
    # bridge and kube-proxy.
    start_process kube-router "$BIN_DIR/kube-router" --kubeconfig "$STATE_DIR/kube-router.kubeconfig" \
        --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
        --hostname-override "$NODE_NAME" --enable-ipv4=true --enable-ipv6=false \
        --service-cluster-ip-range "$SERVICE_CIDR" --health-port 0 --metrics-port 0
}

wait_until_ready() {
    wait_for 180 "node $NODE_NAME to be Ready" \
        kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
    wait_for 180 "CoreDNS" kubectl_admin -n kube-system rollout status deployment/coredns --timeout=1s
    wait_for 180 "the local-path provisioner" \
        kubectl_admin -n local-path-storage rollout status deployment/local-path-provisioner --timeout=1s
    # The promise of `up`: a pod can resolve the API server's Service name.
    # (Three tries: attaching to a pod that exits at once can lose its output.)
    local out attempt
    for attempt in 1 2 3; do
        kubectl_admin -n default delete pod statelab-dns-check --ignore-not-found --wait=true >/dev/null 2>&1 || true
        if out=$(kubectl_admin -n default run statelab-dns-check --image=busybox:latest --restart=Never \
            --rm -i --quiet --pod-running-timeout=120s -- nslookup "kubernetes.default.svc.$CLUSTER_DOMAIN" 2>&1) &&
            grep -q "Address: $KUBERNETES_SERVICE_IP" <<<"$out"; then
            return 0
        fi
        sleep 2
    done
    die "kubernetes.default.svc.$CLUSTER_DOMAIN does not resolve from a pod: $out"
}

print_env() {
    echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
    echo "export PATH=$BIN_DIR:\$PATH"
}

cluster_up() {
    require_root up
    install_prereqs
    check_built
    mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"
    save_baseline
    make_pki
    network_up
    registry_up
    etcd_up
    control_plane_up
    containerd_up
    kubelet_up
    proxy_up
    addons_up
    policy_up
    wait_until_ready
    log "cluster is up: node $NODE_NAME Ready, DNS answering; logs in $LOG_DIR"
    print_env
}
