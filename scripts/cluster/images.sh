# Images, assembled from files on this machine (no image is ever pulled) and pushed to the
# loopback registry under the exact names the manifests and the seeds use:
#   - the cluster's own: pause, CoreDNS, local-path-provisioner (our builds of upstream code);
#   - statelab:0.1.0 from the project's binary, with busybox and curl for `kubectl exec`;
#   - stand-ins for the official postgres/redis/busybox/curl images, from Debian's packages,
#     whose entrypoints honour the contract the manifests rely on (docs/cluster.md says which).
# shellcheck shell=bash

IMAGE_WORK=$STATE_DIR/image-build
STATELAB_IMAGE=statelab:0.1.0
# Every tag the labs and the seeds name for each backend; one build serves them all.
POSTGRES_TAGS=(postgres:17.6)
REDIS_TAGS=(redis:7.4.7-alpine)
BUSYBOX_TAGS=(busybox:latest busybox:1.36 busybox:1.37)
CURL_TAGS=(curlimages/curl:latest curlimages/curl:8.11.1)

crane() { "$BIN_DIR/crane" "$@"; }

# docker.io/library/busybox:latest -> 127.0.0.1:5055/library/busybox:latest; containerd maps
# every registry name to this one registry (hosts.toml), keeping the path.
registry_ref() {
    local ref=$1 host=docker.io path=$1 first=${1%%/*}
    # A first component with a dot or a colon (or "localhost") names a registry.
    if [[ $ref == */* ]] && [[ $first == *.* || $first == *:* || $first == localhost ]]; then
        host=$first
        path=${ref#*/}
    fi
    # Docker Hub's official images live under library/, as containerd asks for them.
    if [[ $host == docker.io && $path != */* ]]; then
        path=library/$path
    fi
    echo "$REGISTRY_ADDR/$path"
}

rootfs_new() { # rootfs_new <dir>: an empty tree with /etc/passwd, /etc/group and a /tmp
    local root=$1
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,tmp,usr/bin,usr/lib,usr/local/bin,var/run,proc,sys,dev}
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
}

rootfs_user() { # rootfs_user <dir> <name> <uid> <gid> <home>
    echo "$2:x:$3:$4:$2:$5:/bin/sh" >>"$1/etc/passwd"
    grep -q ":$4:" "$1/etc/group" || echo "$2:x:$4:" >>"$1/etc/group"
}

# rootfs_add <dir> <path>...: files or directories at the same path, symlinks kept.
rootfs_add() {
    local root=$1 path rel=()
    shift
    for path in "$@"; do rel+=("${path#/}"); done
    tar -C / -cf - "${rel[@]}" | tar -C "$root" -xf -
}

# rootfs_add_libs <dir> <file>...: every shared library the programs load, at the same path.
rootfs_add_libs() {
    local root=$1 f lib
    shift
    for f in "$@"; do
        for lib in $(ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'); do
            [ -e "$root$lib" ] || cp -L --parents "$lib" "$root/"
        done
    done
}

# rootfs_add_binary <dir> <file>...: dynamically linked programs with every library they load.
rootfs_add_binary() {
    local root=$1 f
    shift
    for f in "$@"; do cp -L --parents "$f" "$root/"; done
    rootfs_add_libs "$root" "$@"
}

rootfs_add_busybox() { # sh, cat, nslookup, wget, ... as busybox applets in /bin
    local root=$1 applet
    command -v busybox >/dev/null || die "busybox-static is missing (apt-get install busybox-static)"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $(busybox --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
}

also_flags() { # also_flags <name:tag>...: --also for each
    local tag
    for tag in "$@"; do printf -- '--also %s ' "$tag"; done
}

# push_image <rootfs> <name:tag> [crane mutate flags...]: one layer from the tree, the image
# config from the flags, pushed under every name given with --also <name:tag>.
# --stop-signal SIG sets the image's StopSignal (crane mutate has no flag for it), which the
# kubelet sends instead of SIGTERM, as Dockerfile's STOPSIGNAL does.
push_image() {
    local root=$1 name=$2 tar also=() mutate=() ref other stop_signal=""
    shift 2
    while [ $# -gt 0 ]; do
        if [ "$1" = --also ]; then
            also+=("$2")
            shift 2
        elif [ "$1" = --stop-signal ]; then
            stop_signal=$2
            shift 2
        else
            mutate+=("$1")
            shift
        fi
    done
    tar=$IMAGE_WORK/$(echo "$name" | tr '/:' '__').tar
    tar -C "$root" --numeric-owner --sort=name --mtime=@0 -cf "$tar" .
    ref=$(registry_ref "$name")
    # crane reports every blob on stderr: kept in the log, shown only on failure.
    (
        crane append --platform linux/amd64 -f "$tar" -t "$ref" &&
            crane mutate "$ref" --set-platform linux/amd64 "${mutate[@]}" -t "$ref" &&
            if [ -n "$stop_signal" ]; then
                crane config "$ref" |
                    python3 -c 'import json, sys; c = json.load(sys.stdin); c["config"]["StopSignal"] = sys.argv[1]; json.dump(c, sys.stdout)' "$stop_signal" |
                    crane edit config "$ref" >/dev/null
            fi &&
            for other in "${also[@]}"; do crane copy "$ref" "$(registry_ref "$other")" || exit 1; done
    ) >>"$LOG_DIR/images.log" 2>&1 || die "pushing $name failed (see $LOG_DIR/images.log)"
    rm -f "$tar"
    log "image $name${also:+ (also ${also[*]})}"
}

build_system_images() {
    mkdir -p "$IMAGE_WORK"
    local root=$IMAGE_WORK/rootfs
    rootfs_new "$root"
    cp "$BIN_DIR/pause" "$root/pause"
    push_image "$root" "registry.k8s.io/pause:$PAUSE_VERSION" --entrypoint /pause --user 65535:65535

    rootfs_new "$root"
    cp "$BIN_DIR/coredns" "$root/coredns"
    push_image "$root" "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" --entrypoint /coredns --user 65532:65532

    rootfs_new "$root"
    cp "$BIN_DIR/local-path-provisioner" "$root/usr/bin/"
    push_image "$root" "docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION" \
        --entrypoint local-path-provisioner -e PATH=/usr/bin:/bin

    # busybox: the seeds' test pods and the provisioner's helper pods.
    rootfs_new "$root"
    rootfs_add_busybox "$root"
    push_image "$root" "${BUSYBOX_TAGS[0]}" --cmd sh -e PATH=/bin:/usr/bin \
        $(also_flags "${BUSYBOX_TAGS[@]:1}")
    rm -rf "$root"
}

statelab_binary() {
    if [ -n "${STATELAB_BIN:-}" ]; then
        [ -x "$STATELAB_BIN" ] || die "STATELAB_BIN=$STATELAB_BIN is not an executable"
        echo "$STATELAB_BIN"
        return
    fi
    log "building statelab (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release --locked >&2)
    echo "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/statelab"
}

# The node keeps the images it pulled: a rebuilt image under the same tag reaches pods only if
# the node's copy goes (manifests say IfNotPresent, as they should for pinned tags).
forget_node_images() {
    local image
    for image in "$@"; do
        "$BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" rmi "$image" >/dev/null 2>&1 || true
    done
}

build_lab_images() {
    mkdir -p "$IMAGE_WORK"
    local root=$IMAGE_WORK/rootfs bin
    bin=$(statelab_binary)

    # statelab: as the Dockerfile's image (UID 10001, /data, DATA_DIR), on busybox + curl.
    rootfs_new "$root"
    rootfs_add_busybox "$root"
    rootfs_add_binary "$root" /usr/bin/curl
    install -m 0755 "$bin" "$root/usr/local/bin/statelab"
    strip --strip-debug "$root/usr/local/bin/statelab" # a test build's debug info is most of its size
    rootfs_add_libs "$root" "$bin"
    rootfs_user "$root" statelab 10001 10001 /data
    mkdir -p "$root/data" && chown 10001:10001 "$root/data"
    push_image "$root" "$STATELAB_IMAGE" --entrypoint statelab --cmd guestbook --user 10001:10001 \
        -e PATH=/usr/local/bin:/usr/bin:/bin -e DATA_DIR=/data --exposed-ports 8000,8080

    # curlimages/curl: curl as the entrypoint, or any command given after it.
    rootfs_new "$root"
    rootfs_add_busybox "$root"
    rootfs_add_binary "$root" /usr/bin/curl
    rootfs_user "$root" curl_user 100 101 /home/curl_user
    install -m 0755 "$CLUSTER_SRC/images/curl-entrypoint.sh" "$root/entrypoint.sh"
    push_image "$root" "${CURL_TAGS[0]}" --entrypoint /entrypoint.sh --cmd curl --user 100:101 \
        -e PATH=/usr/bin:/bin $(also_flags "${CURL_TAGS[@]:1}")

    # postgres: Debian's PostgreSQL 15 under the pinned official name.
    local pgbin
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    rootfs_new "$root"
    rootfs_add_busybox "$root"
    rootfs_add "$root" "$(dirname "$pgbin")" "/usr/share/postgresql/$(basename "$(dirname "$pgbin")")" /usr/share/zoneinfo
    # Without the JIT (it would bring 130 MB of LLVM): PostgreSQL runs without it when absent.
    rm -rf "$root$(dirname "$pgbin")"/lib/llvmjit* "$root$(dirname "$pgbin")/lib/bitcode"
    rootfs_add_binary "$root" "$pgbin"/* $(ls "$(dirname "$pgbin")"/lib/*.so | grep -v /llvmjit)
    rootfs_add "$root" /usr/lib/locale/C.utf8
    rootfs_user "$root" postgres 999 999 /var/lib/postgresql
    mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/docker-entrypoint-initdb.d"
    chown -R 999:999 "$root/var/lib/postgresql" "$root/var/run/postgresql"
    chmod 3777 "$root/var/run/postgresql"
    install -m 0755 "$CLUSTER_SRC/images/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    # SIGINT, as the official image: PostgreSQL's fast shutdown. SIGTERM is its "smart" one,
    # which waits for every client to disconnect (pooled clients never do: the pod would take
    # its whole grace period to stop, then be killed and recover from its WAL).
    push_image "$root" "${POSTGRES_TAGS[0]}" --entrypoint docker-entrypoint.sh --cmd postgres --user 999:999 \
        --stop-signal SIGINT \
        -e "PATH=/usr/local/bin:$pgbin:/usr/bin:/bin" -e PGDATA=/var/lib/postgresql/data -e LANG=C.UTF-8 \
        --exposed-ports 5432 $(also_flags "${POSTGRES_TAGS[@]:1}")

    # redis: Debian's redis-server and redis-cli under the pinned official name.
    rootfs_new "$root"
    rootfs_add_busybox "$root"
    rootfs_add_binary "$root" /usr/bin/redis-server /usr/bin/redis-cli
    rootfs_user "$root" redis 999 1000 /data
    mkdir -p "$root/data" && chown 999:1000 "$root/data"
    install -m 0755 "$CLUSTER_SRC/images/redis-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    push_image "$root" "${REDIS_TAGS[0]}" --entrypoint docker-entrypoint.sh --cmd redis-server --workdir /data --user 999:1000 \
        -e PATH=/usr/local/bin:/usr/bin:/bin --exposed-ports 6379 $(also_flags "${REDIS_TAGS[@]:1}")
    rm -rf "$root"
    forget_node_images "$STATELAB_IMAGE" "${CURL_TAGS[@]}" "${POSTGRES_TAGS[@]}" "${REDIS_TAGS[@]}"
}
