# Certificates and kubeconfigs: one private CA for the cluster, a client certificate per
# component (its identity for RBAC and the Node authorizer), serving certificates that name
# exactly the addresses each server listens on. Made once; kept across up/down.
# shellcheck shell=bash

# cert <name> <subject> <extendedKeyUsage> [subjectAltName]
cert() {
    local name=$1 subject=$2 usage=$3 san=${4:-} ext
    [ -f "$PKI_DIR/$name.crt" ] && return 0
    ext=$(mktemp)
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [ -n "$san" ] && echo "subjectAltName=$san"
    } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI_DIR/$name.key" -subj "$subject" \
        -out "$PKI_DIR/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$ext" -out "$PKI_DIR/$name.crt" 2>/dev/null
    rm -f "$ext" "$PKI_DIR/$name.csr"
    chmod 600 "$PKI_DIR/$name.key"
}

# kubeconfig <file> <cert name>: a kubeconfig that authenticates with that client certificate.
kubeconfig() {
    local file=$1 name=$2
    cat >"$file" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: statelab
    cluster:
      certificate-authority: $PKI_DIR/ca.crt
      server: https://$NODE_IP:$APISERVER_PORT
users:
  - name: $name
    user:
      client-certificate: $PKI_DIR/$name.crt
      client-key: $PKI_DIR/$name.key
contexts:
  - name: statelab
    context:
      cluster: statelab
      user: $name
current-context: statelab
YAML
    chmod 600 "$file"
}

make_pki() {
    mkdir -p "$PKI_DIR"
    chmod 700 "$PKI_DIR"
    if [ ! -f "$PKI_DIR/ca.crt" ]; then
        log "creating the cluster CA and certificates in $PKI_DIR"
        openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI_DIR/ca.key" -days 3650 \
            -subj "/CN=statelab-cluster-ca" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI_DIR/ca.crt" 2>/dev/null
        chmod 600 "$PKI_DIR/ca.key"
    fi
    local api_names="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
    cert etcd-server "/CN=etcd" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
    cert apiserver "/CN=kube-apiserver" serverAuth "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,$api_names"
    cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
    cert controller-manager "/CN=system:kube-controller-manager" clientAuth
    cert scheduler "/CN=system:kube-scheduler" clientAuth
    cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
    cert kube-proxy "/CN=system:kube-proxy" clientAuth
    cert kube-router "/CN=system:kube-router" clientAuth
    if [ ! -f "$PKI_DIR/sa.key" ]; then
        openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
        chmod 600 "$PKI_DIR/sa.key"
    fi
    kubeconfig "$KUBECONFIG_ADMIN" admin
    local c
    for c in controller-manager scheduler kubelet kube-proxy kube-router; do
        kubeconfig "$STATE_DIR/$c.kubeconfig" "$c"
    done
}
