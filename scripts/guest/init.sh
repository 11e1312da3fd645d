#!/bin/busybox sh
# Stage 1 (initramfs): mount this machine's root read-only over 9p, a tmpfs overlay on top, switch_root.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod "/mods/$m" || echo "init: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose host /lower || { echo "init: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o size=75%,mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || { echo "init: overlay failed"; poweroff -f; }
cp /stage2 /newroot/.nook-stage2
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || true
exec switch_root /newroot /bin/sh /.nook-stage2
