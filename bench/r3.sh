#!/usr/bin/env bash
# Publishing into a replicated stream (issue #15's figure): the release
# receiver (one GitHub endpoint, plain HTTP) storing into
#   A  a single nats-server, stream replicas 1, and
#   B  a three-node nats-server cluster on loopback, stream replicas 3 (all
#      three URLs in --nats-url, as the chart passes a cluster),
# side by side on the same machine, in alternating closed-loop wrk rounds
# (A, B, A, B) of pre-signed distinct deliveries: stored deliveries per
# second, p50/p99/p99.9 latency, and CPU per stored delivery of the receiver
# and of the nats-server(s) (utime+stime from /proc, all three nodes for B).
# Then one more B round during which the stream's leader is made to step
# down halfway (`nats stream cluster step-down`): what a leader change costs
# in refused deliveries (non-2xx; the receiver answers 503 and the sender
# retries), latency and throughput. Not part of `make test`; Markdown on
# stdout.
#
# Environment: ROUNDS (default 2), SECONDS_PER_ROUND (default 10),
# CONNECTIONS (default 16), REQUESTS (pre-signed per round, default 300000),
# RECEIVER_BIN (default target/release/hookwarden-receiver), PRESIGN_BIN.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/tests/tools/lib.sh"
. "$root/bench/lib.sh"

target_dir=${CARGO_TARGET_DIR:-$root/target}
RECEIVER_BIN=${RECEIVER_BIN:-$target_dir/release/hookwarden-receiver}
PRESIGN_BIN=${PRESIGN_BIN:-$(dirname "$RECEIVER_BIN")/bench-presign}
[ -x "$PRESIGN_BIN" ] || PRESIGN_BIN=$target_dir/debug/bench-presign
ROUNDS=${ROUNDS:-2}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
CONNECTIONS=${CONNECTIONS:-16}
REQUESTS=${REQUESTS:-300000}
[ -x "$RECEIVER_BIN" ] || die "no receiver at $RECEIVER_BIN: cargo build --release -p hookwarden-receiver"
[ -x "$PRESIGN_BIN" ] || die "no bench-presign at $PRESIGN_BIN: cargo build -p hookwarden-bench"
command -v wrk >/dev/null || die "wrk is needed (Debian package; bench/run.sh installs it)"
nats_server=$(tool_path nats-server)
nats_cli=$(tool_path nats)
[ -x "$nats_server" ] || die "no nats-server: tests/tools/install.sh nats-server"
[ -x "$nats_cli" ] || die "no nats CLI: tests/tools/install.sh nats"

bench_work r3-bench

cpu_of() { local sum=0 pid; for pid in "$@"; do sum=$((sum + $(cpu_ticks "$pid"))); done; echo "$sum"; }
wait_healthy() {
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1/healthz?js-enabled-only=true" 2>/dev/null && return 0; sleep 0.1; done
  die "nats-server at $1 not healthy; logs in $work"
}

# A: one server.
single_port=$(free_port) single_monitor=$(free_port)
mkdir -p "$work/single"
"$nats_server" --addr 127.0.0.1 --port "$single_port" --http_port "$single_monitor" --jetstream \
  --store_dir "$work/single/js" >"$work/single/nats-server.log" 2>&1 &
single_pid=$!; pids+=("$single_pid")
wait_healthy "http://127.0.0.1:$single_monitor"

# B: three nodes, each routing to all three (as hookwarden_tests::NatsCluster).
cluster_pids=() cluster_urls=() route_ports=() client_ports=() monitor_ports=()
for n in 0 1 2; do
  route_ports+=("$(free_port)") client_ports+=("$(free_port)") monitor_ports+=("$(free_port)")
done
routes=$(printf '"nats://127.0.0.1:%s", ' "${route_ports[@]}")
for n in 0 1 2; do
  dir=$work/node$n
  mkdir -p "$dir"
  cat >"$dir/nats.conf" <<EOF
server_name: "n$n"
host: "127.0.0.1"
port: ${client_ports[$n]}
http_port: ${monitor_ports[$n]}
jetstream { store_dir: "$dir/js" }
cluster { name: "bench", listen: "127.0.0.1:${route_ports[$n]}", routes: [${routes%, }] }
EOF
  "$nats_server" -c "$dir/nats.conf" >"$dir/nats-server.log" 2>&1 &
  cluster_pids+=("$!"); pids+=("$!")
  cluster_urls+=("nats://127.0.0.1:${client_ports[$n]}")
done
for n in 0 1 2; do wait_healthy "http://127.0.0.1:${monitor_ports[$n]}"; done
cluster_url=$(IFS=,; echo "${cluster_urls[*]}")

secret_file=$work/secret
openssl rand -hex 32 | tr -d '\n' >"$secret_file"
start_receiver() {
  local name=$1 url=$2 replicas=$3
  local dir=$work/$name
  mkdir -p "$dir/gh"
  cp "$secret_file" "$dir/gh/secret"
  cat >"$dir/endpoint.yaml" <<EOF
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {name: $name, namespace: bench}
spec:
  provider: github
  secretRefs: [{name: gh, key: secret}]
  nats: {replicas: $replicas}
  # The load comes from one address: limits far above any rate reached here.
  rateLimit:
    global: {requestsPerSecond: 10000000, burst: 10000000}
    perSourceIp: {requestsPerSecond: 10000000, burst: 10000000}
EOF
  local listen=127.0.0.1:$(free_port) ops=127.0.0.1:$(free_port)
  "$RECEIVER_BIN" serve --endpoint "$dir/endpoint.yaml" --secrets-dir "$dir" \
    --nats-url "$url" --listen "$listen" --metrics-listen "$ops" --tls-mode insecure-http \
    --max-in-flight 4096 --max-connections-per-source 100000 --max-body-reads-per-source 100000 \
    >"$dir/receiver.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "http://$ops/readyz" 2>/dev/null && { echo "$pid $listen"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/receiver.log" >&2; die "$name exited"; }
    sleep 0.05
  done
  tail -20 "$dir/receiver.log" >&2; die "$name was not ready in 30 s"
}
# start_receiver runs in a process substitution: its pids+= is lost there,
# so the receivers are added to the cleanup list here.
read -r a_pid a_listen < <(start_receiver single "nats://127.0.0.1:$single_port" 1)
pids+=("$a_pid")
read -r b_pid b_listen < <(start_receiver replicated "$cluster_url" 3)
pids+=("$b_pid")
# The streams' names, as the receiver made them.
stream_of() { curl -fsS "$1/jsz?streams=true" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next(s["name"] for a in d.get("account_details", []) for s in a.get("stream_detail", [])))'; }
b_stream=$(stream_of "http://127.0.0.1:${monitor_ports[0]}")

# One closed-loop round: "<receiver µs/delivery> <nats µs/delivery>
# <stored/s> <stored> <refused> <p50 ms> <p99 ms> <p99.9 ms>".
round() {
  local name=$1 listen=$2 prefix=$3 receiver_pid=$4; shift 4
  local nats_pids=("$@")
  "$PRESIGN_BIN" --secret-file "$secret_file" --prefix "$prefix" --count "$REQUESTS" \
    wrk --template-out "$work/body.tmpl" --lines-out "$work/$prefix.tsv"
  local r0 n0 r1 n1 json
  r0=$(cpu_ticks "$receiver_pid") n0=$(cpu_of "${nats_pids[@]}")
  BENCH_WRK_TEMPLATE=$work/body.tmpl BENCH_WRK_LINES=$work/$prefix.tsv BENCH_WRK_PATH=/ \
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_ROUND}s" --timeout 10s \
    -s "$root/bench/wrk-presigned.lua" "http://$listen/" -- 2 >"$work/$prefix.out" 2>&1 ||
    { cat "$work/$prefix.out" >&2; die "wrk failed"; }
  r1=$(cpu_ticks "$receiver_pid") n1=$(cpu_of "${nats_pids[@]}")
  rm -f "$work/$prefix.tsv"
  json=$(sed -n 's/^WRK-JSON //p' "$work/$prefix.out")
  [ -n "$json" ] || { cat "$work/$prefix.out" >&2; die "no result from wrk"; }
  python3 - "$json" "$((r1 - r0))" "$((n1 - n0))" "$clk_tck" "$name" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); receiver, nats, tck = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ok = d["requests"] - d["errors_status"]
if ok <= 0 or d["wrapped"]:
    sys.exit(f"{sys.argv[5]}: {ok} stored, {d['wrapped']} wraps: not a valid round")
per = lambda ticks: ticks / tck * 1e6 / ok
print(f"{per(receiver):.1f} {per(nats):.1f} {ok / (d['duration_us'] / 1e6):.0f} {ok} {d['errors_status']} "
      f"{d['p50_us'] / 1000:.2f} {d['p99_us'] / 1000:.2f} {d['p999_us'] / 1000:.2f}")
PY
}

echo "| round | target | receiver CPU per delivery | nats-server CPU per delivery | stored/s | stored | refused | p50 | p99 | p99.9 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row() { read -r rc nc rps ok refused p50 p99 p999; echo "| $1 | $2 | $rc µs | $nc µs | $rps | $ok | $refused | $p50 ms | $p99 ms | $p999 ms |"; }
for r in $(seq 1 "$ROUNDS"); do
  say "round $r: single server, then R3 cluster"
  round single "$a_listen" "a$r" "$a_pid" "$single_pid" | row "$r" "A: single server, R1"
  round replicated "$b_listen" "b$r" "$b_pid" "${cluster_pids[@]}" | row "$r" "B: 3 nodes, R3"
done
say "an R3 round with a leader change halfway"
(
  sleep "$((SECONDS_PER_ROUND / 2))"
  "$nats_cli" --server "$cluster_url" stream cluster step-down "$b_stream" >"$work/step-down.log" 2>&1 ||
    echo "step-down failed: $(cat "$work/step-down.log")" >&2
) &
stepper=$!
round replicated "$b_listen" "c" "$b_pid" "${cluster_pids[@]}" | row "leader change" "B: 3 nodes, R3"
wait "$stepper" || true
grep -h "leader\|Leader" "$work/step-down.log" >&2 || true
