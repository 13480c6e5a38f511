# The machine packages the cluster needs, from the system's package manager; only what is
# missing is installed.
# shellcheck shell=bash

install_prereqs() {
    local missing=() pair
    for pair in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
        iptables:iptables ip6tables:iptables conntrack:conntrack ipset:ipset nft:nftables \
        busybox:busybox-static redis-server:redis-server openssl:openssl curl:curl ip:iproute2 \
        findmnt:util-linux; do
        local what=${pair%%:*} package=${pair#*:}
        if [[ $what == /* ]]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null && continue; fi
        missing+=("$package")
    done
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (install them with your package manager)"
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
