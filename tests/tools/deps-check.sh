#!/usr/bin/env bash
# The crate layout of issue #17, checked on the resolved dependency trees
# (normal and build edges, each package's own feature resolution, as
# `cargo build -p` links it):
#   - hookwarden-operator links no HTTP server framework: no axum, no
#     governor, no HTTP/2 (h2), no hyper-util server (the receiver's server
#     stack) and not the receiver. Its operations port uses hyper's own
#     HTTP/1.1 connection (hyper is there through kube), and tower-http
#     comes with kube-client: both allowed.
#   - hookwarden-receiver links no kube crate at all: no kube, kube-core,
#     kube-derive, kube-client, kube-runtime, no tower-http, not the
#     operator. It reads manifests as hookwarden-crds' `Manifest`; the CRD
#     types behind that crate's `kube` feature are the operator's. The API
#     types of k8s-openapi (ObjectMeta, Condition, ResourceRequirements)
#     stay: they are plain serde structs.
#   - hookwarden-core, which both link, has neither and no hyper server.
#   - hookwarden-cli, like the receiver, links no kube crate.
# On a violation it names the entry and prints how it is reached (cargo tree
# --invert), and exits 1.
# Then it compiles the receiver and the CLI with their own feature
# resolution (`cargo check -p`): the workspace's builds and tests unify
# hookwarden-crds' `kube` feature on (the operator and the tests ask for
# it), so only this build shows that the kube-free side still compiles
# (the `cfg_attr`s of hookwarden-crds, and no custom resource type used in
# the receiver, core or the CLI).
#   tests/tools/deps-check.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

readonly server_stack=(axum axum-core governor h2 'hyper-util/server' hookwarden-receiver)
readonly kubernetes_client=(kube-client kube-runtime tower-http hookwarden-operator)
# What hookwarden-crds' `kube` feature brings: the custom resource derives.
readonly kube=(kube kube-core kube-derive)

failed=0

# forbid PACKAGE ENTRY...: an ENTRY is a crate name, or crate/feature.
forbid() {
  local package=$1
  shift
  local tree entry crate line
  tree=$(cargo tree --locked -e normal,build,features -p "$package" --prefix none)
  for entry in "$@"; do
    crate=${entry%%/*}
    if [[ $entry == */* ]]; then
      line="$crate feature \"${entry#*/}\""
    else
      line="$crate v"
    fi
    # A line of the tree starts with the crate (or its feature).
    if grep -q -- "^$line" <<<"$tree"; then
      failed=1
      printf 'deps-check: %s depends on %s, which issue #17 keeps out of it:\n' \
        "$package" "$entry" >&2
      cargo tree --locked -e normal,build,features -p "$package" -i "$crate" >&2
    fi
  done
}

forbid hookwarden-operator "${server_stack[@]}"
forbid hookwarden-receiver "${kubernetes_client[@]}" "${kube[@]}"
forbid hookwarden-core "${server_stack[@]}" "${kubernetes_client[@]}" "${kube[@]}" 'hyper/server'
forbid hookwarden-cli "${kube[@]}"

if ((failed)); then
  exit 1
fi

# Both in one invocation: they resolve alike (the CLI links the receiver).
cargo check --locked --quiet -p hookwarden-receiver -p hookwarden-cli
echo "deps-check: the operator links no HTTP server framework, the receiver and the CLI no kube crate, core neither; the kube-free build compiles" >&2
