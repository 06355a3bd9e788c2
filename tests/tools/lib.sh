# Shared by the scripts in tests/tools: where things live and how to fail.
# shellcheck shell=bash
tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null
. "$tools_dir/versions.env"
HOOKWARDEN_CACHE=${HOOKWARDEN_CACHE:-$HOME/.cache/hookwarden}
bin_dir=$HOOKWARDEN_CACHE/bin
log_dir=$HOOKWARDEN_CACHE/logs
mkdir -p "$bin_dir" "$log_dir"

die() { echo "hookwarden: error: $*" >&2; exit 1; }
say() { echo "hookwarden: $*" >&2; }

# tool_path NAME -> the pinned binary's path in the cache.
tool_path() {
  case $1 in
    nats-server) echo "$bin_dir/nats-server-$NATS_SERVER_VERSION" ;;
    nats) echo "$bin_dir/nats-$NATSCLI_VERSION" ;;
    etcd) echo "$bin_dir/etcd-$ETCD_VERSION" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
      echo "$bin_dir/$1-$KUBERNETES_VERSION" ;;
    kwok) echo "$bin_dir/kwok-$KWOK_VERSION" ;;
    helm) echo "$bin_dir/helm-$HELM_VERSION" ;;
    traefik) echo "$bin_dir/traefik-$TRAEFIK_VERSION" ;;
    cert-manager-controller) echo "$bin_dir/cert-manager-controller-$CERT_MANAGER_VERSION" ;;
    actionlint) echo "$bin_dir/actionlint-$ACTIONLINT_VERSION" ;;
    promtool) echo "$bin_dir/promtool-$PROMETHEUS_VERSION" ;;
    jaeger) echo "$bin_dir/jaeger-$JAEGER_VERSION" ;;
    vegeta) echo "$bin_dir/vegeta-$VEGETA_VERSION" ;;
    argo-events) echo "$bin_dir/argo-events-$ARGO_EVENTS_VERSION" ;;
    *) die "unknown tool '$1'" ;;
  esac
}
