#!/usr/bin/env bash
# The shared receiver pool at scale: `hookwarden-receiver serve --pool-dir`
# on a directory laid out as the operator mounts a pool's Secret, with
# POOL_SIZES endpoints (default "100 1000 10000"), against a private
# nats-server. For each size it prints
#   - start to ready: process start until /readyz answers 200 (every
#     endpoint loaded and its stream created: the pool opens its ports only
#     then);
#   - idle RSS of the pool and of nats-server, and the streams nats-server
#     holds (every endpoint its own stream, as the operator renders members);
#   - CPU per reload scan at rest: the pool's CPU time over IDLE_SECONDS
#     divided by the scans in it (one every RELOAD_INTERVAL seconds; a scan
#     stats every endpoint file and its secrets, reading only changed ones);
#   - time for one changed endpoint to take effect: its secret rotated (the
#     kubelet's way: a new file renamed over the old), until a delivery
#     signed with the new secret is stored (median of CHANGES tries; at most
#     one RELOAD_INTERVAL plus one scan by design).
# At POOL_ROUTE_SIZE endpoints (default 1000) it also measures the routing
# cost: one endpoint of the pool against a dedicated receiver serving the
# same manifest and secret, beside it on the same nats-server, in
# alternating rounds A/B/A/B (ROUTE_ROUNDS pairs): CPU time per stored
# delivery (utime+stime of the receiver process over a wrk run at
# ROUTE_CONNECTIONS connections for ROUTE_SECONDS, divided by its 2xx
# answers) and throughput. Plain HTTP on loopback (no TLS: the TLS cost is
# the same for both and would hide the routing cost).
#
# The machine may be shared: prefer the CPU-per-delivery ratio over the
# throughput ratio, and the medians over single figures. Not part of
# `make test`; results as Markdown on stdout, logs in WORK (kept with
# KEEP_WORK=1).
#
# Environment:
#   RECEIVER_BIN   the receiver (default $CARGO_TARGET_DIR/release/hookwarden-receiver,
#                  `cargo build --release -p hookwarden-receiver`)
#   PRESIGN_BIN    bench-presign (default: beside RECEIVER_BIN, else the debug one)
#   POOL_SIZES, POOL_ROUTE_SIZE, RELOAD_INTERVAL (default 2, the receiver's),
#   IDLE_SECONDS (default 20), CHANGES (default 5), ROUTE_ROUNDS (default 2),
#   ROUTE_SECONDS (default 10), ROUTE_CONNECTIONS (default 16),
#   ROUTE_REQUESTS (distinct deliveries per round, default 400000: an idle
#                  machine stores over 100,000 in 5 s)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/tools/lib.sh
. "$root/tests/tools/lib.sh"
. "$root/bench/lib.sh"

target_dir=${CARGO_TARGET_DIR:-$root/target}
RECEIVER_BIN=${RECEIVER_BIN:-$target_dir/release/hookwarden-receiver}
PRESIGN_BIN=${PRESIGN_BIN:-$(dirname "$RECEIVER_BIN")/bench-presign}
[ -x "$PRESIGN_BIN" ] || PRESIGN_BIN=$target_dir/debug/bench-presign
POOL_SIZES=${POOL_SIZES:-100 1000 10000}
POOL_ROUTE_SIZE=${POOL_ROUTE_SIZE:-1000}
RELOAD_INTERVAL=${RELOAD_INTERVAL:-2}
IDLE_SECONDS=${IDLE_SECONDS:-20}
CHANGES=${CHANGES:-5}
ROUTE_ROUNDS=${ROUTE_ROUNDS:-2}
ROUTE_SECONDS=${ROUTE_SECONDS:-10}
ROUTE_CONNECTIONS=${ROUTE_CONNECTIONS:-16}
ROUTE_REQUESTS=${ROUTE_REQUESTS:-400000}
[ -x "$RECEIVER_BIN" ] || die "no receiver at $RECEIVER_BIN: cargo build --release -p hookwarden-receiver"
[ -x "$PRESIGN_BIN" ] || die "no bench-presign at $PRESIGN_BIN: cargo build -p hookwarden-bench"
command -v wrk >/dev/null || die "wrk is needed (Debian package; bench/run.sh installs it)"
nats_server=$(tool_path nats-server)
[ -x "$nats_server" ] || die "no nats-server: tests/tools/install.sh nats-server"

bench_work pool-bench

# utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat, counted
# after the command name, which may hold spaces), as bench/run.sh.
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  wait "$1" 2>/dev/null || true
}

# A fresh nats-server with JetStream and monitoring in $work/$1.
nats_pid='' nats_url='' nats_monitor=''
start_nats() {
  local dir=$work/$1
  mkdir -p "$dir"
  local port monitor
  port=$(free_port) monitor=$(free_port)
  "$nats_server" --addr 127.0.0.1 --port "$port" --http_port "$monitor" --jetstream \
    --store_dir "$dir/js" >"$dir/nats-server.log" 2>&1 &
  nats_pid=$!; pids+=("$nats_pid")
  nats_url=nats://127.0.0.1:$port nats_monitor=http://127.0.0.1:$monitor
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$nats_monitor/healthz" 2>/dev/null && return 0; sleep 0.1; done
  cat "$dir/nats-server.log" >&2; die "nats-server did not start"
}

# The pool directory of $2 endpoints in $1: endpoint.eNNNNN.yaml (even:
# GitHub on /github, odd: Stripe on /stripe, each on its own host) and
# each one's own secret secret.sNNNNN_secret, as the operator renders them.
write_pool() {
  python3 - "$1" "$2" <<'PY'
import os, secrets, sys
root, count = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
for n in range(count):
    provider, path = ("github", "/github") if n % 2 == 0 else ("stripe", "/stripe")
    name = f"e{n:05d}"
    manifest = f"""apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {{name: {name}, namespace: bench}}
spec:
  provider: {provider}
  secretRefs: [{{name: s{n:05d}, key: secret}}]
  ingress: {{host: {name}.hooks.example, path: {path}}}
  # The load comes from one address: limits far above any rate reached here.
  rateLimit:
    global: {{requestsPerSecond: 10000000, burst: 10000000}}
    perSourceIp: {{requestsPerSecond: 10000000, burst: 10000000}}
"""
    with open(os.path.join(root, f"endpoint.{name}.yaml"), "w") as f:
        f.write(manifest)
    with open(os.path.join(root, f"secret.s{n:05d}_secret"), "w") as f:
        f.write(secrets.token_hex(32))
PY
}

receiver_flags=(--tls-mode insecure-http --max-in-flight 4096
  --max-connections-per-source 100000 --max-body-reads-per-source 100000
  --reload-interval-secs "$RELOAD_INTERVAL")

# start_receiver NAME LISTEN OPS ARGS...: the receiver, until /readyz is
# 200; sets server_pid, and ready_ms to the milliseconds that took.
server_pid='' ready_ms=''
start_receiver() {
  local name=$1 listen=$2 ops=$3; shift 3
  local t0; t0=$(now_ms)
  "$RECEIVER_BIN" serve "$@" --nats-url "$nats_url" --listen "$listen" \
    --metrics-listen "$ops" "${receiver_flags[@]}" >"$work/$name.log" 2>&1 &
  server_pid=$!; pids+=("$server_pid")
  for _ in $(seq 1 6000); do
    if curl -fsS -o /dev/null "http://$ops/readyz" 2>/dev/null; then
      ready_ms=$(($(now_ms) - t0)); return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { tail -20 "$work/$name.log" >&2; die "$name exited"; }
    sleep 0.05
  done
  tail -20 "$work/$name.log" >&2; die "$name was not ready in 300 s"
}

# github_status LISTEN HOST SECRET-FILE ID: the status of one signed
# GitHub delivery to HOST's /github.
github_status() {
  local body="{\"delivery\":\"$4\"}" signature
  signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$3")" | sed 's/^.*= //')
  curl -s -o /dev/null -w '%{http_code}' "http://$1/github" -H "Host: $2" \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $4" \
    -H "X-Hub-Signature-256: sha256=$signature" --data-binary "$body"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# route_round NAME PID LISTEN PREFIX: one wrk run against LISTEN, the
# deliveries signed with e00000's secret; prints "cpu_us_per_delivery rps ok".
route_round() {
  local name=$1 pid=$2 listen=$3 prefix=$4
  "$PRESIGN_BIN" --secret-file "$secret" --prefix "$prefix" --count "$ROUTE_REQUESTS" \
    wrk --template-out "$work/body.tmpl" --lines-out "$work/$prefix.tsv"
  local t0 t1 json
  t0=$(cpu_ticks "$pid")
  BENCH_WRK_TEMPLATE=$work/body.tmpl BENCH_WRK_LINES=$work/$prefix.tsv \
    BENCH_WRK_PATH=/github BENCH_WRK_HOST=e00000.hooks.example \
    wrk -t2 -c"$ROUTE_CONNECTIONS" -d"${ROUTE_SECONDS}s" --timeout 10s \
    -s "$root/bench/wrk-presigned.lua" "http://$listen/" -- 2 >"$work/$prefix.out" 2>&1 ||
    { cat "$work/$prefix.out" >&2; die "wrk failed"; }
  t1=$(cpu_ticks "$pid")
  rm -f "$work/$prefix.tsv"
  json=$(sed -n 's/^WRK-JSON //p' "$work/$prefix.out")
  [ -n "$json" ] || { cat "$work/$prefix.out" >&2; die "no result from wrk"; }
  python3 - "$json" "$((t1 - t0))" "$clk_tck" "$name" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); ticks, tck = int(sys.argv[2]), int(sys.argv[3])
ok = d["requests"] - d["errors_status"]
if ok <= 0 or d["wrapped"]:
    sys.exit(f"{sys.argv[4]}: {ok} stored, {d['wrapped']} wraps: not a valid round")
print(f"{ticks / tck * 1e6 / ok:.1f} {ok / (d['duration_us'] / 1e6):.0f} {ok}")
PY
}

echo "| endpoints | serving when ready | start to ready | pool idle RSS | nats-server RSS | streams | CPU per scan at rest | one change takes effect (median of $CHANGES) |"
echo "|---|---|---|---|---|---|---|---|"
route_rows=()
for size in $POOL_SIZES; do
  say "pool of $size endpoints"
  start_nats "nats-$size"
  dir=$work/pool-$size
  write_pool "$dir" "$size"
  listen=127.0.0.1:$(free_port) ops=127.0.0.1:$(free_port)
  start_receiver "pool-$size" "$listen" "$ops" --pool-dir "$dir"
  pool_pid=$server_pid
  serving=$(curl -fsS "http://$ops/endpoints" |
    python3 -c 'import json,sys; print(sum(e["state"] == "serving" for e in json.load(sys.stdin)["endpoints"]))')
  # Not all serving when ready (e.g. stream creations timed out): said in
  # the row, the figures still taken.
  [ "$serving" = "$size" ] || say "$serving of $size endpoints serving when ready: see $work/pool-$size.log"
  sleep 3
  pool_rss=$(rss_kib "$pool_pid") nats_rss=$(rss_kib "$nats_pid")
  streams=$(curl -fsS "$nats_monitor/jsz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["streams"])')
  t0=$(cpu_ticks "$pool_pid"); sleep "$IDLE_SECONDS"; t1=$(cpu_ticks "$pool_pid")
  scan_ms=$(python3 -c "print(f'{($t1 - $t0) / $clk_tck * 1000 / ($IDLE_SECONDS / $RELOAD_INTERVAL):.1f}')")
  # One endpoint's secret rotated, the kubelet's way.
  secret=$dir/secret.s00000_secret
  changes=()
  for c in $(seq 1 "$CHANGES"); do
    openssl rand -hex 32 | tr -d '\n' >"$dir/.rotated"
    t0=$(now_ms)
    mv "$dir/.rotated" "$secret"
    took=''
    for attempt in $(seq 1 600); do
      if [ "$(github_status "$listen" e00000.hooks.example "$secret" "change-$size-$c-$attempt")" = 200 ]; then
        took=$(($(now_ms) - t0)); break
      fi
      sleep 0.02
    done
    [ -n "$took" ] || die "the rotated secret of e00000 never verified (pool of $size)"
    changes+=("$took")
  done
  change_ms=$(printf '%s\n' "${changes[@]}" | median)
  echo "| $size | $serving | $ready_ms ms | $((pool_rss / 1024)) MiB | $((nats_rss / 1024)) MiB | $streams | $scan_ms ms | $change_ms ms (interval ${RELOAD_INTERVAL} s) |"
  if [ "$size" = "$POOL_ROUTE_SIZE" ]; then
    say "routing cost: e00000 of the pool of $size against a dedicated receiver"
    mkdir -p "$work/dedicated/s00000"
    cp "$dir/endpoint.e00000.yaml" "$work/dedicated/endpoint.yaml"
    cp "$secret" "$work/dedicated/s00000/secret"
    d_listen=127.0.0.1:$(free_port) d_ops=127.0.0.1:$(free_port)
    start_receiver dedicated "$d_listen" "$d_ops" --endpoint "$work/dedicated/endpoint.yaml" \
      --secrets-dir "$work/dedicated"
    dedicated_pid=$server_pid
    for round in $(seq 1 "$ROUTE_ROUNDS"); do
      read -r a_cpu a_rps a_ok < <(route_round dedicated "$dedicated_pid" "$d_listen" "a$round")
      read -r b_cpu b_rps b_ok < <(route_round pool "$pool_pid" "$listen" "b$round")
      route_rows+=("| $round | $a_cpu µs | $b_cpu µs | $(python3 -c "print(f'{$b_cpu / $a_cpu:.2f}')") | $a_rps/s | $b_rps/s | $(python3 -c "print(f'{$b_rps / $a_rps:.2f}')") | $a_ok / $b_ok |")
    done
    stop_pid "$dedicated_pid"
    # Also on stderr at once: a later size that fails must not lose them.
    printf '%s\n' "${route_rows[@]}" >&2
  fi
  stop_pid "$pool_pid"
  stop_pid "$nats_pid"
  rm -rf "$work/nats-$size/js"
done
if [ "${#route_rows[@]}" -gt 0 ]; then
  echo
  echo "Routing cost, one endpoint of a pool of $POOL_ROUTE_SIZE (B) against a dedicated receiver (A), $ROUTE_CONNECTIONS connections, ${ROUTE_SECONDS} s per run, plain HTTP, rounds A then B:"
  echo
  echo "| round | CPU per delivery A | B | B/A | throughput A | B | B/A | stored A / B |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${route_rows[@]}"
fi
