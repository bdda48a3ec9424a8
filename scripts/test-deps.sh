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

if [ ${#missing_cmds[@]} -eq 0 ]; then
  image_deps
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
