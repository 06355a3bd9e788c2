#!/usr/bin/env bash
# The network of one pod run as a process (tests/tools/cluster.sh, the pod
# runner): a network namespace whose only address is the pod IP, a loopback
# address of the process node's pod CIDR (127.1.0.0/16), joined to the host by
# a veth pair. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
#
#   podnet.sh add NETNS POD_IP   create (replacing a leftover of the same name)
#   podnet.sh del NETNS POD_IP   remove (no error when already gone)
#
# Why it works with loopback addresses (see docs/development.md):
# - host -> pod: a /32 route to the pod IP through the veth in the host's
#   *local* table, more specific than its `local 127.0.0.0/8 dev lo`, with
#   source $NODE_IP (127.1.0.1, the node's address: pods see the ingress
#   controller and the probes coming from it); route_localnet=1 on the veth
#   lets 127/8 cross it.
# - pod -> host: in the pod's namespace the kernel's 127.0.0.0/8 and
#   127.0.0.1 local routes are removed, and 127.0.0.0/8 goes out through the
#   veth: the pod's 127.0.0.1 is the host's (where nats-server and the API
#   server listen), reachable as a cluster's Service addresses would be; the
#   pod IP itself stays local (lo is up for it).
# So two pods may both listen on 0.0.0.0:8080, each on its own address.
set -euo pipefail
cmd=${1:-} netns=${2:-} ip=${3:-}
NODE_IP=${NODE_IP:-127.1.0.1}
[ -n "$netns" ] && [ -n "$ip" ] || { echo "usage: $0 add|del NETNS POD_IP" >&2; exit 2; }
# Host-side interface names are at most 15 characters: hwp + the IP's two
# last octets in hex, unique within 127.1.0.0/16.
IFS=. read -r _ _ o3 o4 <<<"$ip"
host_if=$(printf 'hwp%02x%02x' "$o3" "$o4")

del() {
  ip netns del "$netns" 2>/dev/null || true   # takes its end of the veth pair, and so the pair
  ip link del "$host_if" 2>/dev/null || true
  ip route del "$ip/32" table local 2>/dev/null || true
}

case $cmd in
  add)
    del
    ip netns add "$netns"
    ip link add "$host_if" type veth peer name eth0 netns "$netns"
    sysctl -qw "net.ipv4.conf.$host_if.route_localnet=1"
    ip link set "$host_if" up
    ip route add "$ip/32" dev "$host_if" src "$NODE_IP" table local
    in_ns() { ip netns exec "$netns" "$@"; }
    in_ns sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1
    in_ns ip link set lo up
    # lo stays up (it carries the pod's traffic to itself) without 127.0.0.1:
    # with it, ARP from the host's 127.0.0.1 would look like our own address.
    in_ns ip addr del 127.0.0.1/8 dev lo
    in_ns ip addr add "$ip/32" dev eth0
    in_ns ip link set eth0 up
    in_ns ip route add 127.0.0.0/8 dev eth0 src "$ip"
    ;;
  del) del ;;
  *) echo "usage: $0 add|del NETNS POD_IP" >&2; exit 2 ;;
esac
