#!/usr/bin/env bash
# Builds (once) a cgroup-v2-only test host for QEMU: Debian's stock kernel, unpacked with its
# modules, and a busybox initramfs that boots this machine's own root read-only over 9p with
# a tmpfs overlay on top. Everything lands in $NOOK_GUEST_DIR (default /var/cache/nook/guest),
# never in the repository. Prints the directory of the built guest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${NOOK_GUEST_DIR:-/var/cache/nook/guest}"
mkdir -p "$cache/dl"

# The version Debian's meta package points at, e.g. linux-image-6.1.0-57-amd64.
pkg="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)"
[ -n "$pkg" ] || { echo "guest/build.sh: cannot resolve linux-image-amd64's kernel (apt-get update?)" >&2; exit 1; }
kver="${pkg#linux-image-}"
out="$cache/$kver"
if [ -f "$out/initrd.img" ] && [ "$out/initrd.img" -nt "$here/init.sh" ] && [ "$out/initrd.img" -nt "$here/stage2.sh" ]; then
  echo "$out"
  exit 0
fi

if [ ! -f "$out/root/boot/vmlinuz-$kver" ]; then
  ( cd "$cache/dl" && ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download -q "$pkg" ) >&2
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  dpkg -x "$(ls "$cache/dl/${pkg}"_*.deb | head -n1)" "$out.tmp/root"
  depmod -b "$out.tmp/root" "$kver"
  rm -rf "$out" && mv "$out.tmp" "$out"
fi

# initramfs: busybox-static, the modules for virtio + 9p + overlay in dependency order, /init.
ird="$(mktemp -d)"
trap 'rm -rf "$ird"' EXIT
mkdir -p "$ird"/{bin,proc,sys,dev,lower,rw,newroot,mods}
cp /bin/busybox "$ird/bin/busybox"
: > "$ird/mods/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -d "$out/root" -S "$kver" --show-depends "$m" | while read -r verb path _; do
    [ "$verb" = insmod ] || continue
    name="$(basename "$path")"
    grep -qx "$name" "$ird/mods/order" && continue
    cp "$path" "$ird/mods/$name"
    echo "$name" >> "$ird/mods/order"
  done
done
cp "$here/init.sh" "$ird/init"
cp "$here/stage2.sh" "$ird/stage2"
chmod 755 "$ird/init" "$ird/stage2"
( cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
ln -sf "root/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$out"
