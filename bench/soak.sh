#!/usr/bin/env bash
# Soak versions of the resilience tests: the same tests `make test` runs
# (receiver/tests/it/resilience.rs and abuse.rs, against the real receiver and a
# real nats-server), with HOOKWARDEN_SOAK_SCALE raised so that
#   - nats-server is killed and restarted SOAK_SCALE times under one
#     unbroken load,
#   - the receiver is killed mid-delivery and restarted SOAK_SCALE times,
#     each time followed by the provider's retries,
#   - the spray comes from 2,000 x SOAK_SCALE distinct source addresses
#     (past the receiver's 100,000 rate-limit buckets from SOAK_SCALE 50),
# and every check of the bounded version still holds: each 2xx stored exactly
# once, nothing refused stored, recovery without restart, memory bounded.
#
#   bench/soak.sh                  # SOAK_SCALE=60 (about 5 minutes)
#   SOAK_SCALE=200 bench/soak.sh   # longer
#
# Prints each test's own summary line and the wall time; exits non-zero on
# any failure. Not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scale=${SOAK_SCALE:-60}
case $scale in '' | *[!0-9]* | 0) echo "soak: SOAK_SCALE must be a positive integer" >&2; exit 2 ;; esac

tests/tools/install.sh >&2
echo "soak: building the receiver's tests (release)" >&2
cargo test --release --locked -p hookwarden-receiver --test it --no-run >&2

start=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "soak: HOOKWARDEN_SOAK_SCALE=$scale" >&2
status=0
HOOKWARDEN_SOAK_SCALE=$scale cargo test --release --locked -p hookwarden-receiver \
  --test it -- resilience:: abuse:: --nocapture --test-threads 1 >"$log" 2>&1 || status=$?

echo "## Soak, SOAK_SCALE=$scale ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD))"
echo
grep -E '^(test .* \.\.\. |.*(killed|spray from|frozen:|limits) .*|test result: .*)' "$log" | sed 's/^/    /' || true
echo
echo "wall time: $((SECONDS - start)) s; result: $([ "$status" = 0 ] && echo passed || echo "FAILED (exit $status)")"
if [ "$status" != 0 ]; then
  tail -n 60 "$log" >&2
fi
exit "$status"
