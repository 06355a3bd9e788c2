#!/usr/bin/env bash
# A local Kubernetes control plane for tests and the demo, run the way
# controller-runtime's envtest runs one, plus what Deployments need to get Pods:
# etcd, kube-apiserver (TLS on loopback, RBAC, client-certificate admin,
# service-account signing keys), kube-controller-manager, kube-scheduler and
# kwok with one fake node.
#
#   tests/tools/cluster.sh up      start it (idempotent); prints the kubeconfig
#   tests/tools/cluster.sh down    stop exactly what `up` started, by PID
#   tests/tools/cluster.sh status  exit 0 when it is up and ready
#   tests/tools/cluster.sh env     print `export KUBECONFIG=...`
#
# State lives in $HOOKWARDEN_CLUSTER_DIR (default ~/.cache/hookwarden/cluster);
# every `up` after a `down` starts from an empty etcd and fresh certificates.
# HOOKWARDEN_APISERVER_PORT pins the API server's port (default: a free one).
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

dir=${HOOKWARDEN_CLUSTER_DIR:-$HOOKWARDEN_CACHE/cluster}
pki=$dir/pki run=$dir/run logs=$dir/logs
kubeconfig=$dir/kubeconfig
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
start_timeout=${HOOKWARDEN_START_TIMEOUT:-90}

pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }

# alive NAME: the recorded PID runs the binary we started (guards against PID
# reuse; the second word covers a binary run by an interpreter).
alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' '\n' <"/proc/$pid/cmdline" | head -n2 | grep -qxF "$(tool_path "$1")"
}

stop_all() {
  local c pid i
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$c"; then
      pid=$(pid_of "$c")
      # Each component leads its own process group (setsid): stop the group.
      kill -TERM -- "-$pid" 2>/dev/null || true
      for i in $(seq 1 50); do alive "$c" || break; sleep 0.2; done
      alive "$c" && { kill -KILL -- "-$pid" 2>/dev/null || true; sleep 0.2; }
      say "stopped $c (pid $pid)"
    fi
    rm -f "$run/$c.pid"
  done
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
      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
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

# start NAME ARGS...: runs the pinned binary in the background, logging to $logs/NAME.log.
start() {
  local name=$1; shift
  # 9>&-: the daemons must not inherit (and hold forever) the lock of `locked`.
  setsid "$(tool_path "$name")" "$@" >"$logs/$name.log" 2>&1 </dev/null 9>&- &
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
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$mod/kustomize/stage/$f"
  done
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

  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT < <(free_ports 6)
  APISERVER_PORT=${HOOKWARDEN_APISERVER_PORT:-$APISERVER_PORT}
  if port_in_use "$APISERVER_PORT"; then
    die "port $APISERVER_PORT for kube-apiserver is already in use (by: $(ss -Htlnp "sport = :$APISERVER_PORT" | sed 's/.*users:((\(.*\)))/\1/' | head -n1))"
  fi
  printf 'ETCD_PORT=%s\nAPISERVER_PORT=%s\nKCM_PORT=%s\nSCHEDULER_PORT=%s\nKWOK_PORT=%s\n' \
    "$ETCD_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT" >"$run/ports.env"
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
    --service-cluster-ip-range 10.0.0.0/16 --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none
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
  "$kubectl" --kubeconfig "$kubeconfig" apply -f "$tools_dir/cluster/node.yaml" >"$logs/node.log" 2>&1 ||
    { stop_all; die "creating the fake node failed; log: $logs/node.log"; }
  node_ready() {
    [ "$("$kubectl" --kubeconfig "$kubeconfig" get node kwok-node-0 \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
  }
  wait_for kwok node_ready
  # The service-account controller of kube-controller-manager makes "default" in each namespace;
  # Pods cannot be created before it exists.
  wait_for kube-controller-manager "$kubectl" --kubeconfig "$kubeconfig" -n default get serviceaccount default
  trap - INT TERM
  say "control plane up (Kubernetes $KUBERNETES_VERSION, logs in $logs)"
  say "use it with: export KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
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
