#!/usr/bin/env bash
# `bench/profile.sh`: what one delivery costs the receiver, in numbers that do
# not depend on how busy the machine is, and which of our functions cost
# what. The real release binary (and the bare axum+rustls baseline,
# bench-bare-server) runs under `valgrind --tool=callgrind` with a real
# nats-server; after a warm-up the counters are zeroed, then exactly
# PROFILE_DELIVERIES distinct signed deliveries are sent over
# PROFILE_CONNECTIONS keep-alive HTTPS connections (bench/send.py, which
# fails unless every answer is 2xx), and the counters are dumped. Printed
# per delivery: instructions (Ir), calls to malloc/calloc/realloc, and, from
# a second run outside valgrind, system calls (`strace -f -c`, timing
# dependent: a guide, not a count to compare to the last digit).
#
#   bench/profile.sh                      # receiver and bare
#   PROFILE_TARGETS=receiver bench/profile.sh
#   PROFILE_TARGETS="receiver-nospans receiver receiver-traced" bench/profile.sh
#
# Targets: receiver (the shipped binary, traces off: the default), bare
# (bench-bare-server: rustls and axum only), receiver-traced (the same
# binary with traces on: every request sampled, `always_on`, exported over
# OTLP/HTTP to a Jaeger v2 on loopback; the export thread's instructions
# are counted, Jaeger's are not), receiver-nospans (the receiver built with
# the `bench-no-spans` feature: the exported spans compiled out, so
# receiver minus receiver-nospans is what traces cost when off).
#
# Knobs: PROFILE_DELIVERIES (2000), PROFILE_WARMUP (200), PROFILE_CONNECTIONS
# (16), PROFILE_TARGETS ("receiver bare"), PROFILE_SYSCALLS (1: the strace
# run), BENCH_BIN_DIR (prebuilt hookwarden-receiver, bench-bare-server and
# bench-presign, and hookwarden-receiver-nospans for that target; else built
# with `cargo build --release`), PROFILE_OUT
# (target/bench/profile). Outputs in PROFILE_OUT: <target>.callgrind (open
# with kcachegrind or callgrind_annotate), <target>-inclusive.txt (the call
# graph's inclusive cost by function) and summary.txt.
set -euo pipefail
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)
# shellcheck source=tests/tools/lib.sh
. "$root/tests/tools/lib.sh"
cd "$root"

deliveries=${PROFILE_DELIVERIES:-2000} warmup=${PROFILE_WARMUP:-200}
connections=${PROFILE_CONNECTIONS:-16} targets=${PROFILE_TARGETS:-receiver bare}
syscalls=${PROFILE_SYSCALLS:-1}
out=${PROFILE_OUT:-$root/target/bench/profile}
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
"$root/tests/tools/install.sh" nats-server
nats_server=$(tool_path nats-server)
case " $targets " in *" receiver-traced "*) "$root/tests/tools/install.sh" jaeger ;; esac

prebuilt=${BENCH_BIN_DIR:-}
if [ -z "$prebuilt" ]; then
  release=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
  mkdir -p "$out/bin"
  case " $targets " in
    *" receiver-nospans "*)
      # Built first and copied away: the default build below replaces it.
      say "building hookwarden-receiver with the bench-no-spans feature (release)"
      cargo build --quiet --release --locked -p hookwarden-receiver --bin hookwarden-receiver \
        --features bench-no-spans
      cp "$release/hookwarden-receiver" "$out/bin/hookwarden-receiver-nospans" ;;
  esac
  say "building hookwarden-receiver and the bench tools (release)"
  cargo build --quiet --release --locked -p hookwarden-receiver --bin hookwarden-receiver \
    -p hookwarden-bench --bin bench-bare-server --bin bench-presign
  for bin in hookwarden-receiver bench-bare-server bench-presign; do cp "$release/$bin" "$out/bin/"; done
  prebuilt=$out/bin
fi
receiver=$prebuilt/hookwarden-receiver bare=$prebuilt/bench-bare-server presign=$prebuilt/bench-presign
nospans=$prebuilt/hookwarden-receiver-nospans
for bin in "$receiver" "$bare" "$presign"; do [ -x "$bin" ] || die "no $bin"; done
case " $targets " in *" receiver-nospans "*) [ -x "$nospans" ] || die "no $nospans" ;; esac

work=$out/work
rm -rf "$work"; mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"/js "$work"/*.tsv
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
on_server=()
# shellcheck source=bench/jaeger.sh
. "$bench_dir/jaeger.sh"
port=$(free_port) ops=$(free_port)
url=https://127.0.0.1:$port/

# The same endpoint, secret and certificate as bench/run.sh's rows.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
mkdir -p "$work/secrets/github-webhook"
openssl rand -hex 32 | tr -d '\n' >"$work/secrets/github-webhook/secret"
cat >"$work/endpoint.yaml" <<YAML
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {name: github, namespace: bench}
spec:
  provider: github
  secretRefs: [{name: github-webhook, key: secret}]
  rateLimit:
    global: {requestsPerSecond: 10000000, burst: 10000000}
    perSourceIp: {requestsPerSecond: 10000000, burst: 10000000}
YAML
per_run=$((warmup + deliveries))

send() { # send LINES SKIP COUNT
  python3 "$bench_dir/send.py" --url "$url" --cacert "$work/tls.crt" --template "$work/body.tmpl" \
    --lines "$1" --skip "$2" --count "$3" --connections "$connections" >/dev/null
}
start() { # start TARGET PREFIX...: the server of TARGET, run by PREFIX (valgrind, or nothing)
  local target=$1; shift
  case $target in
    bare)
      "$@" "$bare" --listen "127.0.0.1:$port" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
        >"$work/$target.log" 2>&1 &
      server_pid=$!; pids+=("$server_pid") ;;
    receiver | receiver-nospans | receiver-traced)
      local binary=$receiver traces=()
      [ "$target" != receiver-nospans ] || binary=$nospans
      if [ "$target" = receiver-traced ]; then
        [ -n "$jaeger_otlp" ] || start_jaeger "$work/jaeger"
        # Batches every 200 ms: the spans of the measured deliveries are
        # exported (and counted) before the counters are dumped.
        traces=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$jaeger_otlp" OTEL_TRACES_SAMPLER=always_on
          OTEL_BSP_SCHEDULE_DELAY=200)
      fi
      rm -rf "$work/js"
      "$nats_server" --addr 127.0.0.1 --port -1 --jetstream --store_dir "$work/js" \
        --ports_file_dir "$work" >"$work/nats-server.log" 2>&1 &
      nats_pid=$!; pids+=("$nats_pid")
      local nats_url=''
      for _ in $(seq 1 100); do
        nats_url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$work"/nats-server*.ports 2>/dev/null || true)
        [ -z "$nats_url" ] || break; sleep 0.1
      done
      [ -n "$nats_url" ] || die "nats-server did not start"
      env "${traces[@]}" "$@" "$binary" serve --endpoint "$work/endpoint.yaml" --secrets-dir "$work/secrets" \
        --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$ops" --tls-mode terminate \
        --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" --max-in-flight 4096 \
        --max-connections-per-source 100000 --max-body-reads-per-source 100000 \
        --nats-url "$nats_url" >"$work/$target.log" 2>&1 &
      server_pid=$!; pids+=("$server_pid") ;;
  esac
  # Under valgrind, start takes seconds.
  for _ in $(seq 1 600); do
    curl -s -o /dev/null --cacert "$work/tls.crt" "$url" -d '{}' && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/$target.log" >&2; die "$target exited"; }
    sleep 0.1
  done
  cat "$work/$target.log" >&2; die "$target did not answer on $url"
}
stop() { # stop: the server (TERM, as Kubernetes does), then nats-server
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$server_pid" 2>/dev/null || true
  if [ -n "${nats_pid:-}" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; nats_pid=''; fi
}

summary=$out/summary.txt
: >"$summary"
run=0
for target in $targets; do
  for mode in callgrind strace; do
    [ "$mode" = callgrind ] || [ "$syscalls" = 1 ] || continue
    run=$((run + 1))
    # Distinct delivery ids for every run: JetStream would drop repeats.
    lines=$work/$target-$mode.tsv
    "$presign" --secret-file "$work/secrets/github-webhook/secret" --prefix "$(printf 'p%04d' "$run")" \
      --count "$per_run" wrk --template-out "$work/body.tmpl" --lines-out "$lines"
    say "[$target] $mode: $warmup warm-up, then $deliveries deliveries at $connections connections"
    if [ "$mode" = callgrind ]; then
      rm -f "$out/$target.callgrind"*
      start "$target" valgrind --tool=callgrind --fair-sched=yes \
        --callgrind-out-file="$out/$target.callgrind.%p"
      send "$lines" 0 "$warmup"
      callgrind_control -z "$server_pid" >/dev/null
      send "$lines" "$warmup" "$deliveries"
      # The traced receiver's last batch of spans leaves within 200 ms
      # (seconds under valgrind).
      [ "$target" != receiver-traced ] || sleep 3
      callgrind_control -d "$server_pid" >/dev/null
      stop
      # The dump holds what ran between -z and -d; the final one (at exit) is dropped.
      dump=$(ls "$out/$target.callgrind.$server_pid".* 2>/dev/null | head -1)
      [ -n "$dump" ] || die "no callgrind dump for $target"
      mv "$dump" "$out/$target.callgrind"; rm -f "$out/$target.callgrind.$server_pid"*
      callgrind_annotate --inclusive=yes --threshold=99 "$out/$target.callgrind" >"$out/$target-inclusive.txt"
      python3 - "$out/$target.callgrind" "$deliveries" "$target" >>"$summary" <<'PY'
import re, sys
path, count, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
alloc = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"}
names, total, calls, fn, cfn = {}, 0, 0, None, None
def name(ref):
    m = re.match(r"\((\d+)\)(?: (.*))?", ref)
    if not m:
        return ref
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), "")
with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
        if line.startswith("fn="):
            fn = name(line[3:].strip())
        elif line.startswith("cfn="):
            cfn = name(line[4:].strip())
        elif line.startswith("calls=") and cfn in alloc and fn not in alloc:
            calls += int(line[6:].split()[0])
        elif line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
print(f"{target}: {total / count:,.0f} Ir/delivery, {calls / count:.1f} allocations/delivery "
      f"({count} deliveries, {total:,} Ir, {calls:,} allocation calls)")
PY
    else
      command -v strace >/dev/null || { say "no strace: syscalls not counted"; continue; }
      start "$target"
      send "$lines" 0 "$warmup"
      strace -f -c -o "$work/$target.strace" -p "$server_pid" &
      strace_pid=$!
      sleep 1
      send "$lines" "$warmup" "$deliveries"
      kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
      stop
      python3 - "$work/$target.strace" "$deliveries" "$target" >>"$summary" <<'PY'
import sys
path, count, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows, total = {}, 0
for line in open(path, encoding="utf-8"):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
        rows[parts[-1]] = int(parts[3])
    elif parts and parts[-1] == "total":
        total = int(parts[2]) if len(parts) >= 4 else 0
total = sum(rows.values())
top = ", ".join(f"{n} {c / count:.2f}" for n, c in sorted(rows.items(), key=lambda r: -r[1])[:6])
print(f"{target}: {total / count:.2f} syscalls/delivery (strace -f -c, timing dependent): {top}")
PY
    fi
  done
done
# What traces cost when off (and on): the receiver against the build
# without the spans, when both ran.
python3 - "$summary" >>"$summary" <<'PY'
import re, sys
ir = {}
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"(\S+): ([\d,]+) Ir/delivery", line)
    if m:
        ir[m.group(1)] = int(m.group(2).replace(",", ""))
base = ir.get("receiver-nospans")
for target in ("receiver", "receiver-traced"):
    if base and target in ir:
        print(f"{target} - receiver-nospans: {ir[target] - base:+,} Ir/delivery "
              f"({(ir[target] - base) / base:+.2%})")
PY
cat "$summary"
