#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, built from upstream sources:
#   build   compile Kubernetes, etcd, CoreDNS, Helm, the local-path provisioner, kube-router,
#           crane and crictl from their Go modules, and pause from its C source (cached)
#   up      start it (root): certificates, etcd, control plane, containerd + kubelet,
#           kube-proxy, NetworkPolicy enforcement, DNS, the default StorageClass
#   down    stop it and remove everything `up` created
#   status  what runs, by component
#   env     the two lines that point kubectl and helm at it: eval "$(scripts/cluster.sh env)"
#   images  build and push the labs' images (statelab and the backend stand-ins)
# docs/cluster.md explains what runs where, and how it differs from kind, k3s and minikube.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/cluster/common.sh"
for part in prereqs build pki images up down; do
    # shellcheck source=/dev/null
    . "$CLUSTER_SRC/$part.sh"
done

COMPONENTS=(registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)

cluster_status() {
    local name pid running=0
    for name in "${COMPONENTS[@]}"; do
        if pid=$(pid_of "$name"); then
            printf '%-24s running (pid %s)\n' "$name" "$pid"
            running=$((running + 1))
        else
            printf '%-24s stopped\n' "$name"
        fi
    done
    if [ "$running" -eq "${#COMPONENTS[@]}" ]; then
        kubectl_admin get nodes -o wide 2>/dev/null || true
        return 0
    fi
    return 1
}

is_up() {
    local name
    for name in "${COMPONENTS[@]}"; do is_running "$name" || return 1; done
    kubectl_admin get --raw /readyz >/dev/null 2>&1
}

case "${1:-}" in
build) install_prereqs && cluster_build ;;
up) cluster_up ;;
down) cluster_down ;;
status) cluster_status ;;
env) print_env ;;
is-up) is_up ;;
images)
    require_root images
    is_running registry || die "the cluster is not up (scripts/cluster.sh up)"
    build_lab_images
    ;;
*)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
