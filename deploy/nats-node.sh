#!/usr/bin/env bash
# One node of the platform's NATS JetStream cluster, configured from the environment.
#
#   NATS_SERVER_NAME=obs-nats-1 NATS_ROUTES=obs-nats-1:6222,obs-nats-2:6222,obs-nats-3:6222 \
#   NATS_STORE_DIR=/var/lib/obs/nats deploy/nats-node.sh
#
# Why a script and not three .conf files: the old confs needed five edits per host, and a fixed
# max_file_store (500GB) was accepted silently on a small disk, so JetStream failed later, under
# load. Here every host-specific value comes from the environment (systemd EnvironmentFile, the
# compose file, or a shell), and the file store is sized from the disk it lives on.
#
# Environment (defaults in brackets):
#   NATS_SERVER_NAME     this node's name, unique in the cluster [hostname]
#   NATS_ROUTES          host:port of every node's cluster listener, comma-separated (required)
#   NATS_HOST            bind address [0.0.0.0]
#   NATS_PORT            client port [4222]
#   NATS_HTTP_PORT       monitoring port (/healthz, /jsz) [8222; 0: off]
#   NATS_CLUSTER_PORT    cluster port [6222]
#   NATS_CLUSTER_NAME    cluster name [obs]
#   NATS_STORE_DIR       JetStream file store, on local disk [/var/lib/obs/nats]
#   NATS_MAX_FILE_STORE  bytes JetStream may use [80 % of the disk space free at start];
#                        a value larger than the free space is refused
#   NATS_MAX_MEMORY_STORE bytes for memory streams [1073741824]
#   NATS_TLS_CERT, NATS_TLS_KEY, NATS_TLS_CA
#                        PEM files: when all three are set, clients and routes use TLS
#                        (routes verify each other against the CA)
#   NATS_AUTH_FILE       a file with an `authorization { users = [...] }` block, included as is
#                        (see deploy/README.md: `run.py subscribers create` writes its entries)
#   NATS_BIN             the nats-server binary [nats-server on PATH; .venv/bin/nats-server here]
#   NATS_DRY_RUN=1       print the configuration and exit
set -euo pipefail

: "${NATS_SERVER_NAME:=$(hostname -s)}"
: "${NATS_ROUTES:?NATS_ROUTES is required: host:port of every node cluster listener, comma-separated}"
: "${NATS_HOST:=0.0.0.0}"
: "${NATS_PORT:=4222}"
: "${NATS_HTTP_PORT:=8222}"
: "${NATS_CLUSTER_PORT:=6222}"
: "${NATS_CLUSTER_NAME:=obs}"
: "${NATS_STORE_DIR:=/var/lib/obs/nats}"
: "${NATS_MAX_MEMORY_STORE:=1073741824}"
if [ -z "${NATS_BIN:-}" ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [ -x "$here/.venv/bin/nats-server" ]; then NATS_BIN="$here/.venv/bin/nats-server"; else NATS_BIN=nats-server; fi
fi

mkdir -p "$NATS_STORE_DIR"
free_bytes=$(( $(df -Pk "$NATS_STORE_DIR" | awk 'NR==2 {print $4}') * 1024 ))
if [ -z "${NATS_MAX_FILE_STORE:-}" ]; then
  NATS_MAX_FILE_STORE=$(( free_bytes / 10 * 8 ))
elif [ "$NATS_MAX_FILE_STORE" -gt "$free_bytes" ]; then
  echo "nats-node: NATS_MAX_FILE_STORE=$NATS_MAX_FILE_STORE is more than the $free_bytes bytes free under $NATS_STORE_DIR" >&2
  exit 2
fi

routes=""
IFS=',' read -r -a route_list <<< "$NATS_ROUTES"
for r in "${route_list[@]}"; do
  r="${r// /}"
  [ -n "$r" ] && routes="$routes    \"nats-route://$r\"\n"
done

tls_client="" tls_route=""
if [ -n "${NATS_TLS_CERT:-}" ] && [ -n "${NATS_TLS_KEY:-}" ] && [ -n "${NATS_TLS_CA:-}" ]; then
  tls_client="tls {\n  cert_file: \"$NATS_TLS_CERT\"\n  key_file: \"$NATS_TLS_KEY\"\n  ca_file: \"$NATS_TLS_CA\"\n  timeout: 2\n}\n"
  tls_route="  tls {\n    cert_file: \"$NATS_TLS_CERT\"\n    key_file: \"$NATS_TLS_KEY\"\n    ca_file: \"$NATS_TLS_CA\"\n    verify: true\n    timeout: 2\n  }\n"
elif [ -n "${NATS_TLS_CERT:-}${NATS_TLS_KEY:-}${NATS_TLS_CA:-}" ]; then
  echo "nats-node: TLS needs all of NATS_TLS_CERT, NATS_TLS_KEY and NATS_TLS_CA" >&2
  exit 2
fi

auth=""
if [ -n "${NATS_AUTH_FILE:-}" ]; then
  [ -r "$NATS_AUTH_FILE" ] || { echo "nats-node: NATS_AUTH_FILE $NATS_AUTH_FILE is not readable" >&2; exit 2; }
  # nats-server resolves an include relative to the including file, even an absolute path:
  # so the block is copied beside the generated configuration (owner-only, it holds hashes)
  install -m 600 "$NATS_AUTH_FILE" "$NATS_STORE_DIR/auth.conf"
  auth="include \"auth.conf\"\n"
fi

conf="$NATS_STORE_DIR/node.conf"
printf '%b' "# written by deploy/nats-node.sh at start; edit the environment, not this file
server_name: \"$NATS_SERVER_NAME\"
host: \"$NATS_HOST\"
port: $NATS_PORT
http_port: $NATS_HTTP_PORT
max_payload: 8MB
jetstream {
  store_dir: \"$NATS_STORE_DIR\"
  max_file_store: $NATS_MAX_FILE_STORE
  max_memory_store: $NATS_MAX_MEMORY_STORE
}
cluster {
  name: \"$NATS_CLUSTER_NAME\"
  host: \"$NATS_HOST\"
  port: $NATS_CLUSTER_PORT
  routes: [
$routes  ]
$tls_route}
$tls_client$auth" > "$conf"

if [ "${NATS_DRY_RUN:-}" = "1" ]; then
  cat "$conf"
  exit 0
fi
exec "$NATS_BIN" -c "$conf"
