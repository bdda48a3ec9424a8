#!/usr/bin/env bash
# Gets what the disk image build needs: the host tools that make the
# filesystems and boot the image (Debian packages, installed as root when
# missing), and the Debian packages whose files go into the image (kernel,
# busybox, dropbear, systemd-boot), downloaded once per architecture into a
# cache and kept there: a later build uses the same .deb files, so the same
# sources give the same image even after the mirror moves on.
#
#   scripts/image-deps.sh [ARCH...]     ARCH: arm64 (default), amd64
#
# Prints the cache folder of the debs on stdout; fails with a clear message
# when something cannot be installed or downloaded.
set -euo pipefail

cache="${GATEWAY_IMAGE_CACHE:-${HOME:-/root}/.cache/gateway-image}"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64)

die() { echo "image-deps: $*" >&2; exit 1; }

# command -> Debian package (host side: build and boot the image)
declare -A host=(
  [qemu-system-aarch64]=qemu-system-arm
  [mcopy]=mtools
  [mkfs.vfat]=dosfstools
  [sgdisk]=gdisk
  [mksquashfs]=squashfs-tools
  [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs
  [cpio]=cpio
  [dpkg-deb]=dpkg
  [xz]=xz-utils
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
)
firmware=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

root() {
  [ "$(id -u)" -eq 0 ] || die "$1; run as root or: sudo $2"
}

# apt waits for another apt (other builds on this machine) instead of failing.
apt_opts=(-o DPkg::Lock::Timeout=600 -qq)
# The cache is root's: apt's download sandbox user could not write there.
dl_opts=("${apt_opts[@]}")
[ "$(id -u)" -ne 0 ] || dl_opts+=(-o APT::Sandbox::User=root)
updated=0
apt_update() {
  if [ $updated -eq 0 ]; then
    apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed (is a Debian mirror reachable?)"
    updated=1
  fi
}

missing=()
for cmd in "${!host[@]}"; do have "$cmd" || missing+=("${host[$cmd]}"); done
[ -f "$firmware" ] || missing+=(qemu-efi-aarch64)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  root "missing host packages: $pkgs" "apt-get install -y $pkgs"
  echo "image-deps: installing $pkgs" >&2
  apt_update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends $pkgs >&2 ||
    die "apt-get install $pkgs failed"
  for cmd in "${!host[@]}"; do have "$cmd" || die "$cmd still missing after installing $pkgs"; done
  [ -f "$firmware" ] || die "$firmware still missing after installing qemu-efi-aarch64"
fi

# The packages each image is made of. The kernel metapackage is resolved to
# the versioned package it depends on (linux-image-6.1.0-N-ARCH). busybox-static
# of the build machine's own architecture is there for its applet list:
# the target's busybox cannot run here (no binfmt_misc).
pkgs_for() {
  case "$1" in
  arm64) echo "linux-image-arm64 busybox-static systemd-boot-efi dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10" ;;
  amd64) echo "linux-image-amd64 busybox-static systemd-boot-efi dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10" ;;
  *) die "unknown architecture $1 (known: arm64, amd64)" ;;
  esac
}

hostarch=$(dpkg --print-architecture)
for arch in "${arches[@]}"; do
  want=$(pkgs_for "$arch")
  dir="$cache/debs/$arch"
  mkdir -p "$dir"
  todo=()
  for p in $want; do
    ls "$dir/${p}"_*.deb >/dev/null 2>&1 || todo+=("$p")
  done
  # The kernel metapackage is not kept: the versioned kernel is what counts.
  if ls "$dir"/linux-image-[0-9]*.deb >/dev/null 2>&1; then
    todo=("${todo[@]/linux-image-$arch/}")
  fi
  [ "$arch" = "$hostarch" ] || ls "$dir/host-busybox-static"_*.deb >/dev/null 2>&1 || todo+=(host-busybox-static)
  todo=($(printf '%s\n' "${todo[@]}" | grep -v '^$' || true))
  [ ${#todo[@]} -gt 0 ] || continue

  if [ "$arch" != "$hostarch" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    root "Debian architecture $arch is not enabled" "dpkg --add-architecture $arch && apt-get update"
    dpkg --add-architecture "$arch"
    updated=0
  fi
  if ! apt-cache show "busybox-static:$arch" >/dev/null 2>&1; then
    root "no package lists for $arch" "apt-get update"
    apt_update
  fi
  echo "image-deps: downloading ${todo[*]} for $arch into $dir" >&2
  tmp=$(mktemp -d "$dir/.dl-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for p in "${todo[@]}"; do
    case "$p" in
    linux-image-"$arch")
      p=$(apt-cache depends "linux-image-$arch:$arch" | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)
      [ -n "$p" ] || die "cannot resolve linux-image-$arch to a kernel package"
      (cd "$tmp" && apt-get "${dl_opts[@]}" download "$p:$arch" >&2) || die "apt-get download $p:$arch failed"
      ;;
    host-busybox-static)
      (cd "$tmp" && apt-get "${dl_opts[@]}" download "busybox-static:$hostarch" >&2) || die "apt-get download busybox-static:$hostarch failed"
      for f in "$tmp"/busybox-static_*_"$hostarch".deb; do mv "$f" "$tmp/host-$(basename "$f")"; done
      ;;
    *)
      (cd "$tmp" && apt-get "${dl_opts[@]}" download "$p:$arch" >&2) || die "apt-get download $p:$arch failed"
      ;;
    esac
  done
  mv "$tmp"/*.deb "$dir/"
  rm -rf "$tmp"
  trap - EXIT
done
echo "$cache/debs"
