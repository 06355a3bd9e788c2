#!/usr/bin/env bash
# The operator at scale: applies ENDPOINTS WebhookEndpoints (default 1000)
# across NAMESPACES namespaces (default 10) to the local control plane
# (`make cluster-up`), runs `hookwarden-operator run` (watching those) against
# it and a private nats-server, and reports
#   - the time from the apply until every endpoint is Ready,
#   - the operator's peak RSS and CPU time,
#   - API requests per endpoint (apiserver_request_total before/after),
#   - reconcile passes per endpoint (the operator's own metric),
#   - reconcile passes, stream checks and API requests (all clients) per
#     minute at rest, counted over REST_SECONDS after SETTLE_SECONDS
#     (passes near zero: no hot loop, no periodic resync).
#   - (POOL=1) the objects the operator created, by kind.
# Not part of `make test`. Results go to stdout as Markdown rows.
#
# POOL=1: the endpoints are members of one WebhookReceiverPool per
# namespace (`bench`, `configShards` one per SHARD_MEMBERS members of the
# namespace, rounded up), each routed by a host of its own (an Ingress per
# member); REPLICAS is then the pool's pods. The pool's own passes count in
# the passes per endpoint.
#
# Environment:
#   ENDPOINTS     how many endpoints (default 1000)
#   NAMESPACES    how many namespaces they are spread over (default 10)
#   SETTLE_SECONDS how long to let the control plane settle after all are
#                 Ready before counting (default 120: the controller-manager
#                 is still creating ReplicaSets when the operator is done)
#   REST_SECONDS  how long to count passes at rest (default 60)
#   STREAM_CHECK_INTERVAL the operator's --stream-check-interval in seconds
#                 (default 300, the operator's default)
#   REPLICAS      receiver pods per endpoint (default 0). The kwok node holds
#                 110 pods and is shared with the tests; with 1000 endpoints
#                 only 0 fits: each endpoint is then complete (Secret,
#                 Deployment at 0 replicas, Service, NetworkPolicy, stream)
#                 and Ready once its (zero) pods are all available. Use
#                 REPLICAS=1 with ENDPOINTS <= ~80 to include pods.
#   OPERATOR_BIN  the operator binary (default target/release/hookwarden-operator,
#                 built with `cargo build --release -p hookwarden-operator`)
#   TIMEOUT       seconds to wait for all Ready (default 1200)
#   POOL          1: members of a pool per namespace (default 0: dedicated)
#   SHARD_MEMBERS (POOL=1) members per config Secret (default 800, the
#                 sizing rule of docs/operator.md)
#
# The API request count is the whole apiserver's: it includes what the
# controller-manager, scheduler and kwok do in reaction to the operator's
# objects, and whatever else uses the control plane meanwhile (other test
# runs on a shared control plane inflate it; run it on an idle one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=/dev/null
. "$root/tests/tools/lib.sh"

ENDPOINTS=${ENDPOINTS:-1000}
NAMESPACES=${NAMESPACES:-10}
REST_SECONDS=${REST_SECONDS:-60}
SETTLE_SECONDS=${SETTLE_SECONDS:-120}
STREAM_CHECK_INTERVAL=${STREAM_CHECK_INTERVAL:-300}
REPLICAS=${REPLICAS:-0}
TIMEOUT=${TIMEOUT:-1200}
POOL=${POOL:-0}
SHARD_MEMBERS=${SHARD_MEMBERS:-800}
OPERATOR_BIN=${OPERATOR_BIN:-$root/target/release/hookwarden-operator}
export KUBECONFIG=${HOOKWARDEN_KUBECONFIG:-$HOOKWARDEN_CACHE/cluster/kubeconfig}
kubectl=$(tool_path kubectl)
nats_server=$(tool_path nats-server)
[ -x "$OPERATOR_BIN" ] || die "no operator binary at $OPERATOR_BIN: cargo build --release -p hookwarden-operator"
[ -x "$kubectl" ] && [ -x "$nats_server" ] || die "pinned tools missing: make tools"
"$kubectl" get --raw /readyz >/dev/null 2>&1 || die "the control plane at $KUBECONFIG is not reachable: make cluster-up"

# Every endpoint gets a Service, and Services take ClusterIPs from the
# control plane's service range (tests/tools/cluster.sh: 10.0.0.0/16). Past
# it the operator's Service applies fail ("range is full") and the endpoints
# never get Ready; refuse rather than starve other users of the control plane.
cidr=$("$kubectl" get servicecidr kubernetes -o jsonpath='{.spec.cidrs[0]}' 2>/dev/null || echo 10.0.0.0/24)
services=$("$kubectl" get services -A --no-headers 2>/dev/null | wc -l)
free_ips=$(( (1 << (32 - ${cidr#*/})) - 2 - services ))
# A pool has one Service for all its members.
needed_ips=$ENDPOINTS
[ "$POOL" = 1 ] && needed_ips=$NAMESPACES
[ "$needed_ips" -le "$free_ips" ] || die "$ENDPOINTS endpoints need $needed_ips Service IPs; the control plane has about $free_ips free ($cidr with $services Services)"

work=$(mktemp -d -t hookwarden-bench-XXXXXX)
run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
namespaces=()
for n in $(seq 1 "$NAMESPACES"); do namespaces+=("hookwarden-bench-$run-$n"); done
nats_pid=
operator_pid=
cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null || true
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true
  "$kubectl" delete namespace "${namespaces[@]}" --wait=false >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# NATS for the streams, on a port of its own choosing.
mkdir -p "$work/ports"
"$nats_server" --addr 127.0.0.1 --port -1 --jetstream --store_dir "$work/js" \
  --ports_file_dir "$work/ports" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do ls "$work"/ports/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
nats_url=$(jq -r '.nats[0]' "$work"/ports/*.ports) || die "nats-server did not start; log: $work/nats.log"

secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
for ns in "${namespaces[@]}"; do
  "$kubectl" create namespace "$ns" >/dev/null
  "$kubectl" -n "$ns" create secret generic bench-webhook --from-literal=secret="$secret" >/dev/null
done

metrics_port=$(free_port)
# Only the bench's namespaces (one watch each): passes at rest then count
# the bench's endpoints, not other users' of the control plane.
"$OPERATOR_BIN" run --nats-url "$nats_url" --namespace "$(IFS=,; echo "${namespaces[*]}")" \
  --receiver-image registry.invalid/hookwarden/receiver:bench \
  --stream-check-interval "$STREAM_CHECK_INTERVAL" \
  --metrics-listen "127.0.0.1:$metrics_port" >"$work/operator.log" 2>&1 &
operator_pid=$!
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/readyz")" = 200 ] && break
  kill -0 "$operator_pid" 2>/dev/null || die "the operator exited; log: $work/operator.log"
  sleep 0.2
done

requests() { "$kubectl" get --raw /metrics | awk '/^apiserver_request_total\{/ {s += $NF} END {printf "%d\n", s}'; }
# "<verb>/<resource>[/<subresource>] <count>" lines, summed over the other labels.
by_resource() {
  "$kubectl" get --raw /metrics | awk '/^apiserver_request_total\{/ {
    r = ""; s = ""; v = ""
    if (match($0, /[{,]resource="[^"]*"/)) r = substr($0, RSTART + 11, RLENGTH - 12)
    if (match($0, /subresource="[^"]*"/)) s = substr($0, RSTART + 13, RLENGTH - 14)
    if (match($0, /verb="[^"]*"/)) v = substr($0, RSTART + 6, RLENGTH - 7)
    k = v "/" (r == "" ? "-" : r) (s == "" ? "" : "/" s)
    c[k] += $NF } END { for (k in c) print k, c[k] }' | sort
}
# calc EXPR: floating-point arithmetic without bc.
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$operator_pid/stat"; }

by_resource >"$work/before"
before=$(requests)
ticks_before=$(cpu_ticks)

manifest="$work/endpoints.yaml"
if [ "$POOL" = 1 ]; then
  per_namespace=$(( (ENDPOINTS + NAMESPACES - 1) / NAMESPACES ))
  shards=$(( (per_namespace + SHARD_MEMBERS - 1) / SHARD_MEMBERS ))
  for ns in "${namespaces[@]}"; do
    cat <<EOF
---
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookReceiverPool
metadata: {name: bench, namespace: $ns}
spec: {replicas: $REPLICAS, configShards: $shards}
EOF
  done
fi >"$manifest"
for i in $(seq -w 1 "$ENDPOINTS"); do
  cat <<EOF
---
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {name: e$i, namespace: ${namespaces[$((10#$i % NAMESPACES))]}, labels: {hookwarden.dev/bench: "$run"}}
spec:
  provider: github
  replicas: $REPLICAS
  secretRefs: [{name: bench-webhook, key: secret}]
EOF
  if [ "$POOL" = 1 ]; then
    printf '  pool: bench\n  ingress: {host: e%s.bench.invalid, path: /hook}\n' "$i"
  fi
done >>"$manifest"

mode="dedicated receivers"
[ "$POOL" = 1 ] && mode="members of one pool per namespace ($shards config Secrets each)"
say "applying $ENDPOINTS endpoints, $mode, replicas $REPLICAS, in $NAMESPACES namespaces hookwarden-bench-$run-*"
start=$(now)
"$kubectl" apply --server-side --field-manager hookwarden-bench -f "$manifest" >/dev/null
applied=$(now)
ready=0
while :; do
  ready=$("$kubectl" get webhookendpoints -A -l "hookwarden.dev/bench=$run" -o \
    jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
  [ "$ready" -ge "$ENDPOINTS" ] && break
  kill -0 "$operator_pid" 2>/dev/null || die "the operator exited; log: $work/operator.log"
  if awk "BEGIN { exit !($(now) - $start > $TIMEOUT) }"; then
    die "only $ready of $ENDPOINTS Ready after ${TIMEOUT}s; log: $work/operator.log"
  fi
  sleep 2
done
done_at=$(now)
after=$(requests)
ticks_after=$(cpu_ticks)
by_resource >"$work/after"
hz=$(getconf CLK_TCK)
peak_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$operator_pid/status")
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$operator_pid/status")
# operator_total METRIC: the operator's counter, summed over its labels.
operator_total() {
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    awk -v m="$1_total{" 'index($0, m) == 1 {s += $NF} END {printf "%d\n", s}'
}
passes_total() { operator_total hookwarden_operator_reconciles; }
passes=$(passes_total)
say "all Ready; settling for ${SETTLE_SECONDS}s, then counting passes at rest for ${REST_SECONDS}s"
sleep "$SETTLE_SECONDS"
settled=$(passes_total)
checks_settled=$(operator_total hookwarden_operator_stream_checks)
requests_settled=$(requests)
sleep "$REST_SECONDS"
rest_passes=$(( $(passes_total) - settled ))
rest_checks=$(( $(operator_total hookwarden_operator_stream_checks) - checks_settled ))
rest_requests=$(( $(requests) - requests_settled ))
per_minute=$(calc "$rest_passes * 60 / $REST_SECONDS")
checks_per_minute=$(calc "$rest_checks * 60 / $REST_SECONDS")
requests_per_minute=$(calc "$rest_requests * 60 / $REST_SECONDS")
streams=$("$(tool_path nats)" -s "$nats_url" stream ls --names 2>/dev/null | grep -c . || true)

total=$(calc "$done_at - $start")
apply_s=$(calc "$applied - $start")
cpu_s=$(calc "($ticks_after - $ticks_before) / $hz")
per_endpoint=$(calc "($after - $before) / $ENDPOINTS")
passes_per=$(awk "BEGIN { printf \"%.2f\", $passes / $ENDPOINTS }")

echo "| endpoints | namespaces | replicas each | apply | all Ready | operator CPU | operator RSS peak / end | API requests per endpoint | passes per endpoint | at rest, per minute: passes / stream checks / API requests (all clients) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '| %s | %s | %s | %s s | %s s | %s s | %d / %d MiB | %s | %s | %s / %s / %s |\n' \
  "$ENDPOINTS" "$NAMESPACES" "$REPLICAS" "$apply_s" "$total" "$cpu_s" $((peak_kib / 1024)) $((rss_kib / 1024)) "$per_endpoint" "$passes_per" "$per_minute" "$checks_per_minute" "$requests_per_minute"
echo "JetStream streams on the bench NATS: $streams"
# The operator's objects in the bench namespaces (and the pods of its
# Deployments), by kind.
echo "Objects the operator created, and pods:"
for kind in deployments services secrets networkpolicies ingresses poddisruptionbudgets pods; do
  count=$("$kubectl" get "$kind" -A -l app.kubernetes.io/managed-by=hookwarden-operator --no-headers 2>/dev/null | grep -c "^hookwarden-bench-$run-" || true)
  printf '  %s %s\n' "$kind" "$count"
done
echo
echo "API requests per endpoint by verb and resource (top 15, all clients):"
join -a 2 -e 0 -o 0,1.2,2.2 "$work/before" "$work/after" |
  awk -v n="$ENDPOINTS" '{d = $3 - $2; if (d > 0) printf "%.2f %s\n", d / n, $1}' | sort -rn | head -15
