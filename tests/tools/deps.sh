#!/usr/bin/env bash
# Installs the Debian packages the scripts rely on, when any is missing.
# Rust (with rustfmt and clippy) and Go come with the machine.
set -euo pipefail
declare -A package_of=(
  [curl]=curl [openssl]=openssl [python3]=python3 [ss]=iproute2 [setsid]=util-linux
  [make]=make [git]=git [pkill]=procps
  # the reverse proxy in front of the receiver in its adversarial tests
  # (hookwarden_tests::Nginx)
  [nginx]=nginx
)
missing=()
for cmd in "${!package_of[@]}"; do
  # nginx lives in /usr/sbin, which is not on a non-root user's PATH.
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${package_of[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "hookwarden: installing Debian packages: ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for tool in cargo rustfmt cargo-clippy go; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "hookwarden: error: '$tool' is not installed (this machine kind ships Rust with rustfmt and clippy, and Go)" >&2
    exit 1
  }
done
