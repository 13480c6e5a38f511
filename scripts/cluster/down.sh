# `scripts/cluster.sh down`: stop what `up` started (by the PIDs it recorded), remove every pod
# through the CRI, then take away the mounts, network namespaces, bridge, routes, firewall
# rules, sysctls and state that the cluster left: the machine as it was before `up`.
# shellcheck shell=bash

remove_pods() {
    [ -f "$STATE_DIR/containerd/config.toml" ] || return 0
    # containerd tears pods down properly (CNI DEL, network namespace, mounts); after a crash
    # it is started once more for that.
    PATH=/usr/sbin:/usr/bin:/sbin:/bin start_process containerd containerd --config "$STATE_DIR/containerd/config.toml"
    if wait_for_quiet 30 ctr --address "$CONTAINERD_SOCK" version; then
        local crictl=("$BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 60s)
        "${crictl[@]}" rmp --all --force >/dev/null 2>&1 || "${crictl[@]}" rmp --all --force >/dev/null || true
        # Anything else in kubelet's containerd namespace (started with ctr, say) goes too.
        local ctr=(ctr --address "$CONTAINERD_SOCK" -n k8s.io) task
        for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
            "${ctr[@]}" tasks kill -s KILL "$task" >/dev/null 2>&1 || true
            "${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
        done
    fi
    stop_process containerd
    # Container shims outlive containerd by design; those of our containerd name its socket.
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

wait_for_quiet() { # like wait_for, but reports instead of exiting
    local timeout=$1 i
    shift
    for i in $(seq 1 "$timeout"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

firewall_down() {
    # The rules kube-proxy and kube-router wrote, removed by their own cleanup modes.
    [ -x "$BIN_DIR/kube-proxy" ] && "$BIN_DIR/kube-proxy" --cleanup >/dev/null 2>&1 || true
    [ -x "$BIN_DIR/kube-router" ] && "$BIN_DIR/kube-router" --cleanup-config >/dev/null 2>&1 || true
    # Then any chain the cluster created that is still there (kubelet's canaries, ...).
    local ipt table chain
    for ipt in iptables ip6tables; do
        for table in filter nat mangle raw; do
            for chain in $("$ipt-save" -t "$table" 2>/dev/null | awk '/^:KUBE-/ {sub(":", "", $1); print $1}'); do
                grep -qx ":$chain" "$STATE_DIR/baseline/chains" 2>/dev/null && continue
                "$ipt" -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $0 ~ "-j " c "( |$)" {sub("^-A", "-D"); print}' |
                    while read -r rule; do eval "$ipt -t $table $rule" 2>/dev/null || true; done
                "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
                "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
    # Tables iptables created on first use (empty by now) that were not there before.
    local family name
    nft list tables 2>/dev/null | while read -r _ family name; do
        grep -qx "table $family $name" "$STATE_DIR/baseline/nft-tables" 2>/dev/null && continue
        [ -f "$STATE_DIR/baseline/nft-tables" ] || continue
        if [ -z "$(nft list table "$family" "$name" 2>/dev/null | grep -E '^\s+(ip|tcp|udp|meta|ct|counter|jump|goto|accept|drop|reject|mark|iifname|oifname)')" ]; then
            nft delete table "$family" "$name" 2>/dev/null || true
        fi
    done
}

mounts_down() {
    local target
    for target in $(findmnt -rn -o TARGET | grep -E "^($STATE_DIR|$RUN_DIR|/run/netns/cni-|/var/run/netns/cni-|/run/containerd)" | sort -r); do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
    # Network namespaces our containerd made and did not get to delete.
    local ns
    for ns in $(ls /var/run/netns 2>/dev/null); do
        [[ $ns == cni-* ]] || continue
        grep -qx "$ns" "$STATE_DIR/baseline/netns" 2>/dev/null && continue
        ip netns delete "$ns" 2>/dev/null || rm -f "/var/run/netns/$ns"
    done
}

network_down() {
    ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
    ip route del "$POD_CIDR" 2>/dev/null || true
    ip route del "$SERVICE_CIDR" 2>/dev/null || true
}

sysctls_down() {
    [ -f "$STATE_DIR/baseline/sysctl" ] || return 0
    local line
    while read -r line; do
        sysctl -qw "$line" 2>/dev/null || true
    done <"$STATE_DIR/baseline/sysctl"
}

paths_down() {
    local d
    for d in /run/containerd /var/lib/cni /etc/cni /opt/cni; do
        grep -qx "$d" "$STATE_DIR/baseline/paths" 2>/dev/null && continue
        [ -e "$d" ] && rm -rf "$d"
    done
    rm -rf "$RUN_DIR"
    rm -rf "$STATE_DIR"
}

cluster_down() {
    require_root down
    [ -d "$STATE_DIR" ] || [ -d "$RUN_DIR" ] || { log "no cluster state in $STATE_DIR: nothing to do"; return 0; }
    local name
    for name in kube-router kube-proxy kubelet; do stop_process "$name"; done
    remove_pods
    for name in kube-scheduler kube-controller-manager kube-apiserver etcd registry; do stop_process "$name"; done
    firewall_down
    mounts_down
    network_down
    sysctls_down
    paths_down
    log "cluster is down; the machine is as it was before up"
}
