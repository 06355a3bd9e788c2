#!/usr/bin/env bash
# Verifier micro-benchmarks (receiver/benches/verify.rs, criterion) next to
# `openssl speed -evp sha256` on the same machine as the ceiling: prints
# each verifier's throughput on 1 KiB and 64 KiB deliveries and the ratio
# of the HMAC-SHA256 verifiers (GitHub, generic) to openssl's SHA-256.
#
#   bench/micro.sh              # every verifier
#   bench/micro.sh github       # a criterion filter
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
results=$target_dir/criterion/verify
seconds=${OPENSSL_SECONDS:-3}

die() { echo "micro: error: $*" >&2; exit 1; }
command -v openssl >/dev/null || die "openssl is needed for the SHA-256 ceiling"

cd "$root"
echo "micro: cargo bench -p hookwarden-receiver --bench verify $*" >&2
cargo bench --locked -p hookwarden-receiver --bench verify -- "$@" >&2

# openssl's SHA-256 throughput in MB/s for a buffer of $1 bytes.
openssl_mbps() {
  openssl speed -seconds "$seconds" -evp sha256 -bytes "$1" 2>/dev/null \
    | awk '/^sha256/ { sub(/k$/, "", $2); printf "%.0f", $2 / 1000 }'
}

# Mean time per verification in ns, from criterion's estimates.
mean_ns() {
  local file=$results/$1/$2/new/estimates.json
  [[ -f $file ]] || return 1
  sed -E 's/^\{"mean":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.e+-]+).*/\1/' "$file"
}

# Body bytes of a benchmark, from criterion's record of its throughput.
bytes_of() {
  sed -E 's/.*"throughput":\{"Bytes":([0-9]+)\}.*/\1/' "$results/$1/$2/new/benchmark.json"
}

printf '\n%-22s %12s %12s %12s %12s\n' verifier "1KiB µs" "1KiB MB/s" "64KiB µs" "64KiB MB/s"
for dir in "$results"/*/; do
  name=$(basename "$dir")
  [[ $name == report ]] && continue
  row=$(printf '%-22s' "$name")
  for size in 1KiB 64KiB; do
    if ns=$(mean_ns "$name" "$size"); then
      bytes=$(bytes_of "$name" "$size")
      row+=$(awk -v ns="$ns" -v b="$bytes" 'BEGIN { printf " %12.2f %12.0f", ns / 1000, b / ns * 1000 }')
    else
      row+=$(printf ' %12s %12s' - -)
    fi
  done
  echo "$row"
done

ssl_1k=$(openssl_mbps 1024)
ssl_64k=$(openssl_mbps 65536)
echo
echo "openssl speed -evp sha256 ($(openssl version | cut -d' ' -f1-2)): 1 KiB ${ssl_1k} MB/s, 64 KiB ${ssl_64k} MB/s"
for name in github generic-hmac-sha256; do
  for size in 1KiB 64KiB; do
    ns=$(mean_ns "$name" "$size") || continue
    bytes=$(bytes_of "$name" "$size")
    ceiling=$ssl_64k
    [[ $size == 1KiB ]] && ceiling=$ssl_1k
    awk -v ns="$ns" -v b="$bytes" -v c="$ceiling" -v n="$name" -v s="$size" 'BEGIN {
      mbps = b / ns * 1000
      printf "%s %s: %.0f MB/s = %.0f%% of openssl SHA-256%s\n", n, s, mbps, 100 * mbps / c,
        (s == "64KiB" ? (mbps >= 0.8 * c ? " (target: within 20%: met)" : " (target: within 20%: NOT met)") : "")
    }'
  done
done
