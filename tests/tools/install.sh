#!/usr/bin/env bash
# Builds every pinned upstream tool from its Go module into the cache, once.
# Usage: tests/tools/install.sh [tool ...]   (default: all but the bench-only vegeta and argo-events)
# Tools: nats-server nats etcd kube-apiserver kube-controller-manager
#   kube-scheduler kubectl kwok helm traefik cert-manager-controller actionlint
#   promtool jaeger
#   (and the bench-only vegeta argo-events)
# A binary already in the cache is reused, so a second run takes no time.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

command -v go >/dev/null 2>&1 ||
  die "Go is not installed (needed to build the test tools from their Go modules; want go >= $GO_MIN_VERSION)"
go_version=$(go env GOVERSION | sed 's/^go//')
printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V -C ||
  die "Go $go_version is too old: the pinned tools need go >= $GO_MIN_VERSION"

# Never let go fetch another toolchain, and never edit the committed go.mod/go.sum.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

# Prometheus v3.X.Y is the module version v0.3XX.Y: promtool reports the
# release (3.16.0) as upstream builds do (promu sets the same variable).
prometheus_minor=${PROMETHEUS_VERSION#v0.}; prometheus_minor=${prometheus_minor%%.*}
prometheus_release=${prometheus_minor:0:1}.${prometheus_minor:1}.${PROMETHEUS_VERSION##*.}

# CPU seconds (user + system) of this shell's finished children so far, in
# $children_cpu: a tool's build costs the difference. `times` must run in
# this shell itself (a command substitution is a child with its own count).
count_children_cpu() {
  times >"$log_dir/.times"
  children_cpu=$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); n += t[1] * 60 + t[2] } printf "%d", n }' "$log_dir/.times")
}

# name wrapper-module module-path package pinned-version ldflags [build-tags]
build() {
  local name=$1 module=$2 modpath=$3 pkg=$4 version=$5 ldflags=$6 tags=${7:-}
  local out; out=$(tool_path "$name")
  [ -x "$out" ] && return 0
  local dir=$tools_dir/go/$module log=$log_dir/build-$name.log
  awk -v m="$modpath" -v v="$version" '($1 == m && $2 == v) || ($1 == "require" && $2 == m && $3 == v) { found = 1 } END { exit !found }' "$dir/go.mod" ||
    die "$dir/go.mod does not pin $version (versions.env changed?): run tests/tools/update-wrappers.sh"
  say "building $name $version (log: $log)"
  local start=$SECONDS
  count_children_cpu
  local cpu_before=$children_cpu
  if ! (cd "$dir" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") >"$log" 2>&1; then
    rm -f "$out.tmp"
    tail -n 20 "$log" >&2
    die "building $name $version failed; full log: $log"
  fi
  mv "$out.tmp" "$out"
  count_children_cpu
  # The CPU time says what a build costs whatever else shares the machine.
  say "built $name in $((SECONDS - start))s ($((children_cpu - cpu_before)) s of CPU) -> $out"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(nats-server nats etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm traefik cert-manager-controller actionlint promtool jaeger)
for t in "${want[@]}"; do
  case $t in
    nats-server) build nats-server nats-server github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION" "" ;;
    nats) build nats natscli github.com/nats-io/natscli github.com/nats-io/natscli/nats "$NATSCLI_VERSION" "-X main.version=$NATSCLI_VERSION" ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
      build "$t" kubernetes k8s.io/kubernetes "k8s.io/kubernetes/cmd/$t" "$KUBERNETES_VERSION" "$k8s_ldflags" ;;
    kwok) build kwok kwok sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" ;;
    helm) build helm helm "helm.sh/helm/${HELM_VERSION%%.*}" "helm.sh/helm/${HELM_VERSION%%.*}/cmd/helm" "$HELM_VERSION" \
      "-X helm.sh/helm/${HELM_VERSION%%.*}/internal/version.version=$HELM_VERSION -X helm.sh/helm/${HELM_VERSION%%.*}/internal/version.metadata=" ;;
    traefik) build traefik traefik github.com/traefik/traefik/v3 github.com/traefik/traefik/v3/cmd/traefik "$TRAEFIK_VERSION" \
      "-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.Codename=hookwarden" ;;
    # The wrapper is cert-manager's controller-binary module itself (see
    # tests/tools/go/cert-manager/UPSTREAM): its main package is ".".
    cert-manager-controller) build cert-manager-controller cert-manager github.com/cert-manager/cert-manager . "$CERT_MANAGER_VERSION" \
      "-X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION -X github.com/cert-manager/cert-manager/pkg/util.AppGitState=clean" ;;
    actionlint) build actionlint actionlint github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" \
      "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" ;;
    # remove_all_sd leaves out every service-discovery plugin (cloud SDKs):
    # the rule commands never use them, and the build takes half the time.
    promtool) build promtool promtool github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION" \
      "-X github.com/prometheus/common/version.Version=$prometheus_release -X github.com/prometheus/common/version.Branch=HEAD" remove_all_sd ;;
    # The trace backend of the tracing tests (hookwarden_tests::jaeger).
    jaeger) build jaeger jaeger github.com/jaegertracing/jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER_VERSION" \
      "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" ;;
    # Bench-only (bench/run.sh asks for it by name).
    vegeta) build vegeta vegeta github.com/tsenart/vegeta/v12 github.com/tsenart/vegeta/v12 "$VEGETA_VERSION" "-X main.Version=$VEGETA_VERSION" ;;
    argo-events) build argo-events argo-events github.com/argoproj/argo-events github.com/argoproj/argo-events/cmd "$ARGO_EVENTS_VERSION" \
      "-X github.com/argoproj/argo-events.version=${ARGO_EVENTS_VERSION#v}" ;;
    *) die "unknown tool '$t' (known: nats-server nats etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm traefik cert-manager-controller actionlint promtool jaeger vegeta argo-events)" ;;
  esac
done
