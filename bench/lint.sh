#!/usr/bin/env bash
# statelab lint on large generated inputs: wall time and peak memory, at several sizes, to show
# that the run grows linearly with the number of objects.
#
# Each input holds N StatefulSets whose serviceName names no Service, and N Services that
# select nothing (the case where resolving serviceName used to scan every Service for every
# StatefulSet), with NetworkPolicies and PodDisruptionBudgets every 100 objects. At the largest
# default size that is 20,000 objects in about 20 MB of YAML, in one file.
#
#   bench/lint.sh
#   SIZES="2500 5000 10000" ROUNDS=3 bench/lint.sh
#   BASELINE_BIN=/path/to/older/statelab bench/lint.sh     # an older build, measured alongside
#
# Environment: SIZES (values of N, default "2500 5000 10000"), ROUNDS (runs per size, the
# fastest is shown, default 3), STATELAB_BIN (the binary; STATELAB and BIN are read too;
# unset, it runs cargo build --release and uses target/release/statelab), BASELINE_BIN.
# Needs: GNU time (Debian: time), awk (installed with apt-get when run as root; see
# bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

SIZES=${SIZES:-2500 5000 10000}
ROUNDS=${ROUNDS:-3}
need_tool /usr/bin/time time
need_tool awk gawk
need_statelab
WORK=$BENCH_WORK

# generate N FILE: N StatefulSets and N Services (plus policies and budgets) in one stream.
generate() {
    awk -v n="$1" 'BEGIN {
        for (i = 0; i < n; i++) {
            printf "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db-%d\n  labels:\n    app: db-%d\n    tier: data\nspec:\n  serviceName: db-%d-headless\n  replicas: 3\n  selector:\n    matchLabels:\n      app: db-%d\n  template:\n    metadata:\n      labels:\n        app: db-%d\n        tier: data\n    spec:\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 999\n        fsGroup: 999\n        seccompProfile:\n          type: RuntimeDefault\n      containers:\n        - name: postgres\n          image: postgres:16.4\n          env:\n            - name: PGDATA\n              value: /var/lib/postgresql/data/pgdata\n            - name: POSTGRES_DB\n              value: app%d\n          ports:\n            - containerPort: 5432\n              name: postgres\n          readinessProbe:\n            exec:\n              command: [\"pg_isready\", \"-U\", \"postgres\"]\n          livenessProbe:\n            tcpSocket:\n              port: 5432\n          resources:\n            requests: {cpu: 100m, memory: 256Mi}\n            limits: {memory: 512Mi}\n          securityContext:\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts:\n            - name: data\n              mountPath: /var/lib/postgresql/data\n            - name: run\n              mountPath: /var/run/postgresql\n      volumes:\n        - name: run\n          emptyDir: {}\n  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Retain\n    whenScaled: Retain\n  volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        accessModes: [\"ReadWriteOnce\"]\n        resources:\n          requests:\n            storage: 1Gi\n", i, i, i, i, i, i
            printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api-%d\n  labels:\n    app: api-%d\n    part-of: shop-%d\nspec:\n  selector:\n    app: api-%d\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n      protocol: TCP\n    - name: metrics\n      port: 9090\n      targetPort: 9090\n      protocol: TCP\n", i, i, i, i
            if (i % 100 == 0) {
                printf "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: db-%d\nspec:\n  podSelector:\n    matchLabels:\n      app: db-%d\n  policyTypes: [Ingress]\n", i, i
                printf "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: db-%d\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app: db-%d\n", i, i
            }
        }
    }' >"$2"
}

# measure BIN FILE: "seconds peak_MiB findings" of the fastest of ROUNDS runs.
measure() {
    local bin=$1 file=$2 best="" round out rc
    for round in $(seq "$ROUNDS"); do
        out=$WORK/out.$round
        rc=0
        /usr/bin/time -f "%e %M" -o "$out.time" "$bin" lint "$file" >"$out" 2>"$out.err" || rc=$?
        # 1 only says that errors were found, which this input has by design.
        [ "$rc" -le 1 ] || { cat "$out.err" >&2; die "statelab lint exited $rc"; }
        local line
        line=$(awk -v f="$(tail -n 1 "$out" | awk '{ print $1 + $3 + $5 }')" \
            '{ printf "%s %.1f %d\n", $1, $2 / 1024, f }' "$out.time")
        if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
            best=$line
        fi
    done
    echo "$best"
}

echo "statelab lint, one generated file per size, fastest of $ROUNDS runs ($(nproc) CPUs):"
printf '\n%-7s %-8s %-7s %-10s %-9s %-10s %-11s' N objects MB findings seconds "peak MiB" "µs/object"
[ -n "${BASELINE_BIN:-}" ] && printf ' %-12s %-14s %-10s' "base s" "base peak MiB" "speed-up"
echo
for n in $SIZES; do
    file=$WORK/lint-$n.yaml
    generate "$n" "$file"
    objects=$(grep -c '^kind: ' "$file")
    mb=$(awk -v b="$(stat -c %s "$file")" 'BEGIN { printf "%.1f", b / 1e6 }')
    read -r secs peak found < <(measure "$STATELAB_BIN" "$file")
    per=$(awk -v s="$secs" -v o="$objects" 'BEGIN { printf "%.1f", s * 1e6 / o }')
    printf '%-7s %-8s %-7s %-10s %-9s %-10s %-11s' "$n" "$objects" "$mb" "$found" "$secs" "$peak" "$per"
    if [ -n "${BASELINE_BIN:-}" ]; then
        read -r bsecs bpeak _ < <(measure "$BASELINE_BIN" "$file")
        printf ' %-12s %-14s %-10s' "$bsecs" "$bpeak" "$(ratio "$bsecs" "$secs" 1)x"
    fi
    echo
    rm -f "$file"
done
echo
echo "Linear: µs/object stays flat as N doubles. peak MiB is the resident high-water mark (VmHWM)."
