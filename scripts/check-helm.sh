#!/usr/bin/env bash
# Renders and lints deploy/helm/counter offline (PyPI helm-python-sdk: Helm's own Go library,
# no helm binary, no cluster), then validates every rendered object with
# `kubernetes-validate --strict` against a pinned Kubernetes version. Installs the two PyPI
# packages into a private virtualenv only when they are not already importable/installed.
#
#   scripts/check-helm.sh            # the chart under deploy/helm/counter
#   scripts/check-helm.sh CHART_DIR  # another chart
set -euo pipefail

cd "$(dirname "$0")/.."
CHART="${1:-deploy/helm/counter}"
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"
HELM_SDK="helm-python-sdk==0.2.2"
VALIDATE="kubernetes-validate==1.37.0"
VENV="${STATELAB_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/statelab/tools-venv}"

PYTHON=python3
VALIDATOR=kubernetes-validate
if ! python3 -c 'import helm_python' 2>/dev/null || ! command -v kubernetes-validate >/dev/null; then
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating $VENV for helm-python-sdk and kubernetes-validate"
        python3 -m venv "$VENV"
    fi
    PYTHON="$VENV/bin/python"
    VALIDATOR="$VENV/bin/kubernetes-validate"
    "$PYTHON" -c 'import helm_python' 2>/dev/null || "$VENV/bin/pip" install --quiet "$HELM_SDK"
    [ -x "$VALIDATOR" ] || "$VENV/bin/pip" install --quiet "$VALIDATE"
fi
"$PYTHON" -c 'import yaml' 2>/dev/null || "$PYTHON" -m pip install --quiet pyyaml

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# Render the defaults and a variant that exercises every switch, lint, and write each object
# to its own file; the Python also checks what schema validation cannot.
"$PYTHON" - "$CHART" "$OUT" "$KUBE_VERSION" <<'PY'
import json
import pathlib
import sys

import helm_python as helm
import yaml

chart_dir, out, kube_version = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
failures = []

report = helm.lint(chart_dir, strict=True, kube_version=f"v{kube_version}")
for message in report["messages"]:
    print(f"lint: severity {message['severity']}: {message['path']}: {message['error']}")
    if message["severity"] >= 2:
        failures.append(f"lint: {message['error']}")
for error in report.get("errors") or []:
    failures.append(f"lint: {error}")

variants = {
    "defaults": {},
    "variant": {
        "replicaCount": 3,
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "OnDelete"},
        "storage": {"size": "100Mi", "storageClass": "standard"},
        "secrets": {"existingSecret": "counter-secrets", "myPassKey": "MY_PASS"},
        "service": {"port": 9000},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "counter.example", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"hosts": ["counter.example"], "secretName": "counter-tls"}],
        },
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
    },
    "canary": {"updateStrategy": {"type": "RollingUpdate", "partition": 1}},
}
chart = helm.Chart.load(chart_dir)
count = 0
for variant, values in variants.items():
    rendered = chart.render(values, name="counter", namespace="counter", is_install=True)
    objects = []
    for template, text in sorted(rendered.items()):
        if not template.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template, doc))
    for i, (template, doc) in enumerate(objects):
        name = f"{variant}-{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        (out / name).write_text(yaml.safe_dump(doc))
        count += 1

    by_kind = {}
    for _, doc in objects:
        by_kind.setdefault(doc["kind"], []).append(doc)
    sts = by_kind["StatefulSet"][0]
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    governing = services.get(sts["spec"]["serviceName"])
    if governing is None or governing["spec"].get("clusterIP") != "None":
        failures.append(f"{variant}: serviceName {sts['spec']['serviceName']} is not a rendered headless Service")
    pod = sts["spec"]["template"]["spec"]
    configmaps = {c["metadata"]["name"] for c in by_kind["ConfigMap"]}
    for volume in pod.get("volumes", []):
        if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
            failures.append(f"{variant}: volume {volume['name']} names a ConfigMap that is not rendered")
    claims = [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]]
    if claims != ["counter-data"]:
        failures.append(f"{variant}: volumeClaimTemplates are {claims}, expected counter-data")
    for config in by_kind["ConfigMap"]:
        json.loads(config["data"]["config.json"])
    for _, doc in objects:
        spec = doc["spec"]["template"]["spec"] if doc["kind"] == "StatefulSet" else doc.get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            image = container["image"]
            if image.endswith(":latest") or ":" not in image:
                failures.append(f"{variant}: unpinned image {image}")
    probe_paths = {c["readinessProbe"]["httpGet"]["path"] for c in pod["containers"]}
    if probe_paths != {"/ready"}:
        failures.append(f"{variant}: readiness probe paths {probe_paths}")
    hooks = [d for _, d in objects if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    print(f"{variant}: {len(objects)} objects, {len(hooks)} hooks/tests")

print(f"rendered {count} objects")
if failures:
    print("\n".join(failures))
    sys.exit(1)
PY

"$VALIDATOR" --strict -k "$KUBE_VERSION" "$OUT"/*.yaml >"$OUT/validate.log" 2>&1 || {
    cat "$OUT/validate.log"
    echo "check-helm: strict schema validation failed"
    exit 1
}
echo "check-helm: $(grep -c passed "$OUT/validate.log") objects passed kubernetes-validate --strict (Kubernetes $KUBE_VERSION)"
