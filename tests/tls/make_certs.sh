#!/usr/bin/env bash
# Makes the certificates the TLS tests use, at test time, into $1 (no private key is committed):
#   ca.pem ca.key                 the test CA
#   server.pem server.key         CN=localhost, SAN localhost and 127.0.0.1, signed by the CA
#   server-enc.key                server.key encrypted with the password "secret"
#   other.pem other.key           SAN other.example (SNI; the wrong name for localhost)
#   expired.pem expired.key       localhost, signed by the CA, expired in 2020
#   self.pem self.key             localhost, self-signed (an unknown issuer)
#   client.pem client.key         CN=client, signed by the CA (client certificates)
# EC P-256 keys: quick to make.
set -euo pipefail
dir="$1"
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=twist test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME CN SAN: NAME.pem from NAME.key, signed by the CA.
sign() {
  local name=$1 cn=$2 san=$3
  key "$name.key"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
}
sign server localhost "DNS:localhost,IP:127.0.0.1"
sign other other.example "DNS:other.example"
sign client client "DNS:client"
openssl pkey -in server.key -aes256 -passout pass:secret -out server-enc.key

# Expired: `openssl ca` takes explicit dates (x509 -req cannot go back in time).
key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/CN=localhost"
mkdir -p ca.db
: > ca.db/index.txt
echo 01 > ca.db/serial
cat > ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = CA:FALSE
CNF
openssl ca -batch -config ca.cnf -startdate 20200101000000Z -enddate 20200201000000Z \
  -in expired.csr -out expired.pem 2>/dev/null

key self.key
openssl req -x509 -new -key self.key -out self.pem -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
touch done
