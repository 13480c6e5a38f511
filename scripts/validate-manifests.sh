#!/usr/bin/env bash
# Offline checks of every Kubernetes manifest: strict schema validation for a pinned
# Kubernetes version. Exercise folders (unfinished on purpose) are left out.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    python3 -m pip install --quiet kubernetes-validate
fi

mapfile -t manifests < <(find deploy/k8s -type f \( -name '*.yaml' -o -name '*.yml' \) -not -path '*/exercise/*' | sort)
echo "validating ${#manifests[@]} manifests against Kubernetes ${KUBERNETES_VERSION} (strict)"
kubernetes-validate --strict --quiet -k "${KUBERNETES_VERSION}" "${manifests[@]}"

# Helm charts render offline and their output passes the same validation.
if [ -x scripts/check-helm.sh ]; then
    scripts/check-helm.sh
fi
echo "manifests: all valid"
