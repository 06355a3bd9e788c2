#!/usr/bin/env bash
# The peer of `make bench`: Argo Events' webhook EventSource, run as a plain
# process outside a cluster, publishing to JetStream the way an Argo Events
# JetStream EventBus does (sync publish with a message id, file storage).
#
#   peer.sh available           exit 0 if the peer can run here
#   peer.sh why                 why it cannot (one line)
#   peer.sh start WORK NATS_URL PORT
#                               start it serving HTTPS on 127.0.0.1:PORT with
#                               WORK/tls.crt, WORK/tls.key; PID in WORK/peer.pid
#   peer.sh cleanup             remove what start put outside WORK
#
# What it needs outside a pod, all read from the code of
# github.com/argoproj/argo-events (pkg/eventsources/cmd/start.go,
# pkg/eventbus/jetstream/base/jetstream.go, pkg/shared/util/util.go):
# - EVENTSOURCE_OBJECT: the EventSource object, JSON in base64;
#   EVENTBUS_CONFIG: the BusConfig, JSON in base64; EVENTBUS_SUBJECT, POD_NAME;
# - the TLS certificate of the webhook server at the fixed path
#   /argo-events/secrets/<secret>/<key> (where the pod mounts Secrets), so
#   this needs root;
# - TLS to NATS: without a `tls` block it connects with nats.Secure
#   (InsecureSkipVerify), so the nats-server must offer TLS;
# - port 7777 free (its metrics server, fixed).
set -euo pipefail
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/tools/lib.sh
. "$bench_dir/../tests/tools/lib.sh"

peer_bin=${BENCH_PEER_BIN:-$(tool_path argo-events)}
secret_dir=/argo-events/secrets/hookwarden-bench

why() {
  if [ ! -x "$peer_bin" ]; then
    echo "the Argo Events binary is not built ($peer_bin; tests/tools/install.sh argo-events builds it)"
  elif [ "$(id -u)" -ne 0 ]; then
    echo "the peer reads its TLS certificate from /argo-events/secrets/..., which needs root to create"
  elif ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE ':7777$'; then
    echo "port 7777 (the EventSource's fixed metrics port) is in use"
  fi
}

case ${1:-} in
  available) [ -z "$(why)" ] ;;
  why) why ;;
  start)
    work=$2 nats_url=$3 port=$4
    [ -z "$(why)" ] || die "$(why)"
    mkdir -p "$secret_dir"
    cp "$work/tls.crt" "$secret_dir/tls.crt"
    cp "$work/tls.key" "$secret_dir/tls.key"
    eventsource=$(python3 -c '
import json, sys
print(json.dumps({
    "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
    "metadata": {"name": "bench", "namespace": "bench"},
    "spec": {"webhook": {"github": {
        "port": sys.argv[1], "endpoint": "/", "method": "POST",
        "serverCertSecret": {"name": "hookwarden-bench", "key": "tls.crt"},
        "serverKeySecret": {"name": "hookwarden-bench", "key": "tls.key"},
    }}},
}))' "$port" | base64 -w0)
    # What the EventBus controller passes for a JetStream bus, with one
    # replica and the receiver's 2 minute duplicate window.
    busconfig=$(python3 -c '
import json, sys
print(json.dumps({"jetstream": {"url": sys.argv[1],
    "streamConfig": "maxAge: 72h\nmaxMsgs: -1\nmaxBytes: -1\nreplicas: 1\nduplicates: 2m\n"}}))' "$nats_url" | base64 -w0)
    EVENTSOURCE_OBJECT=$eventsource EVENTBUS_CONFIG=$busconfig EVENTBUS_SUBJECT=eventbus-default \
      POD_NAME=bench-eventsource-0 ${BENCH_CPUS_SERVER:+taskset -c "$BENCH_CPUS_SERVER"} \
      "$peer_bin" eventsource-service >"$work/peer.log" 2>&1 &
    echo $! >"$work/peer.pid"
    ;;
  cleanup) rm -rf "$secret_dir"; rmdir /argo-events/secrets /argo-events 2>/dev/null || true ;;
  *) die "usage: peer.sh available|why|start WORK NATS_URL PORT|cleanup" ;;
esac
