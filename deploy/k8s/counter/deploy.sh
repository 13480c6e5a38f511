#!/usr/bin/env bash
# Seed 003 (task-05): apply the namespace, the headless Service and the StatefulSet in order,
# then wait for both replicas to be ready. Build the image first: docker build -t statelab:0.1.0 .
set -euo pipefail
cd "$(dirname "$0")"

kubectl apply -f 01-namespace.yaml
kubectl apply -f 02-service.yaml
kubectl apply -f 03-statefulset.yaml

echo "Waiting for counter-app-0 and counter-app-1 to be ready..."
kubectl rollout status statefulset/counter-app -n task-05 --timeout=180s
kubectl get all,pvc -n task-05
