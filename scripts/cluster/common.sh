# Shared by every scripts/cluster.sh command: where things live, logging, process bookkeeping.
# shellcheck shell=bash

CLUSTER_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_SRC/../.." && pwd)
# shellcheck source=versions.sh
. "$CLUSTER_SRC/versions.sh"

# Built binaries (cached across clones, runs and CI); runtime state of the running cluster.
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/statelab/cluster
CACHE_DIR=$CACHE_ROOT/$KUBERNETES_VERSION
BIN_DIR=$CACHE_DIR/bin
STATE_DIR=${STATELAB_CLUSTER_STATE:-/var/lib/statelab-cluster}
RUN_DIR=/run/statelab-cluster
LOG_DIR=$STATE_DIR/logs
PKI_DIR=$STATE_DIR/pki
KUBECONFIG_ADMIN=$STATE_DIR/admin.kubeconfig

# Addresses: a bridge of our own carries the node address and the pods; nothing here overlaps
# a route the machine already has (checked by `up`), and neither range is reachable off-machine.
NODE_NAME=statelab
BRIDGE=slab0
POD_CIDR=${STATELAB_POD_CIDR:-10.244.0.0/16}
NODE_POD_CIDR=${POD_CIDR%.*.*/*}.0.0/24 # the first /24: what the controller-manager gives the only node
NODE_IP=${POD_CIDR%.*.*/*}.0.1          # the bridge's address: API server, kubelet, pods' gateway
SERVICE_CIDR=${STATELAB_SERVICE_CIDR:-10.96.0.0/16}
KUBERNETES_SERVICE_IP=${SERVICE_CIDR%.*.*/*}.0.1
DNS_SERVICE_IP=${SERVICE_CIDR%.*.*/*}.0.10
CLUSTER_DOMAIN=cluster.local
REGISTRY_ADDR=127.0.0.1:${STATELAB_REGISTRY_PORT:-5055}
APISERVER_PORT=6443
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
NFT_TABLE=statelab_egress # the egress drop, in a table of its own that nothing else rewrites

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (it starts containerd, kubelet and changes network settings)"
}

kubectl_admin() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# Processes are started detached with their PID in $RUN_DIR/<name>.pid and their output in
# $LOG_DIR/<name>.log; only PIDs recorded there are ever stopped.
pid_of() {
    local pidfile=$RUN_DIR/$1.pid pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    # A stale file (process gone, or the PID reused by something else) does not count.
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(cat "$RUN_DIR/$1.cmd" 2>/dev/null)"; then
        echo "$pid"
        return 0
    fi
    return 1
}

is_running() { pid_of "$1" >/dev/null; }

start_process() {
    local name=$1
    shift
    if is_running "$name"; then
        return 0
    fi
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    log "starting $name"
    # setsid: its own session, so nothing we run later (or a Ctrl-C in this shell) signals it.
    setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
    basename "$1" >"$RUN_DIR/$name.cmd"
}

stop_process() {
    local name=$1 pid i
    if pid=$(pid_of "$name"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.cmd"
}

# write_config <file>: standard input into the file, only if its content changes (kube-proxy
# exits when its configuration file is rewritten, and a second `up` must change nothing).
# A change sets CONFIG_CHANGED=1, so the caller restarts the component that reads it.
CONFIG_CHANGED=0
write_config() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    if cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv "$tmp" "$file"
        CONFIG_CHANGED=1
    fi
}

restart_if_changed() { # restart_if_changed <name>: after write_config, stop it so it starts anew
    [ "$CONFIG_CHANGED" = 1 ] && is_running "$1" && stop_process "$1"
    CONFIG_CHANGED=0
}

# wait_for <seconds> <what> <command...>: retry the command once a second.
wait_for() {
    local timeout=$1 what=$2 i
    shift 2
    for i in $(seq 1 "$timeout"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    die "timed out after ${timeout}s waiting for $what (logs: $LOG_DIR)"
}
