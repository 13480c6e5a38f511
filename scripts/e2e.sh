#!/usr/bin/env bash
# Every lab in deploy/k8s/ and the Helm chart, applied to a real cluster exactly as the docs
# tell users, waited on until every workload is ready, checked with the seed's first request
# through its Service, then deleted (PVCs included) and checked gone. One lab at a time.
#
#   scripts/e2e.sh [LAB...]      labs: guestbook guestbook-postgres users cache queue
#                                queue-redis counter visits helm-counter (default: all)
#
# With KUBECONFIG unset (or set to the project's own cluster) it uses scripts/cluster.sh's
# cluster, starting it if needed, and builds and pushes the images itself. Pointed at another
# cluster (kind, minikube, k3s) it uses that one and expects the images to be loaded there
# (docs/cluster.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ALL_LABS=(guestbook guestbook-postgres users cache queue queue-redis counter visits helm-counter)
ROLLOUT_TIMEOUT=${E2E_ROLLOUT_TIMEOUT:-300s}

say() { printf '[e2e] %s\n' "$*" >&2; }

own_kubeconfig=$("$HERE/cluster.sh" env | sed -n 's/^export KUBECONFIG=//p')
if [ -z "${KUBECONFIG:-}" ] || [ "$KUBECONFIG" = "$own_kubeconfig" ]; then
    own_cluster=1
    "$HERE/cluster.sh" is-up || "$HERE/cluster.sh" up >/dev/null
    eval "$("$HERE/cluster.sh" env)"
    "$HERE/cluster.sh" images
else
    own_cluster=0
    command -v kubectl >/dev/null || { say "kubectl is not on PATH"; exit 1; }
    say "using the cluster of KUBECONFIG=$KUBECONFIG; the images must already be loaded there"
fi

# The lab's namespace(s), read from its manifests.
namespaces_of() {
    kubectl apply --dry-run=client -f "$1" -o jsonpath='{range .items[*]}{.metadata.namespace}{"\n"}{end}' 2>/dev/null |
        sort -u | grep -v '^$' || true
}

wait_workloads() { # every Deployment and StatefulSet of the namespace rolled out and ready
    local ns=$1 w
    for w in $(kubectl get deployments,statefulsets -n "$ns" -o name); do
        kubectl rollout status -n "$ns" "$w" --timeout="$ROLLOUT_TIMEOUT" >/dev/null || {
            echo "$w in $ns did not become ready"
            return 1
        }
    done
}

cluster_ip() { kubectl get service -n "$1" "$2" -o jsonpath='{.spec.clusterIP}'; }

# http <url> [curl args...]: the body, failing on any non-2xx answer. From this machine, the
# request goes to the Service's ClusterIP and kube-proxy picks the pod, as for any client.
http() {
    local url=$1
    shift
    curl -sS --fail-with-body --max-time 10 --retry 5 --retry-all-errors --retry-delay 2 "$@" "$url"
}

expect() { # expect <text> <what>: stdin must contain the text
    local body
    body=$(cat)
    grep -qF -- "$1" <<<"$body" || {
        echo "$2: expected '$1' in: ${body:0:400}"
        return 1
    }
}

smoke_guestbook() { # seed 000: the page, then a message posted and shown
    local ns=$1 svc=$2 ip
    ip=$(cluster_ip "$ns" "$svc")
    http "http://$ip/" | expect "<form" "GET / through $svc"
    http "http://$ip/api/messages" -H 'content-type: application/json' \
        -d '{"name":"e2e","message":"hello from the cluster"}' >/dev/null
    http "http://$ip/" | expect "hello from the cluster" "the posted message on the page"
}

smoke_users() { # seed 001 §1: /health, then the first POST /users and the list
    local ip
    ip=$(cluster_ip lab-06-users user-api)
    http "http://$ip:8000/health" | expect '"status":"healthy"' "GET /health"
    http "http://$ip:8000/users?name=Alice&email=alice@example.com" -X POST | expect '"name":"Alice"' "POST /users"
    http "http://$ip:8000/users" | expect 'alice@example.com' "GET /users"
}

smoke_cache() { # seed 001 §2: /health, then POST /cache/mykey/myvalue and GET it back
    local ip
    ip=$(cluster_ip lab-06-cache cache-api)
    http "http://$ip:8000/health" | expect '"status":"healthy"' "GET /health"
    http "http://$ip:8000/cache/mykey/myvalue" -X POST >/dev/null
    http "http://$ip:8000/cache/mykey" | expect 'myvalue' "GET /cache/mykey"
}

smoke_queue() { # seed 001 §3: a task enqueued through the API is run by a worker
    local ip id i state=""
    ip=$(cluster_ip task-queue queue-api)
    id=$(http "http://$ip:8000/tasks" -H 'content-type: application/json' \
        -d '{"type": "sleep", "payload": {"ms": 100}}' | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
    [ -n "$id" ] || { echo "POST /tasks returned no id"; return 1; }
    for i in $(seq 1 60); do
        state=$(http "http://$ip:8000/tasks/$id" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
        [ "$state" = completed ] && return 0
        sleep 1
    done
    echo "task $id is '$state' after 60 s, not completed"
    return 1
}

smoke_counter() { # seed 003: /ready in the pod, then the first increment through the Service's DNS name
    local ns=task-05 url
    kubectl exec -n "$ns" counter-app-0 -c counter -- curl -sf http://localhost:8080/ready | expect 'ready' "GET /ready in counter-app-0"
    url=http://counter-app-0.counter-service.$ns.svc.cluster.local:8080
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf -X POST "$url/increment" >/dev/null
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf "$url/count" | expect '"count":1' "GET /count through $url"
}

smoke_visits() { # seed 004: a visit through the Service's DNS name is counted in the pod's file
    local ns=visits url
    url=http://web-app-0.web-app.$ns.svc.cluster.local:5000/
    kubectl exec -n "$ns" web-app-1 -- curl -sf "$url" >/dev/null
    kubectl exec -n "$ns" web-app-0 -- cat visits | expect '1' "the visits file of web-app-0"
}

# Delete the lab and check nothing of it is left: namespace, PVCs and their volumes.
delete_lab() {
    local dir=$1 ns
    shift
    kubectl delete -f "$dir" --ignore-not-found --wait=true --timeout=180s >/dev/null
    for ns in "$@"; do
        kubectl delete pvc --all -n "$ns" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || true
        kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=180s >/dev/null
    done
    local i left
    for i in $(seq 1 60); do
        left=$(kubectl get pv -o jsonpath='{range .items[*]}{.spec.claimRef.namespace}{" "}{.metadata.name}{"\n"}{end}' |
            awk -v nss=" $* " 'index(nss, " " $1 " ") {print $2}')
        [ -z "$left" ] && return 0
        sleep 2
    done
    echo "volumes left behind: $left"
    return 1
}

diagnose() { # what a failing lab looked like, for the log
    local ns
    for ns in "$@"; do
        kubectl get all,pvc,networkpolicy -n "$ns" -o wide 2>&1 | sed 's/^/    /'
        kubectl get events -n "$ns" --sort-by=.lastTimestamp 2>&1 | tail -20 | sed 's/^/    /'
        local pod
        for pod in $(kubectl get pods -n "$ns" -o name 2>/dev/null); do
            kubectl logs -n "$ns" "$pod" --all-containers --tail=15 2>&1 | sed "s|^|    $pod: |"
        done
    done >&2
}

run_manifest_lab() { # <lab> <dir> <smoke function> [smoke args...]
    local lab=$1 dir=$2 smoke=$3 nss
    shift 3
    mapfile -t nss < <(namespaces_of "$dir")
    kubectl apply -f "$dir" >/dev/null || { echo "kubectl apply -f $dir failed"; return 1; }
    local ns
    for ns in "${nss[@]}"; do wait_workloads "$ns" || { diagnose "${nss[@]}"; return 1; }; done
    "$smoke" "$@" || { diagnose "${nss[@]}"; return 1; }
    delete_lab "$dir" "${nss[@]}"
}

run_queue_redis() { # the queue on its Redis backend, as docs/queue.md switches it
    local ns=task-queue
    kubectl apply -f "$ROOT/deploy/k8s/queue/" >/dev/null
    kubectl apply -f "$ROOT/deploy/k8s/queue/redis-backend/" >/dev/null
    kubectl patch configmap queue-config -n "$ns" --type merge -p '{"data":{"QUEUE_BACKEND":"redis"}}' >/dev/null
    kubectl rollout restart -n "$ns" deployment/queue-api deployment/queue-worker >/dev/null
    wait_workloads "$ns" || { diagnose "$ns"; return 1; }
    smoke_queue || { diagnose "$ns"; return 1; }
    kubectl delete -f "$ROOT/deploy/k8s/queue/redis-backend/" --ignore-not-found --wait=true >/dev/null
    delete_lab "$ROOT/deploy/k8s/queue/" "$ns"
}

run_helm_counter() { # seed 002's chart, installed, tested and upgraded by real Helm (docs/counter.md)
    local ns=counter
    kubectl create namespace "$ns" >/dev/null
    kubectl create secret generic counter-secrets -n "$ns" --from-literal=MY_PASS='change-me' >/dev/null
    helm install counter "$ROOT/deploy/helm/counter" -n "$ns" --set secrets.existingSecret=counter-secrets \
        --wait --timeout 5m >/dev/null || { diagnose "$ns"; return 1; }
    helm test counter -n "$ns" --logs >/dev/null || { diagnose "$ns"; return 1; }
    helm upgrade counter "$ROOT/deploy/helm/counter" -n "$ns" --reuse-values \
        --set updateStrategy.partition=1 --set-string podAnnotations.rollout=canary --wait --timeout 5m >/dev/null ||
        { diagnose "$ns"; return 1; }
    wait_workloads "$ns" || { diagnose "$ns"; return 1; }
    helm uninstall counter -n "$ns" --wait >/dev/null
    kubectl delete pvc --all -n "$ns" --wait=true >/dev/null
    kubectl delete namespace "$ns" --wait=true >/dev/null
}

run_guestbook() { # seed 000's hostPath volume needs its directory on the node (docs/guestbook.md)
    local dir=/mnt/data/guestbook created=""
    if [ "$own_cluster" = 1 ]; then # the node is this machine
        [ -d /mnt/data ] || created=/mnt/data
        [ -d "$dir" ] || created=${created:-$dir}
        install -d -o 10001 -g 10001 "$dir"
    fi
    local status=0
    run_manifest_lab guestbook "$ROOT/deploy/k8s/guestbook/" smoke_guestbook guestbook stateful-app-service || status=$?
    [ -n "$created" ] && [ "$status" = 0 ] && rm -rf "$created"
    return "$status"
}

run_lab() {
    case "$1" in
    guestbook) run_guestbook ;;
    guestbook-postgres) run_manifest_lab "$1" "$ROOT/deploy/k8s/guestbook-postgres/" smoke_guestbook guestbook-postgres guestbook ;;
    users) run_manifest_lab "$1" "$ROOT/deploy/k8s/users/" smoke_users ;;
    cache) run_manifest_lab "$1" "$ROOT/deploy/k8s/cache/" smoke_cache ;;
    queue) run_manifest_lab "$1" "$ROOT/deploy/k8s/queue/" smoke_queue ;;
    queue-redis) run_queue_redis ;;
    counter) run_manifest_lab "$1" "$ROOT/deploy/k8s/counter/" smoke_counter ;;
    visits) run_manifest_lab "$1" "$ROOT/deploy/k8s/visits/" smoke_visits ;;
    helm-counter) run_helm_counter ;;
    *)
        echo "unknown lab '$1' (labs: ${ALL_LABS[*]})"
        return 1
        ;;
    esac
}

labs=("$@")
[ ${#labs[@]} -gt 0 ] || labs=("${ALL_LABS[@]}")
passed=0
failed=()
for lab in "${labs[@]}"; do
    start=$(date +%s)
    if reason=$(run_lab "$lab" 2>&1); then
        printf 'PASS  %-20s %4ss\n' "$lab" "$(($(date +%s) - start))"
        passed=$((passed + 1))
    else
        printf 'FAIL  %-20s %4ss  %s\n' "$lab" "$(($(date +%s) - start))" "$(tail -1 <<<"$reason")"
        sed 's/^/      /' <<<"$reason" >&2
        failed+=("$lab")
    fi
done
echo "e2e: ${passed}/${#labs[@]} labs passed${failed:+; failed: ${failed[*]}} (cluster: $([ "$own_cluster" = 1 ] && echo "scripts/cluster.sh" || echo "$KUBECONFIG"))"
[ ${#failed[@]} -eq 0 ]
