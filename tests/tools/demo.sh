#!/usr/bin/env bash
# `make demo`: the main job, end to end, on this machine.
# Today: a real nats-server with JetStream, the stream layout endpoints use,
# a delivery stored once although it arrives twice (its delivery id is the
# Nats-Msg-Id), and the receiver checking an endpoint manifest. The HTTPS
# receiver in front of it lands with issue #3 and extends this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/tools/lib.sh
. "$here/lib.sh"
cd "$here/../.."

"$here/deps.sh"
"$here/install.sh" nats-server nats
say "building hookwarden-receiver"
cargo build --quiet --locked -p hookwarden-receiver

work=$(mktemp -d -t hookwarden-demo-XXXXXX)
nats_pid=
cleanup() {
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$(tool_path nats-server)" --addr 127.0.0.1 --port -1 --jetstream --store_dir "$work/js" \
  --ports_file_dir "$work" >"$work/nats-server.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 100); do ls "$work"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$work"/*.ports 2>/dev/null || true)
[ -n "$url" ] || { cat "$work/nats-server.log" >&2; die "nats-server did not start"; }
nats() { "$(tool_path nats)" --server "$url" "$@"; }
say "nats-server with JetStream at $url"

echo; echo "== the endpoint manifest (same file for kubectl apply and the standalone receiver)"
target/debug/hookwarden-receiver check --endpoint examples/github.yaml

echo; echo "== a stream for namespace 'demo', endpoint 'github'"
nats stream add HOOKWARDEN_DEMO_GITHUB --subjects 'hookwarden.demo.github.>' --storage file \
  --dupe-window 2m --defaults >/dev/null
nats stream ls

echo; echo "== one delivery, delivered twice by the provider (same delivery id), and a second one"
nats pub hookwarden.demo.github.push '{"ref":"refs/heads/main"}' -H Nats-Msg-Id:github-delivery-1 -H X-GitHub-Event:push --jetstream
nats pub hookwarden.demo.github.push '{"ref":"refs/heads/main"}' -H Nats-Msg-Id:github-delivery-1 -H X-GitHub-Event:push --jetstream
nats pub hookwarden.demo.github.issues '{"action":"opened"}' -H Nats-Msg-Id:github-delivery-2 -H X-GitHub-Event:issues --jetstream

echo; echo "== what the stream holds for consumers of hookwarden.demo.github.>"
stored=$(nats stream info HOOKWARDEN_DEMO_GITHUB --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')
for seq in $(seq 1 "$stored"); do nats stream get HOOKWARDEN_DEMO_GITHUB "$seq"; done
[ "$stored" = 2 ] || die "expected 2 stored deliveries, found $stored"
echo "OK: 3 publishes, $stored deliveries stored (the retry was de-duplicated)"
