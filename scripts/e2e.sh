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
ROLLOUT_TIMEOUT=${E2E_ROLLOUT_TIMEOUT:-300} # seconds

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

# Every Deployment and StatefulSet of the namespace rolled out and ready; a pod that cannot
# start (crash loop, image or configuration error) for 30 s fails the lab, with its reason
# (a configuration error can be transient: a ConfigMap the kubelet has not seen yet).
wait_workloads() {
    local ns=$1 deadline=$((SECONDS + ROLLOUT_TIMEOUT)) w stuck stuck_since=""
    for w in $(kubectl get deployments,statefulsets -n "$ns" -o name); do
        until kubectl rollout status -n "$ns" "$w" --timeout=2s >/dev/null 2>&1; do
            stuck=$(kubectl get pods -n "$ns" -o jsonpath='{range .items[*]}{range .status.initContainerStatuses[*]}{.state.waiting.reason}{" "}{.name}{"\n"}{end}{range .status.containerStatuses[*]}{.state.waiting.reason}{" "}{.name}{"\n"}{end}{end}' |
                grep -E '^(CrashLoopBackOff|ErrImagePull|ImagePullBackOff|CreateContainerConfigError|CreateContainerError|InvalidImageName|RunContainerError) ' | head -1)
            if [ -z "$stuck" ]; then
                stuck_since=""
            elif [ -z "$stuck_since" ]; then
                stuck_since=$SECONDS
            elif [ $((SECONDS - stuck_since)) -ge 30 ]; then
                echo "$w in $ns cannot start: $stuck"
                return 1
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                echo "$w in $ns not ready after ${ROLLOUT_TIMEOUT}s"
                return 1
            fi
        done
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
    policy_blocks lab-06-users postgres-0 5432
}

smoke_cache() { # seed 001 §2: /health, then POST /cache/mykey/myvalue and GET it back
    local ip
    ip=$(cluster_ip lab-06-cache cache-api)
    http "http://$ip:8000/health" | expect '"status":"healthy"' "GET /health"
    http "http://$ip:8000/cache/mykey/myvalue" -X POST >/dev/null
    http "http://$ip:8000/cache/mykey" | expect 'myvalue' "GET /cache/mykey"
    policy_blocks lab-06-cache redis-0 6379
}

smoke_queue() { # seed 001 §3: a task enqueued through the API is run by a worker
    local backend=${1:-postgres} ip id i state="" same=0
    ip=$(cluster_ip task-queue queue-api)
    # Every API pod on the expected backend (after a switch, old pods drain for a while).
    for i in $(seq 1 90); do
        if http "http://$ip:8000/stats" | grep -qF "\"backend\":\"$backend\""; then same=$((same + 1)); else same=0; fi
        [ "$same" -ge 6 ] && break
        sleep 1
    done
    [ "$same" -ge 6 ] || { echo "the API does not answer on the $backend backend"; return 1; }
    id=$(http "http://$ip:8000/tasks" -H 'content-type: application/json' \
        -d '{"type": "sleep", "payload": {"ms": 100}}' | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
    [ -n "$id" ] || { echo "POST /tasks returned no id"; return 1; }
    for i in $(seq 1 60); do
        state=$(http "http://$ip:8000/tasks/$id" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
        [ "$state" = "done" ] && return 0
        sleep 1
    done
    echo "task $id is '$state' after 60 s, not done"
    return 1
}

smoke_counter() { # seed 003: /ready in the pod, then the first increment through the Service's DNS name
    local ns=task-05 url
    kubectl exec -n "$ns" counter-app-0 -c counter -- curl -sf http://localhost:8080/ready | expect 'ready' "GET /ready in counter-app-0"
    url=http://counter-app-0.counter-service.$ns.svc.cluster.local:8080
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf -X POST "$url/increment" >/dev/null
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf "$url/count" | expect '"count":1' "GET /count through $url"
    # The seed's busybox wget step, verbatim.
    kubectl exec -n "$ns" counter-app-0 -c counter -- sh -c "wget -qO- --post-data='' http://localhost:8080/increment" |
        expect '"count":2' "the seed's wget --post-data increment"
    # The seed's log checks: the init container's "Permissions set:", the app's start-up lines.
    kubectl logs -n "$ns" counter-app-0 -c init-counter | expect 'Permissions set:' "the init container's log"
    kubectl logs -n "$ns" counter-app-0 -c counter | expect 'Starting counter app on pod: counter-app-0' "the app's log"
    kubectl logs -n "$ns" counter-app-0 -c counter | expect 'Initial count: ' "the app's log"
}

smoke_visits() { # seed 004: a visit through the Service's DNS name is counted in the pod's file
    local ns=visits url
    url=http://web-app-0.web-app.$ns.svc.cluster.local:5000/
    kubectl exec -n "$ns" web-app-1 -- curl -sf "$url" >/dev/null
    kubectl exec -n "$ns" web-app-0 -- cat visits | expect '1' "the visits file of web-app-0"
}

# The lab's NetworkPolicies are enforced: a pod in another namespace (where no policy limits
# its egress) cannot open a connection to the lab's backend pod, while the same pod reaches
# CoreDNS's pod, which no policy protects (so a pass is not the client failing for another
# reason). curl's time_connect stays 0 unless a TCP connection was established.
policy_blocks() { # policy_blocks <namespace> <pod> <port>
    local ns=$1 pod=$2 port=$3 target control out
    target=$(kubectl get pod -n "$ns" "$pod" -o jsonpath='{.status.podIP}')
    control=$(kubectl get pods -n kube-system -l k8s-app=kube-dns -o jsonpath='{.items[0].status.podIP}')
    out=$(kubectl run -n default "e2e-intruder-$ns" --image=curlimages/curl:latest --restart=Never --rm -i \
        --quiet --pod-running-timeout=120s -- sh -c "
            connect() { curl -s -o /dev/null --connect-timeout 3 --max-time 4 -w '%{time_connect}' http://\$1/; }
            echo control=\$(connect $control:53) target=\$(connect $target:$port)" 2>&1) || true
    case "$out" in
    *control=0.000000*) echo "policy check for $ns could not run: the control connection failed ($out)"; return 1 ;;
    *control=*target=0.000000*) return 0 ;;
    *control=*target=*) echo "NetworkPolicy not enforced: a pod outside $ns reached $pod:$port ($out)"; return 1 ;;
    *) echo "policy check for $ns could not run: $out"; return 1 ;;
    esac
}

# Delete the lab and check nothing of it is left: namespace, PVCs and their volumes.
delete_lab() { # delete_lab <dir or /dev/null> <namespace>...
    local dir=$1 ns
    shift
    [ "$dir" = /dev/null ] || kubectl delete -f "$dir" --ignore-not-found --wait=true --timeout=180s >/dev/null
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
    local lab=$1 dir=$2 smoke=$3 nss ns
    shift 3
    mapfile -t nss < <(namespaces_of "$dir")
    if ! kubectl apply -f "$dir" >/dev/null; then
        echo "kubectl apply -f $dir failed"
        delete_lab "$dir" "${nss[@]}" >/dev/null 2>&1
        return 1
    fi
    for ns in "${nss[@]}"; do
        wait_workloads "$ns" || { failed_lab "$dir" "${nss[@]}"; return 1; }
    done
    "$smoke" "$@" || { failed_lab "$dir" "${nss[@]}"; return 1; }
    delete_lab "$dir" "${nss[@]}"
}

failed_lab() { # failed_lab <dir> <namespace>...: show what it looked like, then remove it
    local dir=$1
    shift
    diagnose "$@"
    delete_lab "$dir" "$@" >/dev/null 2>&1 || true
}

run_queue_redis() { # the queue on its Redis backend, as docs/queue.md switches it
    local ns=task-queue
    kubectl apply -f "$ROOT/deploy/k8s/queue/" >/dev/null
    kubectl apply -f "$ROOT/deploy/k8s/queue/redis-backend/" >/dev/null
    kubectl patch configmap queue-config -n "$ns" --type merge -p '{"data":{"QUEUE_BACKEND":"redis"}}' >/dev/null
    kubectl rollout restart -n "$ns" deployment/queue-api deployment/queue-worker >/dev/null
    local status=0
    wait_workloads "$ns" && smoke_queue redis || status=1
    [ "$status" = 0 ] || diagnose "$ns"
    kubectl delete -f "$ROOT/deploy/k8s/queue/redis-backend/" --ignore-not-found --wait=true >/dev/null
    delete_lab "$ROOT/deploy/k8s/queue/" "$ns" || status=1
    return "$status"
}

run_helm_counter() { # seed 002's chart, installed, tested and upgraded by real Helm (docs/counter.md)
    local ns=counter chart=$ROOT/deploy/helm/counter status=0
    kubectl create namespace "$ns" >/dev/null
    kubectl create secret generic counter-secrets -n "$ns" --from-literal=MY_PASS='change-me' >/dev/null
    if ! helm install counter "$chart" -n "$ns" --set secrets.existingSecret=counter-secrets --wait --timeout 5m; then
        echo "helm install failed"
        status=1
    elif ! helm test counter -n "$ns"; then
        echo "helm test failed"
        status=1
    elif ! helm upgrade counter "$chart" -n "$ns" --reuse-values --set updateStrategy.partition=1 \
        --set-string podAnnotations.rollout=canary --wait --timeout 5m; then
        echo "helm upgrade (canary partition) failed"
        status=1
    elif ! wait_workloads "$ns"; then
        status=1
    fi
    [ "$status" = 0 ] || diagnose "$ns"
    helm uninstall counter -n "$ns" --wait >/dev/null 2>&1 || true
    delete_lab /dev/null "$ns" >/dev/null || status=1
    return "$status"
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
    # What the lab made on the node goes with it, passed or not.
    [ -z "$created" ] || rm -rf "$created"
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
