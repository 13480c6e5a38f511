#!/usr/bin/env bash
# Every lab in deploy/k8s/ and the Helm chart, applied to a real cluster exactly as the docs
# tell users, waited on until every workload is ready, checked with the seed's first request
# through its Service (and the seed's own DNS commands), then deleted (PVCs included) and checked
# gone. One lab at a time: the labs share names (postgres, redis, postgres-headless, ...).
#
# The labs name no namespace, so they run where the seeds run them, in `default` (seed 003's
# counter in its own task-05). Before a lab, none of its objects or claims may exist there; after
# it, its objects, its StatefulSets' PVCs and their volumes are gone and `default` holds exactly
# what it held before. The Helm chart gets a namespace of its own, `counter`, as docs/counter.md
# installs it: the release's Secret, hook and test pods and PVCs go with the namespace.
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
ALL_LABS=(guestbook guestbook-postgres users cache cache-exercise queue queue-redis counter counter-emptydir
    counter-no-headless visits helm-counter)
ROLLOUT_TIMEOUT=${E2E_ROLLOUT_TIMEOUT:-300} # seconds
LAB_NS=default # where the labs without a namespace of their own run, as in the seeds

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
# statelab verify grades every lab (docs/verify.md): the binary the images were built from, else
# a debug build of this tree.
VERIFY_BIN=${STATELAB_BIN:-}
if [ -z "$VERIFY_BIN" ]; then
    (cd "$ROOT" && cargo build --locked --quiet)
    VERIFY_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/statelab
fi
VERIFY_REPORTS=${E2E_VERIFY_REPORTS:-$(mktemp -d)}
mkdir -p "$VERIFY_REPORTS"
: >"$VERIFY_REPORTS/scores"

# The seeds' commands (`kubectl run … nslookup …`, `kubectl exec pod/web-app-0 …`) run as
# written, without -n: in the current namespace, which must be the labs' one.
current_ns=$(kubectl config view --minify -o jsonpath='{..namespace}')
if [ -n "$current_ns" ] && [ "$current_ns" != "$LAB_NS" ]; then
    say "the current namespace is $current_ns: the seeds' commands run in $LAB_NS"
    say "(kubectl config set-context --current --namespace=$LAB_NS), then run $0 again"
    exit 1
fi

# The lab's Deployments and StatefulSets (in <dir>s, or every one of the namespace without) rolled
# out and ready; a pod of theirs that cannot start (crash loop, image or configuration error) for
# 30 s fails the lab, with its reason (a configuration error can be transient: a ConfigMap the
# kubelet has not seen yet). Other workloads of the namespace are none of the lab's business.
wait_workloads() { # wait_workloads <namespace> [dir...]
    local ns=$1 deadline=$((SECONDS + ROLLOUT_TIMEOUT)) w stuck stuck_since="" selector workloads
    shift
    if [ $# -gt 0 ]; then
        workloads=$(for dir in "$@"; do kubectl get -n "$ns" -f "$dir" -o name; done | grep -E '^(deployment|statefulset)\.' || true)
    else
        workloads=$(kubectl get deployments,statefulsets -n "$ns" -o name)
    fi
    for w in $workloads; do
        # shellcheck disable=SC2016 # a Go template, not a shell expansion
        selector=$(kubectl get -n "$ns" "$w" -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')
        until kubectl rollout status -n "$ns" "$w" --timeout=2s >/dev/null 2>&1; do
            stuck=$(kubectl get pods -n "$ns" -l "${selector%,}" -o jsonpath='{range .items[*]}{range .status.initContainerStatuses[*]}{.state.waiting.reason}{" "}{.name}{"\n"}{end}{range .status.containerStatuses[*]}{.state.waiting.reason}{" "}{.name}{"\n"}{end}{end}' |
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
    http "http://$ip/" | expect "<form" "GET / through $svc" || return 1
    http "http://$ip/api/messages" -H 'content-type: application/json' \
        -d '{"name":"e2e","message":"hello from the cluster"}' >/dev/null || return 1
    http "http://$ip/" | expect "hello from the cluster" "the posted message on the page" || return 1
}

# run_pod <name> <image> <args...>: a seed's throwaway `kubectl run -it --rm` pod, run without a
# terminal: created in the current namespace, waited on until its command has finished, its
# output printed, then deleted.
run_pod() {
    local name=$1 image=$2 phase="" i
    shift 2
    kubectl run "$name" --image="$image" --restart=Never -- "$@" >/dev/null
    for i in $(seq 1 120); do
        phase=$(kubectl get pod "$name" -o jsonpath='{.status.phase}')
        [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
        sleep 1
    done
    kubectl logs "pod/$name" 2>&1 || true
    kubectl delete pod "$name" --wait=true --timeout=60s >/dev/null 2>&1 || true
    [ "$phase" = Succeeded ] || [ "$phase" = Failed ] || echo "pod $name still $phase after 120 s"
}

# resolves <name> <pod>: stdin, a busybox nslookup answer, gives <name> the address of <pod>
# (in the labs' namespace).
resolves() {
    local name=$1 pod=$2 ip answer
    answer=$(cat)
    ip=$(kubectl get pod -n "$LAB_NS" "$pod" -o jsonpath='{.status.podIP}')
    awk -v name="$name" -v ip="$ip" '
        $1 == "Name:" { named = ($2 == name); next }
        named && $1 ~ /^Address/ { for (i = 2; i <= NF; i++) if ($i == ip) ok = 1 }
        END { exit !ok }' <<<"$answer" || {
        echo "nslookup $name: expected $pod's address $ip in: ${answer:0:400}"
        return 1
    }
}

smoke_users() { # seed 001 §1: /health, the first POST /users and the list, the seed's nslookup
    local ns=$LAB_NS ip name=postgres-0.postgres-headless.default.svc.cluster.local
    ip=$(cluster_ip "$ns" user-api)
    http "http://$ip:8000/health" | expect '"status":"healthy"' "GET /health" || return 1
    http "http://$ip:8000/users?name=Alice&email=alice@example.com" -X POST | expect '"name":"Alice"' "POST /users" || return 1
    http "http://$ip:8000/users" | expect 'alice@example.com' "GET /users" || return 1
    # The seed's command: kubectl run -it --rm debug --image=busybox --restart=Never -- nslookup …
    run_pod debug busybox nslookup postgres-0.postgres-headless.default.svc.cluster.local | resolves "$name" postgres-0 || return 1
    policy_blocks "$ns" postgres-0 5432 || return 1
}

smoke_cache() { # seed 001 §2: /health, POST /cache/mykey/myvalue and GET it back, the seed's nslookup
    local ns=$LAB_NS ip name=redis-0.redis-headless.default.svc.cluster.local
    ip=$(cluster_ip "$ns" cache-api)
    http "http://$ip:8000/health" | expect '"status":"healthy"' "GET /health" || return 1
    http "http://$ip:8000/cache/mykey/myvalue" -X POST >/dev/null || return 1
    http "http://$ip:8000/cache/mykey" | expect 'myvalue' "GET /cache/mykey" || return 1
    # The seed's command: kubectl run -it --rm debug --image=busybox --restart=Never -- nslookup …
    run_pod debug busybox nslookup redis-0.redis-headless.default.svc.cluster.local | resolves "$name" redis-0 || return 1
    policy_blocks "$ns" redis-0 6379 || return 1
}

smoke_queue() { # seed 001 §3: a task enqueued through the API is run by a worker
    local backend=${1:-postgres} ip id i state="" same=0
    ip=$(cluster_ip "$LAB_NS" queue-api)
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
        [ "$state" = "done" ] && break
        sleep 1
    done
    [ "$state" = "done" ] || { echo "task $id is '$state' after 60 s, not done"; return 1; }
    if [ "$backend" = redis ]; then
        policy_blocks "$LAB_NS" redis-0 6379
    else
        policy_blocks "$LAB_NS" postgres-0 5432
    fi
}

smoke_counter() { # seed 003: /ready in the pod, then the first increment through the Service's DNS name
    local ns=task-05 url
    kubectl exec -n "$ns" counter-app-0 -c counter -- curl -sf http://localhost:8080/ready | expect 'ready' "GET /ready in counter-app-0" || return 1
    url=http://counter-app-0.counter-service.$ns.svc.cluster.local:8080
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf -X POST "$url/increment" >/dev/null || return 1
    kubectl exec -n "$ns" counter-app-1 -c counter -- curl -sf "$url/count" | expect '"count":1' "GET /count through $url" || return 1
    # The seed's busybox wget step, verbatim.
    kubectl exec -n "$ns" counter-app-0 -c counter -- sh -c "wget -qO- --post-data='' http://localhost:8080/increment" |
        expect '"count":2' "the seed's wget --post-data increment" || return 1
    # The seed's log checks: the init container's "Permissions set:", the app's start-up lines.
    kubectl logs -n "$ns" counter-app-0 -c init-counter | expect 'Permissions set:' "the init container's log" || return 1
    kubectl logs -n "$ns" counter-app-0 -c counter | expect 'Starting counter app on pod: counter-app-0' "the app's log" || return 1
    kubectl logs -n "$ns" counter-app-0 -c counter | expect 'Initial count: ' "the app's log" || return 1
}

smoke_visits() { # seed 004: a visit through the pod's DNS name is counted in its file; the seed's nslookup
    local ns=$LAB_NS url name=web-app-1.web-app.default.svc.cluster.local
    url=http://web-app-0.web-app.$ns.svc.cluster.local:5000/
    kubectl exec -n "$ns" web-app-1 -- curl -sf "$url" >/dev/null || return 1
    # The seed's commands, verbatim.
    kubectl exec pod/web-app-0 -- cat visits | expect '1' "the visits file of web-app-0" || return 1
    kubectl exec pod/web-app-0 -- nslookup web-app-1.web-app.default.svc.cluster.local | resolves "$name" web-app-1 || return 1
}

# The lab's NetworkPolicies are enforced for its own pods only: a pod of the same namespace that
# is not the lab's client (no labels, so no policy selects it and its own traffic is unlimited)
# cannot open a connection to the lab's backend pod, while the same pod reaches CoreDNS's pod,
# which no policy protects (so a pass is not the client failing for another reason). curl's
# time_connect stays 0 unless a TCP connection was established.
policy_blocks() { # policy_blocks <namespace> <pod> <port>
    local ns=$1 pod=$2 port=$3 target control out
    target=$(kubectl get pod -n "$ns" "$pod" -o jsonpath='{.status.podIP}')
    control=$(kubectl get pods -n kube-system -l k8s-app=kube-dns -o jsonpath='{.items[0].status.podIP}')
    out=$(kubectl run -n "$ns" e2e-intruder --image=curlimages/curl:latest --restart=Never --rm -i \
        --quiet --pod-running-timeout=120s -- sh -c "
            connect() { curl -s -o /dev/null --connect-timeout 3 --max-time 4 -w '%{time_connect}' http://\$1/; }
            echo control=\$(connect $control:53) target=\$(connect $target:$port)" 2>&1) || true
    case "$out" in
    *control=0.000000*) echo "policy check in $ns could not run: the control connection failed ($out)"; return 1 ;;
    *control=*target=0.000000*) return 0 ;;
    *control=*target=*) echo "NetworkPolicy not enforced: a pod that is not the lab's client reached $pod:$port ($out)"; return 1 ;;
    *) echo "policy check in $ns could not run: $out"; return 1 ;;
    esac
}

# What a namespace holds, for "left as found": every object of the kinds a lab creates.
namespace_contents() { # namespace_contents <namespace>
    kubectl get all,pvc,configmaps,secrets,networkpolicies,poddisruptionbudgets,serviceaccounts \
        -n "$1" -o name | sort
}

# The PVCs a lab's StatefulSets make from their volumeClaimTemplates, `<template>-<set>-` each.
claim_prefixes() { # claim_prefixes <dir>...
    local dir
    for dir in "$@"; do
        kubectl apply --dry-run=client -f "$dir" -o jsonpath='{range .items[?(@.kind=="StatefulSet")]}{.metadata.name}{" "}{range .spec.volumeClaimTemplates[*]}{.metadata.name}{" "}{end}{"\n"}{end}'
    done | awk '{ for (i = 2; i <= NF; i++) print $i "-" $1 "-" }'
}

# The lab's PVCs present in the namespace: its StatefulSets' (which `kubectl delete -f` leaves
# behind) and the ones its manifests declare.
lab_claims() { # lab_claims <namespace> <dir>...
    local ns=$1 prefixes claim prefix dir
    shift
    prefixes=$(claim_prefixes "$@")
    kubectl get pvc -n "$ns" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' |
        while read -r claim; do
            for prefix in $prefixes; do
                if [[ $claim =~ ^${prefix}[0-9]+$ ]]; then echo "$claim"; fi
            done
        done
    for dir in "$@"; do
        kubectl get -n "$ns" -f "$dir" --ignore-not-found -o jsonpath='{range .items[?(@.kind=="PersistentVolumeClaim")]}{.metadata.name}{"\n"}{end}'
    done
}

# Nothing of the lab may be there already: applying would take over someone's objects, and
# deleting the lab afterwards would delete them (a leftover PVC would also hand the lab old data).
lab_absent() { # lab_absent <namespace> <dir>...
    local ns=$1 present dir
    shift
    present=$(
        for dir in "$@"; do kubectl get -n "$ns" -f "$dir" --ignore-not-found -o name; done
        lab_claims "$ns" "$@" | sed 's|^|persistentvolumeclaim/|'
    )
    [ -z "$present" ] || {
        echo "$ns already holds the lab's $(echo "$present" | paste -sd ' '): delete them first, or run the lab elsewhere"
        return 1
    }
}

# Delete a lab that shares the namespace: its objects (last folder first), then the PVCs its
# StatefulSets left, then wait until their volumes are gone and the namespace holds what it held
# before the lab (<before>: namespace_contents then).
delete_shared_lab() { # delete_shared_lab <namespace> <before> <dir>...
    local ns=$1 before=$2 claims volumes claim volume i now="" left=""
    shift 2
    claims=$(lab_claims "$ns" "$@" | sort -u)
    volumes=$(for claim in $claims; do
        kubectl get pvc -n "$ns" "$claim" --ignore-not-found -o jsonpath='{.spec.volumeName}{"\n"}'
    done)
    for ((i = $#; i >= 1; i--)); do
        kubectl delete -n "$ns" -f "${!i}" --ignore-not-found --wait=true --timeout=180s >/dev/null
    done
    # shellcheck disable=SC2086 # one word per claim
    [ -z "$claims" ] || kubectl delete pvc -n "$ns" $claims --ignore-not-found --wait=true --timeout=180s >/dev/null
    for i in $(seq 1 90); do
        left=""
        for volume in $volumes; do
            [ -z "$(kubectl get pv "$volume" --ignore-not-found -o name)" ] || left="$left $volume"
        done
        now=$(namespace_contents "$ns")
        [ -z "$left" ] && [ "$now" = "$before" ] && return 0
        sleep 2
    done
    [ -z "$left" ] || echo "volumes left behind:$left"
    [ "$now" = "$before" ] || echo "$ns is not as the lab found it: $(diff <(echo "$before") <(echo "$now") | grep '^[<>]' | tr '\n' ' ')"
    return 1
}

# Delete a lab that has a namespace of its own (seed 003's task-05, the Helm release's): the
# namespace and its PVCs, and wait until their volumes are gone.
delete_namespaced_lab() { # delete_namespaced_lab <dir or /dev/null> <namespace>
    local dir=$1 ns=$2 i left
    [ "$dir" = /dev/null ] || kubectl delete -f "$dir" --ignore-not-found --wait=true --timeout=180s >/dev/null
    kubectl delete pvc --all -n "$ns" --ignore-not-found --wait=true --timeout=120s >/dev/null 2>&1 || true
    kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=180s >/dev/null
    for i in $(seq 1 60); do
        left=$(kubectl get pv -o jsonpath='{range .items[*]}{.spec.claimRef.namespace}{" "}{.metadata.name}{"\n"}{end}' |
            awk -v ns="$ns" '$1 == ns {print $2}')
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

# statelab verify, the grader of docs/verify.md, on the lab just deployed. Full marks unless
# an expected score is given (a broken variant must lose exactly its points); the JSON report
# is kept in $VERIFY_REPORTS and the score table printed.
verify_lab() { # verify_lab <verify lab> <namespace> [expected score]
    local lab=$1 ns=$2 want=${3:-} report score max
    # Numbered in run order: a lab may be graded more than once (the chart, the variants).
    report=$VERIFY_REPORTS/$(printf '%02d' "$(wc -l <"$VERIFY_REPORTS/scores")")-$lab-$ns${want:+-expect-$want}.json
    "$VERIFY_BIN" verify "$lab" -n "$ns" --json >"$report" 2>"$report.err" || true
    # "score max" on stdout; the checks on stderr; one line for the summary in scores.
    read -r score max < <(python3 - "$report" "$VERIFY_REPORTS/scores" "${want:+  (broken variant: expected $want)}" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for lab in report["labs"]:
    summary = "{:<20} {:<9} {:>3}/{:<3} {:>5.0f} s".format(
        lab["lab"], lab["namespace"], lab["score"], lab["max"], lab["seconds"])
    with open(sys.argv[2], "a") as scores:
        print(summary + sys.argv[3], file=scores)
    print("      verify " + summary, file=sys.stderr)
    for c in lab["checks"]:
        mark = "PASS" if c["passed"] else "FAIL"
        print(f'        {mark} {c["points"]:>3}/{c["max"]:<3} {c["name"]}: {c["detail"][:160]}', file=sys.stderr)
print(report["score"], report["max"])
PY
    ) || {
        echo "statelab verify $lab -n $ns gave no report: $(tail -3 "$report.err")"
        return 1
    }
    if [ "$score" != "${want:-$max}" ]; then
        echo "statelab verify $lab: $score/$max, expected ${want:-$max}"
        return 1
    fi
}

# and_verify <verify lab> <namespace> <smoke command...>: the smoke checks, then the grader.
and_verify() {
    local lab=$1 ns=$2
    shift 2
    "$@" || return 1
    verify_lab "$lab" "$ns"
}

# The exercise folder of the cache lab with every TODO answered from seed 001's hints
# ("serviceName: redis-headless", "replicas: 2 (or your choice)", "Volume/template name:
# redis-storage", "Access mode: ReadWriteOnce", "Storage: 500Mi or 1Gi", REDIS_HOST "the
# stable DNS name of redis-0"), beside the lab's NetworkPolicies; prints the folder.
cache_exercise_filled() {
    local src=$ROOT/deploy/k8s/cache/exercise out
    out=$(mktemp -d)
    sed -e 's|: # TODO: the app label of every cache API object|: cache-api|' \
        -e 's|: # TODO: how many API pods?.*|: 2|' \
        -e 's|: # TODO: must match the pod template.s label|: cache-api|' \
        -e 's|: # TODO: the label the Service selects|: cache-api|' \
        -e 's|: # TODO: REDIS_HOST:.*|: redis-0.redis-headless|' \
        -e 's|: # TODO: send traffic to the cache API pods|: cache-api|' \
        "$src/cache-api-deployment.yaml" >"$out/cache-api-deployment.yaml"
    sed -e 's|: # TODO: the app label of every Redis object|: redis|' \
        -e 's|: # TODO: which value makes this Service headless?|: None|' \
        -e 's|: # TODO: select the pods of the Redis StatefulSet|: redis|' \
        "$src/redis-headless.yaml" >"$out/redis-headless.yaml"
    sed -e 's|: # TODO: the app label of every Redis object|: redis|' \
        -e 's|: # TODO: the headless Service that gives each pod its DNS name|: redis-headless|' \
        -e 's|: # TODO: how many Redis pods?|: 2|' \
        -e 's|: # TODO: must match the pod template.s label|: redis|' \
        -e 's|: # TODO: the label the headless Service selects|: redis|' \
        -e 's|: # TODO: the volumeClaimTemplate.s name|: redis-storage|' \
        -e 's|: # TODO: becomes part of every PVC name|: redis-storage|' \
        -e 's|: # TODO: one pod writes to each volume|: ["ReadWriteOnce"]|' \
        -e 's|: # TODO: how much disk for each Redis pod?|: 1Gi|' \
        "$src/redis-statefulset.yaml" >"$out/redis-statefulset.yaml"
    cp "$ROOT/deploy/k8s/cache/networkpolicy.yaml" "$out/"
    if grep -n '# TODO:' "$out"/*.yaml >&2; then
        echo "the exercise has a TODO the seed's hints do not answer" >&2
        return 1
    fi
    echo "$out"
}

# Broken variants of seed 003's counter, generated from deploy/k8s/counter/: each must cost
# exactly the points of its mistake in statelab verify (a grader that cannot fail is none).
counter_variant() { # counter_variant emptydir|no-headless: prints the folder
    local src=$ROOT/deploy/k8s/counter out
    out=$(mktemp -d)
    cp "$src/01-namespace.yaml" "$out/"
    case "$1" in
    no-headless) # the headless Service left out
        cp "$src/03-statefulset.yaml" "$out/" ;;
    emptydir) # the StatefulSet's volumeClaimTemplates turned into emptyDir volumes
        cp "$src/02-service.yaml" "$out/"
        kubectl apply --dry-run=client -o json -f "$src/03-statefulset.yaml" | python3 -c '
import json, sys
objects = json.load(sys.stdin)
objects = objects["items"] if objects.get("kind") == "List" else [objects]
for o in objects:
    if o["kind"] == "StatefulSet":
        templates = o["spec"].pop("volumeClaimTemplates")
        volumes = o["spec"]["template"]["spec"].setdefault("volumes", [])
        volumes += [{"name": t["metadata"]["name"], "emptyDir": {}} for t in templates]
json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, sys.stdout)' >"$out/03-statefulset.json" ;;
    esac
    echo "$out"
}

run_counter_variant() { # run_counter_variant <variant> <expected score>
    local dir status=0
    dir=$(counter_variant "$1")
    run_namespaced_lab "$dir" verify_lab counter task-05 "$2" || status=1
    rm -rf "$dir"
    return "$status"
}

run_cache_exercise() {
    local dir status=0
    dir=$(cache_exercise_filled) || return 1
    run_shared_lab and_verify cache "$LAB_NS" smoke_cache -- "$dir" || status=1
    rm -rf "$dir"
    return "$status"
}

# A lab without a namespace of its own, in the labs' namespace: its folders applied in order (as
# the docs apply them), its workloads waited on, checked by the smoke command, then deleted.
run_shared_lab() { # run_shared_lab <smoke command...> -- <dir>...
    local ns=$LAB_NS smoke=() before dir status=0
    while [ "$1" != -- ]; do
        smoke+=("$1")
        shift
    done
    shift
    lab_absent "$ns" "$@" || return 1
    before=$(namespace_contents "$ns")
    for dir in "$@"; do
        kubectl apply -n "$ns" -f "$dir" >/dev/null || {
            echo "kubectl apply -n $ns -f $dir failed"
            status=1
            break
        }
    done
    [ "$status" = 1 ] || wait_workloads "$ns" "$@" || status=1
    [ "$status" = 1 ] || "${smoke[@]}" || status=1
    [ "$status" = 0 ] || diagnose "$ns"
    delete_shared_lab "$ns" "$before" "$@" || status=1
    return "$status"
}

run_namespaced_lab() { # run_namespaced_lab <dir> <check command...>: the manifests name the namespace
    local dir=$1 ns status=0
    shift
    ns=$(kubectl apply --dry-run=client -f "$dir" -o jsonpath='{range .items[*]}{.metadata.namespace}{"\n"}{end}' | grep -v '^$' | sort -u)
    if ! kubectl apply -f "$dir" >/dev/null; then
        echo "kubectl apply -f $dir failed"
        status=1
    fi
    [ "$status" = 1 ] || wait_workloads "$ns" || status=1
    [ "$status" = 1 ] || "$@" || status=1
    [ "$status" = 0 ] || diagnose "$ns"
    delete_namespaced_lab "$dir" "$ns" || status=1
    return "$status"
}

# The queue on its Redis backend, as docs/queue.md switches it: once the API and the workers run
# on PostgreSQL, QUEUE_BACKEND=redis and a restart.
switch_queue_to_redis() {
    kubectl patch configmap queue-config -n "$LAB_NS" --type merge -p '{"data":{"QUEUE_BACKEND":"redis"}}' >/dev/null
    kubectl rollout restart -n "$LAB_NS" deployment/queue-api deployment/queue-worker >/dev/null
    wait_workloads "$LAB_NS" "$ROOT/deploy/k8s/queue/" "$ROOT/deploy/k8s/queue/redis-backend/" && smoke_queue redis &&
        verify_lab queue "$LAB_NS"
}

run_helm_counter() { # seed 002's chart, installed, tested, graded and upgraded by real Helm (docs/counter.md)
    local ns=counter chart=$ROOT/deploy/helm/counter status=0
    kubectl create namespace "$ns" >/dev/null
    kubectl create secret generic counter-secrets -n "$ns" --from-literal=MY_PASS='change-me' >/dev/null
    if ! helm install counter "$chart" -n "$ns" --set secrets.existingSecret=counter-secrets --wait --timeout 5m; then
        echo "helm install failed"
        status=1
    elif ! helm test counter -n "$ns"; then
        echo "helm test failed"
        status=1
    elif ! verify_lab chart "$ns"; then # OrderedReady, the chart's default
        status=1
    elif ! helm upgrade counter "$chart" -n "$ns" --reuse-values --set updateStrategy.partition=1 \
        --set-string podAnnotations.rollout=canary --wait --timeout 5m; then
        echo "helm upgrade (canary partition) failed"
        status=1
    elif ! wait_workloads "$ns"; then
        status=1
    # podManagementPolicy cannot change on a StatefulSet: a second release shows Parallel.
    elif ! helm uninstall counter -n "$ns" --wait >/dev/null; then
        echo "helm uninstall failed"
        status=1
    elif ! helm install counter "$chart" -n "$ns" --set secrets.existingSecret=counter-secrets \
        --set podManagementPolicy=Parallel --wait --timeout 5m >/dev/null; then
        echo "helm install (Parallel) failed"
        status=1
    elif ! helm test counter -n "$ns" >/dev/null; then
        echo "helm test (Parallel) failed"
        status=1
    elif ! verify_lab chart "$ns"; then
        status=1
    fi
    [ "$status" = 0 ] || diagnose "$ns"
    helm uninstall counter -n "$ns" --wait >/dev/null 2>&1 || true
    delete_namespaced_lab /dev/null "$ns" >/dev/null || status=1
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
    run_shared_lab and_verify guestbook "$LAB_NS" smoke_guestbook "$LAB_NS" stateful-app-service -- "$ROOT/deploy/k8s/guestbook/" || status=$?
    # What the lab made on the node goes with it, passed or not.
    [ -z "$created" ] || rm -rf "$created"
    return "$status"
}

run_lab() {
    local k8s=$ROOT/deploy/k8s
    case "$1" in
    guestbook) run_guestbook ;;
    guestbook-postgres) run_shared_lab and_verify guestbook-postgres "$LAB_NS" smoke_guestbook "$LAB_NS" guestbook -- "$k8s/guestbook-postgres/" ;;
    users) run_shared_lab and_verify users "$LAB_NS" smoke_users -- "$k8s/users/" ;;
    cache) run_shared_lab and_verify cache "$LAB_NS" smoke_cache -- "$k8s/cache/" ;;
    cache-exercise) run_cache_exercise ;;
    queue) run_shared_lab and_verify queue "$LAB_NS" smoke_queue -- "$k8s/queue/" ;;
    queue-redis) run_shared_lab switch_queue_to_redis -- "$k8s/queue/" "$k8s/queue/redis-backend/" ;;
    counter) run_namespaced_lab "$k8s/counter/" and_verify counter task-05 smoke_counter ;;
    counter-emptydir) run_counter_variant emptydir 95 ;;  # loses "Volume claim templates" (5)
    counter-no-headless) run_counter_variant no-headless 90 ;; # loses "Headless service exists" (10)
    visits) run_shared_lab and_verify visits "$LAB_NS" smoke_visits -- "$k8s/visits/" ;;
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
if [ -s "$VERIFY_REPORTS/scores" ]; then
    echo "statelab verify (reports in $VERIFY_REPORTS):"
    sed 's/^/  /' "$VERIFY_REPORTS/scores"
fi
echo "e2e: ${passed}/${#labs[@]} labs passed${failed:+; failed: ${failed[*]}} (cluster: $([ "$own_cluster" = 1 ] && echo "scripts/cluster.sh" || echo "$KUBECONFIG"))"
[ ${#failed[@]} -eq 0 ]
