#!/usr/bin/env bash
# Regenerates the Go wrapper modules in tests/tools/go/ from versions.env.
# Each wrapper is a tiny module whose go.mod names the upstream commands as
# `tool` dependencies, so `go build` resolves them with a committed go.sum.
# Kubernetes and etcd need this: their own go.mod files use replace directives
# to local staging paths, which Go ignores for dependencies, so we pin each
# staging module to the release that matches.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

write_module() { # dir module-path go.mod-body
  local dir=$here/go/$1
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module hookwarden.dev/tools/%s\n\ngo 1.26.0\n\n%s\n' "$1" "$2" >"$dir/go.mod"
  (cd "$dir" && go mod tidy)
  echo "updated $dir"
}

write_module nats-server "tool github.com/nats-io/nats-server/v2

require github.com/nats-io/nats-server/v2 $NATS_SERVER_VERSION"

write_module natscli "tool github.com/nats-io/natscli/nats

require github.com/nats-io/natscli $NATSCLI_VERSION"

write_module etcd "tool go.etcd.io/etcd/server/v3

require go.etcd.io/etcd/server/v3 $ETCD_VERSION"

write_module kwok "tool sigs.k8s.io/kwok/cmd/kwok

require sigs.k8s.io/kwok $KWOK_VERSION"

write_module helm "tool helm.sh/helm/${HELM_VERSION%%.*}/cmd/helm

require helm.sh/helm/${HELM_VERSION%%.*} $HELM_VERSION"

write_module vegeta "tool github.com/tsenart/vegeta/v12

require github.com/tsenart/vegeta/v12 $VEGETA_VERSION"

write_module argo-events "tool github.com/argoproj/argo-events/cmd

require github.com/argoproj/argo-events $ARGO_EVENTS_VERSION"

# Kubernetes: pin every k8s.io staging module to v0.<minor>.<patch>.
staging_version=v0.${KUBERNETES_VERSION#v1.}
replaces=$(curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod" |
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p')
[ -n "$replaces" ] || { echo "could not read staging modules of k8s.io/kubernetes $KUBERNETES_VERSION" >&2; exit 1; }
write_module kubernetes "tool (
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
)

require k8s.io/kubernetes $KUBERNETES_VERSION

replace (
$replaces
)"
