# Pinned versions of everything scripts/cluster.sh builds. Changing one rebuilds that part only.
KUBERNETES_VERSION=v1.34.4
KUBERNETES_STAGING_VERSION=v0.34.4 # k8s.io/api, k8s.io/client-go, ... published for that release
ETCD_VERSION=v3.6.16
COREDNS_VERSION=v1.12.4
HELM_VERSION=v3.19.5
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
KUBE_ROUTER_VERSION=v2.1.0
GGCR_VERSION=v0.22.1 # go-containerregistry: crane (image assembly) and its registry
PAUSE_VERSION=3.10.1 # built from Kubernetes' own build/pause/linux/pause.c
CRI_TOOLS_VERSION=v1.34.0 # crictl: `down` removes every pod through the CRI, as kubelet would
