#!/usr/bin/env bash
# The cluster's own lifecycle, tested on this machine:
#   1. up, then every component killed with SIGKILL (stale PID files, mounts, network
#      namespaces and iptables chains left behind), then up again: it must recover;
#   2. scripts/e2e.sh on the recovered cluster (skipped with --no-e2e);
#   3. down, up, down: the machine must be exactly as before (interfaces, routes, network
#      namespaces, mounts, iptables and nftables rules, sysctls, processes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster/common.sh"
run_e2e=1
[ "${1:-}" = --no-e2e ] && run_e2e=0

say() { printf '[cluster-test] %s\n' "$*" >&2; }

# Everything on the machine that the cluster may touch, in a stable textual form (an empty
# section is not an error).
snapshot() {
    set +e +o pipefail
    echo "## links"
    ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort
    echo "## addresses"
    ip -o addr show | awk '{print $2, $4}' | sort
    echo "## routes"
    ip route show table all | grep -v '^ff00::\|^fe80::\|^multicast\|^local fe80\|^local ::1 \|^anycast' | sort
    echo "## netns"
    ls /var/run/netns 2>/dev/null | sort || true
    echo "## mounts"
    findmnt -rn -o TARGET,FSTYPE | sort
    echo "## iptables"
    iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
    echo "## ip6tables"
    ip6tables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
    echo "## nftables tables"
    nft list tables 2>/dev/null | sort
    echo "## sysctls"
    sysctl -a 2>/dev/null | grep -Ev '^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota)|kernel\.(random|ns_last_pid|pty\.nr|sched_domain)|net\.netfilter\.nf_conntrack_count|net\.ipv[46]\.(conf|neigh)\.(veth|cni|slab)|.*\.stat|vm\.(nr_|stat))' |
        grep -Ev '^net\.ipv6\.route\.gc|^fs\.binfmt|^kernel\.(tainted|perf_event)' | sort
    echo "## processes of the cluster"
    ps -eo comm= | grep -Ex 'etcd|kube-.*|kubelet|containerd.*|crane|coredns|local-path-prov|pause' | sort || true
    echo "## paths"
    for p in "$STATE_DIR" "$RUN_DIR" /run/containerd /var/lib/cni /etc/cni /opt/cni /mnt/data; do
        [ -e "$p" ] && echo "$p"
    done
    set -e -o pipefail
}

compare() { # compare <before> <after> <when>
    if ! diff -u "$1" "$2" >"$2.diff"; then
        say "FAIL: the machine differs from before the first up, $3:"
        cat "$2.diff" >&2
        exit 1
    fi
    say "ok: the machine is as before, $3"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$HERE/cluster.sh" is-up && { say "a cluster is already up: run scripts/cluster.sh down first"; exit 1; }
# What a cluster left when its processes ended without `down` (a machine shut down, a session
# ended): removed first, so "before" is the machine without any cluster.
if [ -d "$STATE_DIR" ] || [ -d "$RUN_DIR" ]; then
    say "removing what an earlier cluster left behind"
    "$HERE/cluster.sh" down >/dev/null
fi
snapshot >"$work/before"

say "up"
"$HERE/cluster.sh" up >/dev/null
say "killing every component with SIGKILL"
for name in kube-router kube-proxy kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd registry; do
    if pid=$(pid_of "$name"); then kill -KILL "$pid"; fi
done
sleep 2
say "up again, over what the crash left"
"$HERE/cluster.sh" up >/dev/null
"$HERE/cluster.sh" status >/dev/null || { say "FAIL: not every component runs after the recovery"; exit 1; }
say "ok: recovered"

if [ "$run_e2e" = 1 ]; then
    say "e2e"
    KUBECONFIG='' "$HERE/e2e.sh"
fi

say "down"
"$HERE/cluster.sh" down >/dev/null
snapshot >"$work/after-down-1"
compare "$work/before" "$work/after-down-1" "after up, crash, up, e2e, down"

say "up; down"
"$HERE/cluster.sh" up >/dev/null
"$HERE/cluster.sh" up >/dev/null # a second up is a no-op
"$HERE/cluster.sh" down >/dev/null
snapshot >"$work/after-down-2"
compare "$work/before" "$work/after-down-2" "after a second up; up; down"
say "passed"
