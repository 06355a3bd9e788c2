#!/usr/bin/env bash
# `make test`: sets up everything on a fresh machine and passes every test.
#   1. Debian packages and the pinned upstream tools (cached after the first run)
#   2. cargo fmt --check, clippy -D warnings, the dependency layout and no
#      module cycle (fail fast, before any service starts)
#   3. the local control plane (left running if it already was), then every test
# Each test starts its own nats-server; the control plane is shared, with a
# namespace per test.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

step() { printf '\n==> %s\n' "$*" >&2; }
start=$SECONDS

step "system packages"
"$here/deps.sh"
step "upstream tools (tests/tools/versions.env)"
"$here/install.sh"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Issue #17: the operator links no HTTP server, the receiver no Kubernetes
# client (the resolved trees, not the manifests).
step "dependency layout"
"$here/deps-check.sh"
# The fuzz targets are their own workspace (nightly only to run): checked
# here on stable so an API change cannot break `bench/fuzz` unnoticed.
step "cargo clippy (fuzz targets)"
CARGO_TARGET_DIR=${HOOKWARDEN_CACHE:-$HOME/.cache/hookwarden}/fuzz/check-target \
  cargo clippy --manifest-path receiver/fuzz/Cargo.toml --all-targets --locked -- -D warnings
step "module cycles (tests/tools/module-cycles.py)"
python3 "$here/module-cycles.py" --self-test
python3 "$here/module-cycles.py"

step "local Kubernetes control plane"
if "$here/cluster.sh" status; then
  echo "hookwarden: using the control plane that is already up" >&2
else
  trap '"$here/cluster.sh" down' EXIT
  "$here/cluster.sh" up >/dev/null
fi
export HOOKWARDEN_KUBECONFIG=${HOOKWARDEN_KUBECONFIG:-$("$here/cluster.sh" env | sed 's/^export KUBECONFIG=//')}

step "cargo test"
cargo test --workspace --locked
step "done in $((SECONDS - start))s"
