#!/usr/bin/env bash
# Makes a private certificate authority and a TLS certificate for the daemon
# (and, for mutual TLS, one for a robot), with openssl:
#
#   configs/zenoh/make-certs.sh OUT_DIR [DAEMON_HOST] [DAYS]
#
# OUT_DIR/ca.pem          the authority's certificate: every robot trusts it
# OUT_DIR/ca.key          its private key: keep it offline; it signs new certificates
# OUT_DIR/daemon.pem/.key the daemon's certificate and key (names DAEMON_HOST,
#                         default localhost, and 127.0.0.1)
# OUT_DIR/robot.pem/.key  a client certificate (CN "robot") for mutual TLS
#
# Keys are ECDSA P-256 in PKCS#8 PEM, as zenoh's TLS link reads them.
# tests/fixtures/tls/ was made with `make-certs.sh tests/fixtures/tls localhost 36500`
# (test-only keys, valid for 100 years; never deploy them).
set -euo pipefail
out=${1:?usage: make-certs.sh OUT_DIR [DAEMON_HOST] [DAYS]}
host=${2:-localhost}
days=${3:-825}
mkdir -p "$out"
cd "$out"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=ebm-runtime CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

sign() { # name common-name subjectAltName extendedKeyUsage
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n' \
    "$4" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign daemon "$host" "subjectAltName=DNS:$host,IP:127.0.0.1" serverAuth
sign robot robot "subjectAltName=DNS:robot" clientAuth
rm -f ca.srl
echo "wrote $(pwd)/{ca,daemon,robot}.{pem,key}"
