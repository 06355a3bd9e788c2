# Shared by the bench scripts that start and measure processes of their own
# (bench/pool-scale.sh, bench/r3.sh); sourced after tests/tools/lib.sh.
# shellcheck shell=bash

# bench_work NAME: a work directory `$work` (hookwarden-NAME-XXXXXX) and a
# list `pids`; at exit every process in `pids` is stopped and the directory
# removed (kept with KEEP_WORK=1).
bench_work() {
  work=$(mktemp -d -t "hookwarden-$1-XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then say "work dir kept: $work"; else rm -rf "$work"; fi
}

clk_tck=$(getconf CLK_TCK)
# utime + stime of process $1, in clock ticks (clk_tck a second).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
