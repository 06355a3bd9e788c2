#!/usr/bin/env bash
# A local Kubernetes control plane for tests and the demo, run the way
# controller-runtime's envtest runs one, plus what Deployments need to get Pods:
# etcd, kube-apiserver (TLS on loopback, RBAC, client-certificate admin,
# service-account signing keys), kube-controller-manager, kube-scheduler and
# kwok with one fake node, and (as root) the "as deployed" part: a process
# node whose pods the pod runner runs as real processes (see
# docs/development.md).
#
#   tests/tools/cluster.sh up      start it (idempotent); prints the kubeconfig
#   tests/tools/cluster.sh down    stop exactly what `up` started, by PID
#   tests/tools/cluster.sh status  exit 0 when it is up and ready
#   tests/tools/cluster.sh env     print `export KUBECONFIG=...`
#
# State lives in $HOOKWARDEN_CLUSTER_DIR (default ~/.cache/hookwarden/cluster);
# every `up` after a `down` starts from an empty etcd and fresh certificates.
# HOOKWARDEN_APISERVER_PORT pins the API server's port (default: a free one).
# HOOKWARDEN_POD_CIDR: the process node's pod CIDR, inside 127.1.0.0/16
# (default: all of it). Two control planes with pod runners on one machine
# need disjoint ones, e.g. 127.1.200.0/24: pod IPs, their host routes and
# host-side interface names (hwp + the two last octets) are per address.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# Every component gets its kubeconfig explicitly; a user's own must not leak
# into one that would honour it (Traefik reads KUBECONFIG).
unset KUBECONFIG KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT

dir=${HOOKWARDEN_CLUSTER_DIR:-$HOOKWARDEN_CACHE/cluster}
pki=$dir/pki run=$dir/run logs=$dir/logs
kubeconfig=$dir/kubeconfig
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# The process node and the runner that plays its kubelet (root only: network
# and mount namespaces).
proc_node=hookwarden-proc-0
pod_cidr=${HOOKWARDEN_POD_CIDR:-127.1.0.0/16}
case $pod_cidr in
  127.1.*/*) ;;
  *) die "HOOKWARDEN_POD_CIDR=$pod_cidr is not inside 127.1.0.0/16" ;;
esac
podnet=$tools_dir/cluster/podnet.sh
repo_root=$(cd "$tools_dir/../.." && pwd)
start_timeout=${HOOKWARDEN_START_TIMEOUT:-90}

pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }

# binary_of NAME: what `start` ran for NAME (a pinned tool, or a workspace
# binary recorded in $run/NAME.bin).
binary_of() {
  if [ -f "$run/$1.bin" ]; then cat "$run/$1.bin"; else tool_path "$1"; fi
}

# alive NAME: the recorded PID runs the binary we started (guards against PID
# reuse; the second word covers a binary run by an interpreter).
alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' '\n' <"/proc/$pid/cmdline" | head -n2 | grep -qxF "$(binary_of "$1")"
}

# Whatever a pod left behind when its runner could not clean up (killed):
# processes in our pod network namespaces, the namespaces, their veths.
#
# Only this control plane's: the pod runner keeps a directory per running pod
# under $dir/pods/pods/<uid> (removed when the pod stops) and names its
# network namespace hw-<the uid's first 23 characters>; another control
# plane's pods on this machine are not ours to stop.
stop_pods() {
  local netns pid ip uid
  command -v ip >/dev/null 2>&1 || return 0
  for uid in $(ls "$dir/pods/pods" 2>/dev/null); do
    netns=hw-${uid:0:23}
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$netns" || continue
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip=$(ip -n "$netns" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
    "$podnet" del "$netns" "${ip:-127.1.0.0}" 2>/dev/null || true
    say "removed leftover pod network $netns"
  done
}

stop_all() {
  local c pid i had_pods=
  # Only a control plane that ran the pod runner cleans pod networks up.
  [ ! -f "$run/pod-runner.pid" ] || had_pods=1
  for c in traefik pod-runner kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$c"; then
      pid=$(pid_of "$c")
      # Each component leads its own process group (setsid): stop the group.
      kill -TERM -- "-$pid" 2>/dev/null || true
      for i in $(seq 1 50); do alive "$c" || break; sleep 0.2; done
      alive "$c" && { kill -KILL -- "-$pid" 2>/dev/null || true; sleep 0.2; }
      say "stopped $c (pid $pid)"
    fi
    rm -f "$run/$c.pid" "$run/$c.bin"
  done
  [ -z "$had_pods" ] || stop_pods
}

apiserver_ready() {
  [ -f "$run/ports.env" ] || return 1
  # shellcheck source=/dev/null
  . "$run/ports.env"
  curl -fsS --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

is_up() {
  local c
  for c in "${components[@]}"; do alive "$c" || return 1; done
  if [ "$(id -u)" -eq 0 ]; then
    for c in pod-runner traefik; do alive "$c" || return 1; done
  fi
  apiserver_ready
}

free_ports() { # N -> N distinct free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

port_in_use() { ss -Htln "sport = :$1" | grep -q .; }

make_pki() {
  rm -rf "$pki"; mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.crt -days 3650 -subj "/CN=hookwarden-test-ca"
    sign() { # name subject extfile-lines
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%b\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$1.crt" -days 3650 -extfile "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:127.2.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    # Member of system:masters: the admin of this throwaway cluster.
    sign admin "/O=system:masters/CN=hookwarden-admin" "extendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$logs/pki.log" 2>&1 || die "creating certificates failed; log: $logs/pki.log"
}

write_kubeconfig() {
  cat >"$kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: hookwarden-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: hookwarden-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: hookwarden-test
  context: {cluster: hookwarden-test, user: hookwarden-admin}
current-context: hookwarden-test
KC
  mv "$kubeconfig.tmp" "$kubeconfig"
}

# start NAME ARGS...: runs the pinned binary (or the one in $run/NAME.bin) in
# the background, logging to $logs/NAME.log.
start() {
  local name=$1; shift
  # 9>&-: the daemons must not inherit (and hold forever) the lock of `locked`.
  setsid "$(binary_of "$name")" "$@" >"$logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$run/$name.pid"
}

# wait_for NAME CHECK...: until CHECK succeeds; fails fast if NAME exits.
wait_for() {
  local name=$1; shift
  local deadline=$((SECONDS + start_timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      tail -n 15 "$logs/$name.log" >&2 || true
      stop_all
      die "$name exited while starting; log: $logs/$name.log"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 15 "$logs/$name.log" >&2 || true
      stop_all
      die "$name did not become ready within ${start_timeout}s; log: $logs/$name.log"
    fi
    sleep 0.3
  done
}

kwok_stages() { # the upstream default stages of the pinned kwok, as kwokctl uses them
  local mod
  mod=$(cd "$tools_dir/go/kwok" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json sigs.k8s.io/kwok |
    sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -d "$mod/kustomize/stage" ] || die "kwok $KWOK_VERSION stages not found in the Go module cache"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml; do
    echo "---"; cat "$mod/kustomize/stage/$f"
  done
  # The pod stages leave the process node's pods to the pod runner: kwok must
  # not mark them Running and Ready, nor delete them before their process
  # has stopped.
  for f in pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    awk -v node="$proc_node" '{ print }
      /^    matchExpressions:$/ && !done {
        print "    - key: '"'"'.spec.nodeName'"'"'"
        print "      operator: '"'"'NotIn'"'"'"
        print "      values:"
        print "      - '"'"'" node "'"'"'"
        done = 1
      }' "$mod/kustomize/stage/$f"
  done
}

# The pod runner: a workspace binary, built by the same command `make test`
# runs next (`cargo test --workspace --no-run`), so it costs no extra build
# there; with it every binary a pod may run (receiver, operator) is built.
start_pod_runner() {
  local target runner
  say "building the workspace for the pod runner (log: $logs/cargo-build.log)"
  (cd "$repo_root" && cargo test --workspace --locked --no-run) >"$logs/cargo-build.log" 2>&1 ||
    { tail -n 20 "$logs/cargo-build.log" >&2; stop_all; die "building the pod runner failed; log: $logs/cargo-build.log"; }
  target=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  runner=$target/debug/hookwarden-pod-runner
  [ -x "$runner" ] || { stop_all; die "$runner was not built"; }
  echo "$runner" >"$run/pod-runner.bin"
  mkdir -p "$dir/pods"
  say "starting the pod runner for node $proc_node (pods' logs in $dir/pods/logs)"
  start pod-runner --kubeconfig "$kubeconfig" --node "$proc_node" --state-dir "$dir/pods" --podnet "$podnet"
  sleep 0.5
  alive pod-runner || { tail -n 15 "$logs/pod-runner.log" >&2; stop_all; die "the pod runner exited at start; log: $logs/pod-runner.log"; }
}

up() {
  if is_up; then
    say "control plane already up; KUBECONFIG=$kubeconfig"
    echo "$kubeconfig"; return 0
  fi
  stop_all # whatever is left of an earlier, broken run
  "$tools_dir/install.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok
  rm -rf "$dir/etcd" "$run" "$logs"; mkdir -p "$run" "$logs"
  make_pki

  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT \
    TRAEFIK_HTTPS_PORT TRAEFIK_ADMIN_PORT < <(free_ports 8)
  APISERVER_PORT=${HOOKWARDEN_APISERVER_PORT:-$APISERVER_PORT}
  if port_in_use "$APISERVER_PORT"; then
    die "port $APISERVER_PORT for kube-apiserver is already in use (by: $(ss -Htlnp "sport = :$APISERVER_PORT" | sed 's/.*users:((\(.*\)))/\1/' | head -n1))"
  fi
  printf 'ETCD_PORT=%s\nAPISERVER_PORT=%s\nKCM_PORT=%s\nSCHEDULER_PORT=%s\nKWOK_PORT=%s\n' \
    "$ETCD_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT" >"$run/ports.env"
  printf 'TRAEFIK_HTTPS_PORT=%s\nTRAEFIK_ADMIN_PORT=%s\n' \
    "$TRAEFIK_HTTPS_PORT" "$TRAEFIK_ADMIN_PORT" >>"$run/ports.env"
  write_kubeconfig
  trap 'stop_all' INT TERM

  say "starting etcd on 127.0.0.1:$ETCD_PORT"
  start etcd --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for etcd curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  say "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  start kube-apiserver --advertise-address 127.0.0.1 --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 127.2.0.0/16 --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none \
    --enable-admission-plugins PodNodeSelector,PodTolerationRestriction
  wait_for kube-apiserver apiserver_ready

  local common=(--kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig"
    --authorization-kubeconfig "$kubeconfig" --bind-address 127.0.0.1 --leader-elect=false)
  say "starting kube-controller-manager, kube-scheduler and kwok"
  start kube-controller-manager "${common[@]}" --secure-port "$KCM_PORT" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers '*' --use-service-account-credentials=false
  start kube-scheduler "${common[@]}" --secure-port "$SCHEDULER_PORT"
  kwok_stages >"$run/kwok-stages.yaml"
  start kwok --kubeconfig "$kubeconfig" --config "$run/kwok-stages.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:$KWOK_PORT" --node-ip 127.0.0.1 --cidr 10.0.1.0/24 \
    --node-lease-duration-seconds 0
  wait_for kube-controller-manager curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"

  local kubectl; kubectl=$(tool_path kubectl)
  sed "s#127\.1\.0\.0/16#$pod_cidr#g" "$tools_dir/cluster/node.yaml" |
    "$kubectl" --kubeconfig "$kubeconfig" apply -f - >"$logs/node.log" 2>&1 ||
    { stop_all; die "creating the fake node failed; log: $logs/node.log"; }
  node_ready() {
    [ "$("$kubectl" --kubeconfig "$kubeconfig" get node "$1" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
  }
  wait_for kwok node_ready kwok-node-0
  wait_for kwok node_ready "$proc_node"
  # The service-account controller of kube-controller-manager makes "default" in each namespace;
  # Pods cannot be created before it exists.
  wait_for kube-controller-manager "$kubectl" --kubeconfig "$kubeconfig" -n default get serviceaccount default
  if [ "$(id -u)" -eq 0 ]; then
    "$tools_dir/install.sh" traefik cert-manager-controller ||
      { stop_all; die "building Traefik or cert-manager's controller failed"; }
    start_pod_runner
    install_cert_manager_crds
    start_traefik
  else
    say "not root: no pod runner (pods on $proc_node stay Pending; the as-deployed tests need root)"
  fi
  trap - INT TERM
  say "control plane up (Kubernetes $KUBERNETES_VERSION, logs in $logs)"
  say "use it with: export KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
}

# The objects the as-deployed components need, from tests/tools/cluster/:
# their namespace, Traefik's ServiceAccount, RBAC and IngressClass, and
# cert-manager's CRDs (from its pinned module).
kubectl_apply() { # log-name files...
  local log=$logs/$1.log; shift
  local args=() f
  for f in "$@"; do args+=(-f "$f"); done
  "$(tool_path kubectl)" --kubeconfig "$kubeconfig" apply --server-side "${args[@]}" >>"$log" 2>&1 ||
    { tail -n 15 "$log" >&2; stop_all; die "kubectl apply failed; log: $log"; }
}

# cert-manager's CRDs (from its pinned module): its controller runs per test,
# scoped to the test's namespace (tests/src/deployed.rs, CertManager), so that
# it never touches the operator tests' stand-in Certificates.
install_cert_manager_crds() {
  local mod
  mod=$(cd "$tools_dir/go/cert-manager" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json github.com/cert-manager/cert-manager |
    sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -d "$mod/deploy/crds" ] || { stop_all; die "cert-manager $CERT_MANAGER_VERSION CRDs not found in the Go module cache"; }
  kubectl_apply cert-manager "$tools_dir/cluster/system.yaml" "$mod"/deploy/crds/*.yaml
}

# Traefik v3 with its Kubernetes Ingress provider, as its ServiceAccount
# (a token from the TokenRequest API, the cluster's CA), serving the
# IngressClass "traefik" on one HTTPS entry point. It sends to each Service's
# ClusterIP (nativeLB): EndpointSlices cannot list loopback pod IPs, and the
# pod runner serves ClusterIPs (loopback, 127.2.0.0/16) as kube-proxy would.
start_traefik() {
  local kubectl; kubectl=$(tool_path kubectl)
  "$kubectl" --kubeconfig "$kubeconfig" -n hookwarden-system create token traefik --duration 48h \
    >"$run/traefik.token" 2>>"$logs/traefik-setup.log" ||
    { stop_all; die "no token for Traefik's ServiceAccount; log: $logs/traefik-setup.log"; }
  say "starting Traefik on https://127.0.0.1:$TRAEFIK_HTTPS_PORT"
  start traefik \
    --global.checknewversion=false --global.sendanonymoususage=false \
    --entrypoints.websecure.address="127.0.0.1:$TRAEFIK_HTTPS_PORT" \
    --entrypoints.websecure.http.tls=true \
    --entrypoints.traefik.address="127.0.0.1:$TRAEFIK_ADMIN_PORT" --ping=true --api=true --api.insecure=true \
    --providers.kubernetesingress=true \
    --providers.kubernetesingress.endpoint="https://127.0.0.1:$APISERVER_PORT" \
    --providers.kubernetesingress.token="$run/traefik.token" \
    --providers.kubernetesingress.certauthfilepath="$pki/ca.crt" \
    --providers.kubernetesingress.ingressclass=traefik \
    --providers.kubernetesingress.nativeLBByDefault=true \
    --providers.kubernetesingress.ingressendpoint.ip=127.0.0.1 \
    --log.level=INFO --accesslog=true
  wait_for traefik curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_ADMIN_PORT/ping"
}

# `up` and `down` of the same control plane never interleave: two test runs
# starting at once would otherwise both see "not up" and start two sets of
# processes over one data directory. The second waits, then finds it up.
locked() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  "$@"
}

case ${1:-} in
  up) locked up ;;
  down) locked stop_all; say "control plane down" ;;
  status) is_up ;;
  env) echo "export KUBECONFIG=$kubeconfig" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
