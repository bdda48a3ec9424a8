#!/usr/bin/env bash
# Installs the tools the tests use when they are missing (Debian packages, as
# root), and fails with a clear message when it cannot.
set -euo pipefail

# command -> Debian package that provides it
declare -A need=(
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [mosquitto_sub]=mosquitto-clients
  [mosquitto_passwd]=mosquitto
  [ip]=iproute2
  [stdbuf]=coreutils
  [chromium]=chromium
  [qemu-aarch64]=qemu-user
  [qemu-arm]=qemu-user
  [mksquashfs]=squashfs-tools
  [unsquashfs]=squashfs-tools
  [sha256sum]=coreutils
)

missing_pkgs=()
missing_cmds=()
for cmd in "${!need[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing_cmds+=("$cmd")
    missing_pkgs+=("${need[$cmd]}")
  fi
done

image_deps() {
  # The disk image test (rootfs/image): qemu, UEFI firmware, the filesystem
  # tools and the Debian packages the image is made of (cached between runs).
  if ! bash "$(dirname "$0")/image-deps.sh" arm64 >/dev/null; then
    echo "test-deps: scripts/image-deps.sh arm64 failed (see above): the disk image tests cannot run" >&2
    exit 1
  fi
}

client_libs() {
  # The client libraries the option tests use besides mosquitto_pub/sub
  # (internal/testclients): Debian's python3-paho-mqtt, checked with
  # Debian's own interpreter (the PATH's python3 may be a pyenv one without
  # Debian's packages), and mqtt.js from e2e/clients/node's lock.
  if ! /usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "test-deps: /usr/bin/python3 cannot import paho.mqtt; run as root or: sudo apt-get install -y python3-paho-mqtt" >&2
      exit 1
    fi
    echo "test-deps: installing python3-paho-mqtt" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-paho-mqtt >/dev/null
    if ! /usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1; then
      echo "test-deps: python3-paho-mqtt is installed and /usr/bin/python3 still cannot import paho.mqtt" >&2
      exit 1
    fi
  fi
  local dir stamp
  dir="$(dirname "$0")/../e2e/clients/node"
  stamp="$dir/node_modules/.installed-lock.json"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "test-deps: installing nodejs npm (for mqtt.js)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
  fi
  for cmd in node npm; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
      echo "test-deps: $cmd is missing, so mqtt.js cannot be installed: install Node.js 18 or later (apt-get install -y nodejs npm)" >&2
      exit 1
    fi
  done
  # npm ci again only when the lock changed since the last one (the stamp
  # is the lock it installed).
  if ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "test-deps: npm ci in e2e/clients/node (mqtt.js)" >&2
    if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      echo "test-deps: npm ci in e2e/clients/node failed (see above): the tests that use mqtt.js cannot run" >&2
      exit 1
    fi
    cp "$dir/package-lock.json" "$stamp"
  fi
}

if [ ${#missing_cmds[@]} -eq 0 ]; then
  image_deps
  client_libs
  exit 0
fi

pkgs=$(printf '%s\n' "${missing_pkgs[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing ${missing_cmds[*]}; run as root or: sudo apt-get install -y $pkgs" >&2
  exit 1
fi

echo "test-deps: installing $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null

for cmd in "${missing_cmds[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    echo "test-deps: $cmd still missing after installing $pkgs" >&2
    exit 1
  fi
done

image_deps
client_libs
