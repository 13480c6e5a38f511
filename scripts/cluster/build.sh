# `scripts/cluster.sh build`: every binary the cluster runs, from upstream sources, cached in
# $BIN_DIR and rebuilt only when its pinned version (or the recipe) changes.
# shellcheck shell=bash

GO_SRC_DIR=$CACHE_ROOT/src

# A component is current when its stamp holds the same pinned version (and, for CoreDNS, the
# same plugin list): editing these scripts does not rebuild Kubernetes.
file_hash() { sha256sum "$@" | cut -c1-16; }
is_built() { [ "$(cat "$BIN_DIR/.stamp-$1" 2>/dev/null)" = "$2" ]; }
mark_built() { echo "$2" >"$BIN_DIR/.stamp-$1"; }

# go_wrapper <name> <module@version>... : a throwaway module that requires the upstream modules,
# so `go build` resolves them the way their own releases are consumed (their go.mod replace
# directives only apply inside their own repositories).
go_wrapper() {
    local name=$1 dir=$GO_SRC_DIR/$1
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir"
        go mod init "statelab.local/$name" >/dev/null 2>&1
        for req in "$@"; do
            go mod edit -require="$req"
        done
    )
    echo "$dir"
}

go_tidy_and_build() { # <dir> <output file, or $BIN_DIR/ for several> <ldflags> <package>...
    local dir=$1 out=$2 ldflags=$3
    shift 3
    (
        cd "$dir"
        GOFLAGS=-mod=mod go mod tidy
        CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$@"
    )
}

tools_file() { # tools_file <dir> <import>...: imports that make `go mod tidy` keep the commands' packages
    {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        shift
        printf '\t_ "%s"\n' "$@"
        printf ')\n'
    } >"$1/tools.go"
}

build_kubernetes() {
    local stamp
    stamp="$KUBERNETES_VERSION"
    is_built kubernetes "$stamp" && return 0
    log "building Kubernetes $KUBERNETES_VERSION (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl)"
    local dir upstream_mod staging cmds=() c
    dir=$(go_wrapper kubernetes "k8s.io/kubernetes@$KUBERNETES_VERSION")
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    # ./staging/...; point each at its published release instead.
    upstream_mod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    for staging in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$upstream_mod"); do
        (cd "$dir" && go mod edit -replace="$staging=$staging@$KUBERNETES_STAGING_VERSION")
    done
    for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
        cmds+=("k8s.io/kubernetes/cmd/$c")
    done
    tools_file "$dir" "${cmds[@]}"
    local minor=${KUBERNETES_VERSION#v1.}
    minor=${minor%%.*}
    local v ldflags=""
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    done
    go_tidy_and_build "$dir" "$BIN_DIR/" "$ldflags" "${cmds[@]}"
    mark_built kubernetes "$stamp"
}

# build_go_command <name> <module> <version> <package> [ldflags] [what]: one command from an
# upstream module, into $BIN_DIR/<name>, stamped with its version.
build_go_command() {
    local name=$1 module=$2 version=$3 package=$4 ldflags=${5:-} what=${6:-} dir
    is_built "$name" "$version" && return 0
    log "building $name $version${what:+ ($what)}"
    dir=$(go_wrapper "$name" "$module@$version")
    tools_file "$dir" "$package"
    go_tidy_and_build "$dir" "$BIN_DIR/$name" "$ldflags" "$package"
    mark_built "$name" "$version"
}

build_etcd() {
    build_go_command etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
}

build_coredns() {
    local stamp="$COREDNS_VERSION $(file_hash "$CLUSTER_SRC/go/coredns/main.go")" dir
    is_built coredns "$stamp" && return 0
    log "building CoreDNS $COREDNS_VERSION (cluster.local plugins only)"
    dir=$(go_wrapper coredns "github.com/coredns/coredns@$COREDNS_VERSION")
    cp "$CLUSTER_SRC/go/coredns/main.go" "$dir/"
    (cd "$dir" && go mod edit -module=statelab.local/coredns)
    go_tidy_and_build "$dir" "$BIN_DIR/coredns" "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" .
    mark_built coredns "$stamp"
}

build_helm() {
    build_go_command helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

build_local_path_provisioner() {
    build_go_command local-path-provisioner github.com/rancher/local-path-provisioner \
        "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner \
        "-X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION"
}

build_kube_router() {
    build_go_command kube-router github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION" \
        github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
        "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
        "used for its NetworkPolicy firewall only"
}

build_crane() {
    build_go_command crane github.com/google/go-containerregistry "$GGCR_VERSION" \
        github.com/google/go-containerregistry/cmd/crane "" "image assembly and the loopback registry"
}

build_crictl() {
    build_go_command crictl sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

# The pod sandbox: Kubernetes' own pause.c, as its build/pause Makefile compiles it.
build_pause() {
    local stamp="$PAUSE_VERSION $KUBERNETES_VERSION" src
    is_built pause "$stamp" && return 0
    log "building pause $PAUSE_VERSION from Kubernetes' build/pause/linux/pause.c"
    src=$(cd "$GO_SRC_DIR/kubernetes" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-statelab" -o "$BIN_DIR/pause" "$src/build/pause/linux/pause.c"
    strip "$BIN_DIR/pause"
    mark_built pause "$stamp"
}

cluster_build() {
    command -v go >/dev/null || die "Go is needed to build the cluster (https://go.dev/dl/)"
    command -v gcc >/dev/null || die "gcc is needed to build the pause binary"
    mkdir -p "$BIN_DIR" "$GO_SRC_DIR"
    build_kubernetes
    build_etcd
    build_crane
    build_crictl
    build_pause
    build_coredns
    build_local_path_provisioner
    build_kube_router
    build_helm
    log "built: $BIN_DIR"
}
