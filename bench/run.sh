#!/usr/bin/env bash
# `make bench`: the receiver side by side with its baselines, in one run on
# this machine, written up as a markdown report (docs/benchmarks.md explains
# every column and what the figures mean).
#
# Rows (BENCH_ROWS, in this order):
#   bare             bench-bare-server: the receiver's own rustls listener and
#                    axum, reading the body and answering 200 (nothing else)
#   receiver-file    hookwarden-receiver, full pipeline, JetStream file storage
#   receiver-memory  the same, the stream pre-created with memory storage
#   receiver-traced  receiver-file with traces on: every request sampled
#                    (always_on) and exported over OTLP to a Jaeger v2 on
#                    loopback (receiver-file is the default: traces off)
#   nats-bench       `nats bench js pub sync`, 1 KiB, file storage, msg ids
#   nats-bench-async `nats bench js pub async`, the same, 1 client with a
#                    batch of C publishes in flight (C = connections): the
#                    receiver at C connections has up to C in flight too
#   peer             Argo Events' webhook EventSource (only if BENCH_PEER_BIN
#                    names a built binary; see docs/benchmarks.md)
#   forward          stored events -> `hookwarden-receiver forward` -> a bare
#                    HTTP sink on loopback, beside a plain JetStream consumer
#                    reading the same events (bench-forward), with the
#                    forwarder's CPU and RSS
#   traces-cost      (not in the default rows: it builds a second release
#                    receiver) bench/profile.sh's instructions per delivery
#                    under callgrind for the receiver with the exported spans
#                    compiled out (the `bench-no-spans` feature), the shipped
#                    receiver with traces off, and with traces on (always_on,
#                    exported to a Jaeger v2): what traces cost off and on,
#                    in figures a busy machine does not move; appended to
#                    the report. BENCH_ROWS="... traces-cost" make bench.
#
# Workload: HTTPS/1.1 with keep-alive, 1 KiB JSON bodies, every request a
# distinct, correctly signed GitHub delivery (bench-presign), closed loop
# with wrk at BENCH_CONNECTIONS connections, then open loop with vegeta at
# 50% and 90% of the row's best closed-loop rate.
#
# Knobs: BENCH_DURATION (seconds per measurement, default 10),
# BENCH_CONNECTIONS (default "1 16 64 256"), BENCH_ROWS, BENCH_READY_RUNS
# (default 7), BENCH_PROFILE (1: perf profile of the receiver, default 1),
# BENCH_QUICK=1 (3 s, 16 and 64 connections, no profile: about 3 minutes),
# BENCH_CPUS_SERVER / BENCH_CPUS_LOAD (taskset CPU lists for the servers and
# for the load generators; default: not pinned), BENCH_WRK_REQUESTS,
# BENCH_OPEN_WORKERS, BENCH_OPEN_MAX_TARGETS, BENCH_FORWARD_EVENTS (default
# 200000, quick 10000), BENCH_FORWARD_IN_FLIGHT (default 64), BENCH_BIN_DIR (prebuilt binaries, no build), BENCH_OUT (the report, default
# target/bench/report.md). docs/benchmarks.md describes them all.
set -euo pipefail
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)
# shellcheck source=tests/tools/lib.sh
. "$root/tests/tools/lib.sh"
cd "$root"

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  duration=${BENCH_DURATION:-3} connections=${BENCH_CONNECTIONS:-16 64}
  ready_runs=${BENCH_READY_RUNS:-3} profile=${BENCH_PROFILE:-0} wrk_requests=${BENCH_WRK_REQUESTS:-80000}
  forward_events=${BENCH_FORWARD_EVENTS:-10000}
else
  duration=${BENCH_DURATION:-10} connections=${BENCH_CONNECTIONS:-1 16 64 256}
  ready_runs=${BENCH_READY_RUNS:-7} profile=${BENCH_PROFILE:-1} wrk_requests=${BENCH_WRK_REQUESTS:-250000}
  forward_events=${BENCH_FORWARD_EVENTS:-200000}
fi
forward_in_flight=${BENCH_FORWARD_IN_FLIGHT:-64}
rows=${BENCH_ROWS:-bare receiver-file receiver-traced receiver-memory nats-bench nats-bench-async peer forward}
open_max_targets=${BENCH_OPEN_MAX_TARGETS:-250000}
# vegeta's connections (a fixed pool: letting it add workers when it falls
# behind makes it open new TLS connections until it is its own bottleneck).
open_workers=${BENCH_OPEN_WORKERS:-64}
cpus_server=${BENCH_CPUS_SERVER:-} cpus_load=${BENCH_CPUS_LOAD:-}
out_dir=$root/target/bench
out=${BENCH_OUT:-$out_dir/report.md}
mkdir -p "$out_dir" "$(dirname "$out")"
# A profile of an earlier run must not end up in this run's report.
rm -f "$out_dir/perf-receiver.txt"

# --- tools ------------------------------------------------------------------
"$root/tests/tools/deps.sh"
if ! command -v wrk >/dev/null 2>&1; then
  # Bench-only: `make test` never needs it.
  say "installing wrk (Debian package)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
"$root/tests/tools/install.sh" nats-server nats vegeta
case " $rows " in *" receiver-traced "*) "$root/tests/tools/install.sh" jaeger ;; esac
case " $rows " in
  *" peer "*)
    # Built once (several minutes); a failed build leaves the peer out, with the reason.
    "$root/tests/tools/install.sh" argo-events || say "the peer could not be built; its row is left out" ;;
esac
# BENCH_BIN_DIR: take hookwarden-receiver, bench-bare-server, bench-presign and
# bench-forward from there instead of building them (A/B runs of two builds).
prebuilt=${BENCH_BIN_DIR:-}
if [ -z "$prebuilt" ]; then
  say "building hookwarden-receiver and the bench tools (release)"
  cargo build --quiet --release --locked -p hookwarden-receiver -p hookwarden-bench
  # Where cargo put them (CARGO_TARGET_DIR, if set, moves target/).
  prebuilt=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi
receiver=$prebuilt/hookwarden-receiver
bare=$prebuilt/bench-bare-server
presign=$prebuilt/bench-presign
forward=$prebuilt/bench-forward
for bin in "$receiver" "$bare" "$presign" "$forward"; do
  [ -x "$bin" ] || die "no $bin (BENCH_BIN_DIR=$prebuilt)"
done
nats_server=$(tool_path nats-server) nats_cli=$(tool_path nats) vegeta=$(tool_path vegeta)

# --- scratch space and cleanup ----------------------------------------------
work=$out_dir/work
rm -rf "$work"; mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${peer_started:-0}" = 1 ]; then "$bench_dir/peer.sh" cleanup; fi
  # Request files and JetStream stores are large; logs stay for a look after the run.
  rm -f "$work"/*.tsv "$work"/*.targets "$work"/*.bin "$work"/*.csv "$work"/perf.data*
  rm -rf "$work"/*/js
}
trap cleanup EXIT

# Command prefixes pinning servers / load generators (empty: not pinned). Used
# as "${on_server[@]}" cmd ... & so that $! is the process itself.
on_server=() on_load=()
[ -z "$cpus_server" ] || on_server=(taskset -c "$cpus_server")
[ -z "$cpus_load" ] || on_load=(taskset -c "$cpus_load")
# A free port below the ephemeral range (32768+ here): the load generators'
# thousands of client sockets must not be able to take the servers' port
# between two rows.
free_port() {
  python3 -c '
import random, socket
for _ in range(1000):
    port = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break'
}
clk_tck=$(getconf CLK_TCK)
# utime+stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the command name, which may hold spaces).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
stop() { # stop PID: TERM, then wait for it (it may not be our child: the peer)
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  wait "$1" 2>/dev/null || true
}
results=$work/results.jsonl
: >"$results"
record() { python3 -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' "$@" >>"$results"; }

port=$(free_port) ops=$(free_port)
url=https://127.0.0.1:$port/

# --- certificate, secret, endpoint -------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
mkdir -p "$work/secrets/github-webhook"
openssl rand -hex 32 | tr -d '\n' >"$work/secrets/github-webhook/secret"
secret_file=$work/secrets/github-webhook/secret
stream=HOOKWARDEN_BENCH_GITHUB
cat >"$work/endpoint.yaml" <<YAML
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {name: github, namespace: bench}
spec:
  provider: github
  secretRefs: [{name: github-webhook, key: secret}]
  # The load comes from one address: limits far above any rate reached here.
  rateLimit:
    global: {requestsPerSecond: 10000000, burst: 10000000}
    perSourceIp: {requestsPerSecond: 10000000, burst: 10000000}
YAML
receiver_cmd=("$receiver" serve --endpoint "$work/endpoint.yaml" --secrets-dir "$work/secrets"
  --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$ops" --tls-mode terminate
  --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" --max-in-flight 4096
  # The load comes from one address: the per-source caps far above it too.
  --max-connections-per-source 100000 --max-body-reads-per-source 100000)

# --- pre-signed requests: one file per closed-loop run, so ids never repeat ---
http_rows=0
for row in $rows; do case $row in bare | receiver-file | receiver-traced | receiver-memory | peer) http_rows=1 ;; esac; done
[ "$http_rows" = 0 ] || say "pre-signing $wrk_requests deliveries per closed-loop run"
[ "$http_rows" = 0 ] || for c in $connections; do
  "$presign" --secret-file "$secret_file" --prefix "$(printf 'c%04d' "$c")" \
    --count "$wrk_requests" wrk --template-out "$work/body.tmpl" --lines-out "$work/wrk-c$c.tsv"
done
[ "$http_rows" = 0 ] || "$presign" --secret-file "$secret_file" --prefix w0016 --count "$wrk_requests" \
  wrk --template-out "$work/body.tmpl" --lines-out "$work/wrk-warmup.tsv"
if [ "$profile" = 1 ] && [ "$http_rows" = 1 ]; then
  "$presign" --secret-file "$secret_file" --prefix p0064 --count "$wrk_requests" \
    wrk --template-out "$work/body.tmpl" --lines-out "$work/wrk-profile.tsv"
fi

# --- services -------------------------------------------------------------
nats_pid='' nats_url=''
start_nats() { # start_nats NAME [ARG...]: a fresh nats-server with JetStream in $work/NAME
  local dir=$work/$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  "${on_server[@]}" "$nats_server" --addr 127.0.0.1 --port -1 --jetstream --store_dir "$dir/js" \
    --ports_file_dir "$dir" "$@" >"$dir/nats-server.log" 2>&1 &
  nats_pid=$!; pids+=("$nats_pid")
  for _ in $(seq 1 100); do ls "$dir"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
  nats_url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$dir"/*.ports 2>/dev/null || true)
  [ -n "$nats_url" ] || { cat "$dir/nats-server.log" >&2; die "nats-server did not start"; }
}
nats_tls=()
nats() { "$nats_cli" --server "$nats_url" "${nats_tls[@]}" "$@"; }
wait_https() { # wait_https PID LOG: until the TLS port answers
  for _ in $(seq 1 300); do
    curl -s -o /dev/null --cacert "$work/tls.crt" "$url" -d '{}' && return 0
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; die "the server exited"; }
    sleep 0.05
  done
  cat "$2" >&2; die "the server did not answer on $url"
}
# Jaeger for receiver-traced (start_jaeger DIR).
# shellcheck source=bench/jaeger.sh
. "$bench_dir/jaeger.sh"
server_pid=''
start_server() { # start_server ROW
  case $1 in
    bare)
      "${on_server[@]}" "$bare" --listen "127.0.0.1:$port" --tls-cert "$work/tls.crt" \
        --tls-key "$work/tls.key" >"$work/bare.log" 2>&1 &
      server_pid=$!; pids+=("$server_pid"); wait_https "$server_pid" "$work/bare.log" ;;
    receiver-file | receiver-memory | receiver-traced)
      start_nats "$1"
      if [ "$1" = receiver-memory ]; then
        nats stream add "$stream" --subjects 'hookwarden.bench.github.>' --storage memory \
          --dupe-window 2m --defaults >/dev/null
      fi
      local traces=()
      if [ "$1" = receiver-traced ]; then
        start_jaeger "$work/jaeger"
        traces=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$jaeger_otlp" OTEL_TRACES_SAMPLER=always_on)
      fi
      # Default logging: the audit line of every request is part of the cost.
      env "${traces[@]}" "${on_server[@]}" "${receiver_cmd[@]}" --nats-url "$nats_url" >"$work/$1.log" 2>&1 &
      server_pid=$!; pids+=("$server_pid")
      for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$ops/readyz" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/$1.log" >&2; die "the receiver exited"; }
        sleep 0.05
      done
      wait_https "$server_pid" "$work/$1.log"
      local storage want=${1#receiver-}; [ "$want" != traced ] || want=file
      storage=$(nats stream info "$stream" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["storage"])')
      [ "$storage" = "$want" ] || die "stream $stream has $storage storage, wanted $want" ;;
    peer)
      # The peer only talks TLS to NATS (see peer.sh).
      start_nats peer --tls --tlscert "$work/tls.crt" --tlskey "$work/tls.key"
      nats_tls=(--tlsca "$work/tls.crt")
      peer_started=1
      "$bench_dir/peer.sh" start "$work" "$nats_url" "$port" || die "the peer did not start (see docs/benchmarks.md)"
      server_pid=$(cat "$work/peer.pid"); pids+=("$server_pid")
      wait_https "$server_pid" "$work/peer.log" ;;
  esac
}

# --- closed loop (wrk) and open loop (vegeta) for one HTTP row ----------------
wrk_run() { # wrk_run CONNECTIONS LINES-FILE OUTPUT [SECONDS]
  local c=$1 threads=2
  [ "$c" -ge 2 ] || threads=1
  BENCH_WRK_TEMPLATE=$work/body.tmpl BENCH_WRK_LINES=$2 "${on_load[@]}" \
    wrk -t"$threads" -c"$c" -d"${4:-$duration}s" --timeout 10s -s "$bench_dir/wrk-presigned.lua" "$url" -- "$threads" >"$3" 2>&1
}
record_extra() { # record_extra WRK-OUTPUT: 2xx answers (and wraps) of a run outside the tables
  local ok wrapped
  read -r ok wrapped < <(sed -n 's/^WRK-JSON //p' "$1" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["requests"] - d["errors_status"], d["wrapped"])' 2>/dev/null || echo 0 0)
  record row="$row" kind=extra ok="${ok:-0}" wrapped="${wrapped:-0}"
}
http_row() { # http_row ROW
  local row=$1
  say "[$row] starting"
  start_server "$row"
  sleep 2
  # RssAnon is the process's own memory; the rest of VmRSS is the pages of
  # its binary and libraries mapped from files (shared, reclaimable page
  # cache), which grows with the binary's size, not with what it holds.
  record row="$row" kind=idle rss_kib="$(vm_kib "$server_pid" VmRSS)" anon_kib="$(vm_kib "$server_pid" RssAnon)"
  # Warm-up (not recorded): connections, allocator, JetStream's first blocks.
  wrk_run 16 "$work/wrk-warmup.tsv" "$work/$row-warmup.out" 3 || { cat "$work/$row-warmup.out" >&2; die "wrk failed"; }
  record_extra "$work/$row-warmup.out"
  local best=0
  for c in $connections; do
    local t0 n0 rss wpid
    t0=$(cpu_ticks "$server_pid"); n0=0
    [ -z "$nats_pid" ] || n0=$(cpu_ticks "$nats_pid")
    wrk_run "$c" "$work/wrk-c$c.tsv" "$work/$row-c$c.out" &
    wpid=$!
    sleep "$(python3 -c "print($duration / 2 + 1)")"
    rss=$(vm_kib "$server_pid" VmRSS)
    wait "$wpid" || { cat "$work/$row-c$c.out" >&2; die "wrk failed"; }
    local t1 n1=0 json
    t1=$(cpu_ticks "$server_pid")
    [ -z "$nats_pid" ] || n1=$(cpu_ticks "$nats_pid")
    json=$(sed -n 's/^WRK-JSON //p' "$work/$row-c$c.out")
    [ -n "$json" ] || { cat "$work/$row-c$c.out" >&2; die "no result from wrk"; }
    record row="$row" kind=closed connections="$c" wrk="$json" cpu_ticks=$((t1 - t0)) \
      nats_ticks=$((n1 - n0)) clk_tck="$clk_tck" rss_kib="$rss"
    local rps
    rps=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(int(d["requests"] / (d["duration_us"] / 1e6)))' "$json")
    say "[$row] $c connections: $rps requests/s"
    [ "$rps" -le "$best" ] || best=$rps
  done
  for pct in 50 90; do
    local rate=$((best * pct / 100))
    [ "$rate" -ge 1 ] || rate=1
    # vegeta loads its targets before it starts (read lazily, their decoding
    # would count in the latencies) and cycles through them: enough distinct
    # ones for the run, up to BENCH_OPEN_MAX_TARGETS.
    local count=$((rate * duration * 11 / 10 + 1000))
    [ "$count" -le "$open_max_targets" ] || count=$open_max_targets
    "$presign" --secret-file "$secret_file" --prefix "o$pct" --count "$count" \
      vegeta --url "$url" --out "$work/open.targets"
    "${on_load[@]}" "$vegeta" attack -format=json -targets="$work/open.targets" \
      -rate="$rate/1s" -duration="${duration}s" -root-certs="$work/tls.crt" -http2=false \
      -keepalive=true -timeout=10s -workers="$open_workers" -max-workers="$open_workers" >"$work/open.bin"
    "$vegeta" encode --to csv "$work/open.bin" >"$work/open.csv"
    local stats
    stats=$(python3 "$bench_dir/report.py" open-loop "$work/open.csv")
    record row="$row" kind=open percent="$pct" rate="$rate" targets="$count" stats="$stats"
    say "[$row] open loop at $pct% ($rate/s): $stats"
  done
  if [ "$profile" = 1 ] && [ "$row" = receiver-file ]; then
    say "[$row] perf profile at 64 connections"
    wrk_run 64 "$work/wrk-profile.tsv" "$work/profile-wrk.out" &
    local wpid=$!
    sleep 1
    # Flat profile (self time): release builds have no frame pointers, so
    # call graphs would be guesses.
    if perf record -F 1999 -p "$server_pid" -o "$work/perf.data" -- sleep "$((duration - 2 > 1 ? duration - 2 : 1))" \
      >"$work/perf-record.log" 2>&1; then
      perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 0.5 \
        2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//; s/ {2,}/  /g' >"$out_dir/perf-receiver.txt" || true
      grep -m1 'samples' "$work/perf-record.log" >>"$out_dir/perf-receiver.txt" || true
    else
      say "perf record failed: $(tail -n 3 "$work/perf-record.log")"
    fi
    wait "$wpid" || true
    record_extra "$work/profile-wrk.out"
  fi
  record row="$row" kind=after rss_kib="$(vm_kib "$server_pid" VmRSS)" hwm_kib="$(vm_kib "$server_pid" VmHWM)"
  if [ -n "$nats_pid" ]; then
    local stored_in=$stream
    # The peer's JetStream EventBus stream is always called "default".
    [ "$row" != peer ] || stored_in=default
    record row="$row" kind=stored messages="$(nats stream info "$stored_in" --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')"
  fi
  stop "$server_pid"
  if [ -n "$nats_pid" ]; then stop "$nats_pid"; nats_pid=''; fi
  nats_tls=()
}

# --- nats bench: JetStream's own publish rate, no HTTP ----------------------
nats_bench_row() { # nats_bench_row sync|async
  local row=nats-bench
  [ "$1" = sync ] || row=nats-bench-async
  say "[$row] starting"
  start_nats "$row"
  for c in $connections; do
    # sync: C clients, one publish in flight each; async: one client, C in
    # flight (a batch of C acknowledgements awaited together).
    local shape=(sync bench.js --clients "$c")
    [ "$1" = sync ] || shape=(async bench.js --clients 1 --batch "$c")
    # Calibrate on a short run, then publish about BENCH_DURATION seconds' worth.
    local probe msgs
    probe=$("${on_load[@]}" "$nats_cli" --server "$nats_url" bench js pub "${shape[@]}" --create --storage file --size 1KB \
      --msgs $((c * 200)) --dedup --purge --no-progress 2>&1 | python3 "$bench_dir/report.py" nats-bench)
    msgs=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1])["rps"]; c=int(sys.argv[3]); print(max(c * 200, int(r * float(sys.argv[2])) // c * c))' "$probe" "$duration" "$c")
    local n0 n1 stats
    n0=$(cpu_ticks "$nats_pid")
    stats=$("${on_load[@]}" "$nats_cli" --server "$nats_url" bench js pub "${shape[@]}" --storage file --size 1KB --msgs "$msgs" \
      --dedup --purge --no-progress 2>&1 | python3 "$bench_dir/report.py" nats-bench)
    n1=$(cpu_ticks "$nats_pid")
    record row="$row" kind=nats-bench connections="$c" msgs="$msgs" stats="$stats" \
      nats_ticks=$((n1 - n0)) clk_tck="$clk_tck"
    say "[$row] $c in flight: $stats"
  done
  stop "$nats_pid"; nats_pid=''
}

# --- forwarding: stored events -> forwarder -> bare HTTP sink ------------------
# The same events read twice: by a plain pull consumer that acknowledges each
# (what a team writes instead of a subscription) and by the forwarder, which
# signs each, POSTs it to a bare HTTP/1.1 sink on loopback and acknowledges it
# after the 204. Both consumers come from the subscription's one plan
# (bench-forward prepare) and exist before the events are stored.
forward_row() {
  say "[forward] $forward_events events, maxInFlight $forward_in_flight"
  start_nats forward
  local dir=$work/forward sink_port fops
  sink_port=$(free_port) fops=$(free_port)
  mkdir -p "$dir/secrets/bench-signing"
  printf 'whsec_%s' "$(openssl rand -base64 32)" >"$dir/secrets/bench-signing/secret"
  cat >"$dir/subscription.yaml" <<YAML
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookSubscription
metadata: {name: to-sink, namespace: bench}
spec:
  source: {stream: HOOKWARDEN_BENCH_FORWARD, subjectPrefix: hookwarden.bench.github}
  destination: {url: "http://127.0.0.1:$sink_port/hooks", timeoutSeconds: 10}
  signing: {secretRef: {name: bench-signing, key: secret}}
  delivery: {maxInFlight: $forward_in_flight}
YAML
  "$forward" prepare --nats-url "$nats_url" --subscription "$dir/subscription.yaml" \
    --baseline plain --count "$forward_events" || die "bench-forward prepare failed"
  local n0 n1 stats
  n0=$(cpu_ticks "$nats_pid")
  stats=$("${on_load[@]}" "$forward" read --nats-url "$nats_url" --subscription "$dir/subscription.yaml" \
    --baseline plain --count "$forward_events") || die "bench-forward read failed"
  n1=$(cpu_ticks "$nats_pid")
  record row=forward kind=plain stats="$stats" nats_ticks=$((n1 - n0)) clk_tck="$clk_tck"
  say "[forward] plain consumer: $stats"

  "${on_load[@]}" "$forward" sink --listen "127.0.0.1:$sink_port" --count "$forward_events" \
    >"$dir/sink.json" 2>"$dir/sink.log" &
  local sink_pid=$!; pids+=("$sink_pid")
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break; sleep 0.05; done
  n0=$(cpu_ticks "$nats_pid")
  # Default logging: the audit line of every attempt is part of the cost.
  "${on_server[@]}" "$receiver" forward --subscription "$dir/subscription.yaml" --secrets-dir "$dir/secrets" \
    --nats-url "$nats_url" --metrics-listen "127.0.0.1:$fops" >"$dir/forwarder.log" 2>&1 &
  local fpid=$! rss=0 now
  pids+=("$fpid")
  while kill -0 "$sink_pid" 2>/dev/null; do
    kill -0 "$fpid" 2>/dev/null || { cat "$dir/forwarder.log" >&2; die "the forwarder exited"; }
    now=$(vm_kib "$fpid" VmRSS 2>/dev/null || echo 0)
    [ "${now:-0}" -le "$rss" ] || rss=$now
    sleep 0.2
  done
  wait "$sink_pid" || { cat "$dir/sink.log" >&2; die "the sink did not get every event"; }
  # Every event acknowledged after its 204 (bounded wait for the last acks).
  local acked=0
  for _ in $(seq 1 100); do
    acked=$(nats consumer info HOOKWARDEN_BENCH_FORWARD hookwarden_bench_to-sink --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["ack_floor"]["stream_seq"])')
    [ "$acked" -lt "$forward_events" ] || break
    sleep 0.1
  done
  local t1
  t1=$(cpu_ticks "$fpid") n1=$(cpu_ticks "$nats_pid")
  record row=forward kind=forwarded stats="$(cat "$dir/sink.json")" cpu_ticks="$t1" \
    nats_ticks=$((n1 - n0)) clk_tck="$clk_tck" rss_kib="$rss" hwm_kib="$(vm_kib "$fpid" VmHWM)" \
    acked="$acked" in_flight="$forward_in_flight"
  say "[forward] forwarder: $(cat "$dir/sink.json"), acknowledged $acked"
  stop "$fpid"
  stop "$nats_pid"; nats_pid=''
}

# --- start to ready ------------------------------------------------------------
ready_row() {
  say "[ready] spawn -> /readyz 200, $ready_runs runs"
  start_nats ready
  local stats
  stats=$(python3 "$bench_dir/report.py" ready "$ready_runs" "$ops" "${receiver_cmd[@]}" --nats-url "$nats_url")
  record row=receiver-file kind=ready stats="$stats"
  say "[ready] $stats"
  stop "$nats_pid"; nats_pid=''
}

# --- what traces cost, off and on ----------------------------------------------
traces_cost_summary=''
traces_cost_row() {
  say "[traces-cost] callgrind: receiver-nospans, receiver (traces off), receiver-traced"
  PROFILE_TARGETS="receiver-nospans receiver receiver-traced" PROFILE_SYSCALLS=0 \
    PROFILE_OUT="$out_dir/profile-traces" "$bench_dir/profile.sh" >&2 ||
    die "[traces-cost] bench/profile.sh failed"
  traces_cost_summary=$out_dir/profile-traces/summary.txt
}

# --- the run ------------------------------------------------------------------
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for row in $rows; do
  case $row in
    bare | receiver-file | receiver-traced | receiver-memory) http_row "$row" ;;
    nats-bench) nats_bench_row sync ;;
    nats-bench-async) nats_bench_row async ;;
    forward) forward_row ;;
    traces-cost) traces_cost_row ;;
    peer)
      if "$bench_dir/peer.sh" available; then http_row peer
      else
        record row=peer kind=unavailable reason="$("$bench_dir/peer.sh" why)"
        say "[peer] not run: $("$bench_dir/peer.sh" why)"
      fi ;;
    *) die "unknown row '$row' (known: bare receiver-file receiver-traced receiver-memory nats-bench nats-bench-async peer forward traces-cost)" ;;
  esac
done
case " $rows " in *" receiver-file "*) ready_row ;; esac

python3 "$bench_dir/report.py" markdown "$results" \
  started="$started" duration="$duration" connections="$connections" \
  cpus_server="${cpus_server:-not pinned}" cpus_load="${cpus_load:-not pinned}" \
  perf="$out_dir/perf-receiver.txt" \
  open_workers="$open_workers" vegeta="$VEGETA_VERSION" >"$out"
if [ -n "$traces_cost_summary" ]; then
  {
    echo
    echo "## What traces cost (bench/profile.sh, instructions per delivery under callgrind)"
    echo
    echo '```'
    cat "$traces_cost_summary"
    echo '```'
  } >>"$out"
fi
say "report: $out"
cat "$out"
