#!/usr/bin/env bash
# `make demo`: the main job, end to end, on this machine.
#
# A real nats-server with JetStream, a standalone hookwarden-receiver serving
# HTTPS from a WebhookEndpoint manifest (the same file `kubectl apply` takes),
# a consumer subscribed to the endpoint's NATS subjects, correctly signed
# GitHub deliveries arriving there, and forged, replayed, oversized and
# out-of-network ones refused with their reason codes. Exits non-zero if any
# answer or the stored events are not what they must be.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/tools/lib.sh
. "$here/lib.sh"
cd "$here/../.."

"$here/deps.sh"
"$here/install.sh" nats-server nats
say "building hookwarden-receiver and the hookwarden CLI"
cargo build --quiet --locked -p hookwarden-receiver -p hookwarden-cli
# (where cargo put them: CARGO_TARGET_DIR when set)
receiver=${CARGO_TARGET_DIR:-target}/debug/hookwarden-receiver
hookwarden=${CARGO_TARGET_DIR:-target}/debug/hookwarden

work=$(mktemp -d -t hookwarden-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
failures=0
expect() { # expect WHAT WANTED GOT
  if [ "$2" = "$3" ]; then printf '   ok   %-58s %s\n' "$1" "$3"
  else printf '   FAIL %-58s wanted %s, got %s\n' "$1" "$2" "$3"; failures=$((failures + 1)); fi
}

# --- NATS with JetStream --------------------------------------------------
"$(tool_path nats-server)" --addr 127.0.0.1 --port -1 --jetstream --store_dir "$work/js" \
  --ports_file_dir "$work" >"$work/nats-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ls "$work"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
nats_url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$work"/*.ports 2>/dev/null || true)
[ -n "$nats_url" ] || { cat "$work/nats-server.log" >&2; die "nats-server did not start"; }
nats() { "$(tool_path nats)" --server "$nats_url" "$@"; }

# --- the endpoint: manifest, secret, certificate ----------------------------
secret=$("$hookwarden" secret generate --format hex | tr -d '\n')
mkdir -p "$work/secrets/github-webhook"
printf '%s' "$secret" >"$work/secrets/github-webhook/secret"
cat >"$work/endpoint.yaml" <<YAML
apiVersion: hookwarden.dev/v1alpha1
kind: WebhookEndpoint
metadata: {name: github, namespace: demo}
spec:
  provider: github
  secretRefs: [{name: github-webhook, key: secret}]
  # Only GitHub's published hook ranges (its meta API), kept current by the
  # receiver; the demo's requests come through a "proxy" on 127.0.0.1 that
  # says which client it forwards for.
  allowedSources: [{provider: github, service: hooks}]
  trustedProxies: [127.0.0.1/32]
YAML

# --- GitHub's published hook ranges -----------------------------------------
# The receiver keeps each list it needs in --source-ranges-dir (one CIDR per
# line), fetches it again every 6 h, and starts from the kept copy when the
# provider cannot be reached. `hookwarden ranges fetch` writes the same file.
mkdir -p "$work/ranges"
ranges_file="$work/ranges/github-hooks.txt"
bold "GitHub's hook ranges (spec.allowedSources: [{provider: github}])"
if "$hookwarden" ranges fetch github --output "$ranges_file" 2>"$work/ranges.err"; then
  echo "fetched from https://api.github.com/meta: $(grep -vc '^#' "$ranges_file") ranges"
else
  # No internet here: a kept copy of GitHub's list, as a receiver holds it
  # after its last good fetch (the hooks ranges of the meta API, 2026).
  echo "api.github.com cannot be reached ($(tail -n 1 "$work/ranges.err")); using a kept copy"
  printf '%s\n' "# source ranges of GitHub's hooks (kept copy)" \
    192.30.252.0/22 185.199.108.0/22 140.82.112.0/20 143.55.64.0/20 >"$ranges_file"
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

port=$(free_port) ops=$(free_port)
bold "hookwarden-receiver serve (HTTPS on 127.0.0.1:$port, NATS $nats_url)"
"$receiver" serve --endpoint "$work/endpoint.yaml" --secrets-dir "$work/secrets" \
  --nats-url "$nats_url" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$ops" \
  --tls-mode terminate --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  --source-ranges-dir "$work/ranges" >"$work/receiver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ops/readyz" >/dev/null 2>&1 && break; sleep 0.1
done
curl -fsS "http://127.0.0.1:$ops/readyz" >/dev/null || { cat "$work/receiver.log" >&2; die "receiver not ready"; }
echo "ready: $(curl -fsS "http://127.0.0.1:$ops/readyz")"

# --- a consumer of the endpoint's subjects ---------------------------------
# A JetStream consumer on the endpoint's stream: it gets every stored event
# exactly once. (A plain core-NATS subscription would also see a provider's
# redelivery, which JetStream drops as a duplicate but still routes.)
# (The binary itself in the background, not the shell function: $! must be
# its PID so the cleanup stops it.)
"$(tool_path nats)" --server "$nats_url" sub 'hookwarden.demo.github.>' \
  --stream HOOKWARDEN_DEMO_GITHUB --all --count 2 >"$work/consumer.out" 2>&1 &
consumer=$!
pids+=("$consumer")
sleep 0.5

# --- deliveries -------------------------------------------------------------
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$2" | sed 's/^.*= //'; }
# (bodies go through files: a 1 MB body does not fit on a command line)
deliver() { # deliver BODY SIGNATURE DELIVERY-ID EVENT CLIENT-IP -> "status reason"
  printf '%s' "$1" >"$work/body"
  rm -f "$work/answer.json"
  # HTTP/1.1, as providers deliver (HTTP/2 works too: see receiver/tests/it/tls.rs).
  curl -sS --http1.1 --cacert "$work/tls.crt" -o "$work/answer.json" -w '%{http_code}' \
    "https://localhost:$port/" -H 'Content-Type: application/json' \
    -H "X-GitHub-Event: $4" -H "X-GitHub-Delivery: $3" -H "X-Forwarded-For: $5" \
    ${2:+-H "X-Hub-Signature-256: sha256=$2"} --data-binary "@$work/body" || true
  printf ' %s' "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("error") or d.get("status"))' "$work/answer.json" 2>/dev/null)"
}
# Signed exactly as GitHub signs, by the hookwarden CLI.
send() { # send BODY DELIVERY-ID EVENT CLIENT-IP -> "status reason"
  printf '%s' "$1" >"$work/body"
  "$hookwarden" send --provider github --secret-file "$work/secrets/github-webhook/secret" \
    --url "https://localhost:$port/" --cacert "$work/tls.crt" --body "$work/body" \
    --event "$3" --delivery-id "$2" --header "X-Forwarded-For: $4" \
    --header 'Content-Type: application/json' >"$work/send.out" 2>&1 || true
  python3 - "$work/send.out" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
status = re.search(r"\b([1-5]\d\d)\b", text.splitlines()[0] if text else "")
body = text[text.find("{"):] if "{" in text else "{}"
try:
    answer = json.loads(body)
except ValueError:
    answer = {}
print((status.group(1) if status else "000"), answer.get("error") or answer.get("status") or "")
PY
}
github=140.82.112.5
push='{"ref":"refs/heads/main","commits":[{"id":"1a2b3c"}]}'
issue='{"action":"opened","issue":{"number":42}}'

bold "signed deliveries from GitHub's network"
expect "push, signed (hookwarden send)"                 "200 stored" "$(send "$push" d-1 push $github)"
expect "the same push redelivered (same delivery id)"   "200 stored" "$(send "$push" d-1 push $github)"
expect "issues, signed"                                "200 stored" "$(send "$issue" d-2 issues $github)"

bold "forged and unwanted requests"
expect "forged signature"                    "401 signature_mismatch" "$(deliver "$push" "$(sign "$push" not-the-secret)" d-3 push $github)"
expect "no signature"                        "401 signature_missing" "$(deliver "$push" "" d-4 push $github)"
expect "body changed after signing"          "401 signature_mismatch" "$(deliver "${push/main/evil}" "$(sign "$push" "$secret")" d-5 push $github)"
expect "signed, but from outside GitHub"     "403 ip_not_allowed" "$(send "$push" d-6 push 198.51.100.7)"
big=$(head -c 1100000 /dev/zero | tr '\0' x)
expect "1.1 MB body (cap 1 MiB)"             "413 body_too_large" "$(deliver "$big" "$(sign "$big" "$secret")" d-7 push $github)"
unset big
plain=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" -d '{}' || true)
expect "plain HTTP to the HTTPS port"        "000" "$plain"

bold "what the consumer of hookwarden.demo.github.> received"
for _ in $(seq 1 50); do kill -0 "$consumer" 2>/dev/null || break; sleep 0.1; done
sed -n '/Received JetStream message/,$p' "$work/consumer.out"
stored=$(nats stream info HOOKWARDEN_DEMO_GITHUB --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')
expect "events stored in stream HOOKWARDEN_DEMO_GITHUB" 2 "$stored"
expect "events the consumer received" 2 "$(grep -c 'Received JetStream message' "$work/consumer.out" || true)"

bold "audit log (one JSON line per request; no secret, no signature)"
grep '"hookwarden::audit"' "$work/receiver.log" | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    outcome, reason = d.get("outcome"), d.get("reason") or ""
    print("   %-10s %-22s client=%s delivery=%s seq=%s" % (outcome, reason, d.get("client_ip"), d.get("delivery_id"), d.get("stream_sequence")))'
if grep -q "$secret" "$work/receiver.log"; then expect "secret absent from the log" absent present; fi

bold "metrics (http://127.0.0.1:$ops/metrics)"
curl -fsS "http://127.0.0.1:$ops/metrics" |
  grep -E '^hookwarden_(requests_total|refusals_total|source_range_list_age_seconds)' | sed 's/^/   /'

echo
if [ "$failures" -ne 0 ]; then die "$failures check(s) failed; receiver log: kept in the output above"; fi
echo "OK: signed deliveries stored once and delivered on NATS; forged and unwanted ones refused."
