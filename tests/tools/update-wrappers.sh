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

proxy=$(go env GOPROXY | cut -d, -f1)
wanted=("$@")
want() { [ ${#wanted[@]} -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qxF "$1"; }

# write_module DIR GO.MOD-BODY [MODULE-PATH]: a fresh go.mod/go.sum in
# tests/tools/go/DIR (other files there, such as sources, are kept).
write_module() {
  want "$1" || return 0
  local dir=$here/go/$1
  mkdir -p "$dir"; rm -f "$dir/go.mod" "$dir/go.sum"
  printf 'module %s\n\ngo 1.26.0\n\n%s\n' "${3:-hookwarden.dev/tools/$1}" "$2" >"$dir/go.mod"
  (cd "$dir" && go mod tidy)
  echo "updated $dir"
}

# The replace directives of an upstream go.mod that point at released modules
# (not at local paths), one a line, for a wrapper to repeat: Go ignores a
# dependency's replaces, so without them the wrapper would build other code.
upstream_replaces() { # module version
  curl -fsS "$proxy/$1/@v/$2.mod" |
    awk '/^replace \($/ { block = 1; next } block && /^\)/ { block = 0; next }
      /^replace / { sub(/^replace /, ""); if ($0 !~ /=> \./) print "\t" $0; next }
      block && /=>/ && $0 !~ /=> \./ { print }'
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

write_module actionlint "tool github.com/rhysd/actionlint/cmd/actionlint

require github.com/rhysd/actionlint $ACTIONLINT_VERSION"

write_module promtool "tool github.com/prometheus/prometheus/cmd/promtool

require github.com/prometheus/prometheus $PROMETHEUS_VERSION"

# Jaeger's go.mod replaces a module (sarama), which the wrapper repeats.
if want jaeger; then
  write_module jaeger "tool github.com/jaegertracing/jaeger/cmd/jaeger

require github.com/jaegertracing/jaeger $JAEGER_VERSION

replace (
$(upstream_replaces github.com/jaegertracing/jaeger "$JAEGER_VERSION")
)"
fi

write_module vegeta "tool github.com/tsenart/vegeta/v12

require github.com/tsenart/vegeta/v12 $VEGETA_VERSION"

# Traefik: its go.mod replaces modules with forks, which the wrapper repeats
# (Go ignores a dependency's replaces). From v3.7 on it also requires
# github.com/traefik/traefik/dynamic/ext, a module that exists only inside its
# tree (replaced by ./pkg/config/dynamic/ext there) and that the proxy does not
# serve: two empty extension-point types, written here as upstream has them.
if want traefik; then
  traefik_mod=$(curl -fsS "$proxy/github.com/traefik/traefik/v3/@v/$TRAEFIK_VERSION.mod")
  traefik_replaces=$(upstream_replaces github.com/traefik/traefik/v3 "$TRAEFIK_VERSION")
  traefik_excludes=$(grep '^exclude ' <<<"$traefik_mod" || true)
  rm -rf "$here/go/traefik"
  if grep -q 'traefik/dynamic/ext =>' <<<"$traefik_mod"; then
    mkdir -p "$here/go/traefik/ext"
    printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.26.0\n' >"$here/go/traefik/ext/go.mod"
    cat >"$here/go/traefik/ext/ext.go" <<'GO'
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
GO
    traefik_replaces+=$'\n\tgithub.com/traefik/traefik/dynamic/ext => ./ext'
  fi
  write_module traefik "tool github.com/traefik/traefik/v3/cmd/traefik

require github.com/traefik/traefik/v3 $TRAEFIK_VERSION

replace (
$traefik_replaces
)

$traefik_excludes"
fi

# cert-manager's controller command is the module
# github.com/cert-manager/cert-manager/controller-binary (cmd/controller in its
# tree, which replaces the main module with ../../); the proxy does not serve
# it, and it imports the main module's internal packages, so the wrapper *is*
# that module: its main package copied verbatim from the release tag (see
# go/cert-manager/UPSTREAM), built against the released main module.
if want cert-manager; then
  upstream=$(sed -n 's/^version: //p' "$here/go/cert-manager/UPSTREAM")
  [ "$upstream" = "$CERT_MANAGER_VERSION" ] || {
    echo "go/cert-manager holds cmd/controller of $upstream, not $CERT_MANAGER_VERSION: copy main.go and app/ (without tests) from the tag first (go/cert-manager/UPSTREAM says how)" >&2
    exit 1
  }
  write_module cert-manager "require github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION" \
    github.com/cert-manager/cert-manager/controller-binary
fi

write_module argo-events "tool github.com/argoproj/argo-events/cmd

require github.com/argoproj/argo-events $ARGO_EVENTS_VERSION"

# Kubernetes: pin every k8s.io staging module to v0.<minor>.<patch>.
staging_version=v0.${KUBERNETES_VERSION#v1.}
want kubernetes || exit 0
replaces=$(curl -fsS "$proxy/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod" |
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
