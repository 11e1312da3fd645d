#!/bin/sh
# Stage 2 (PID 1 on the overlay root): a cgroup-v2-only host. Runs /results/cmd.sh, writes its
# exit code to /results/rc, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /mnt
cwd="$(cat /mnt/cwd)"
umount /mnt
# A working directory under /tmp would vanish under the guest's own /tmp: keep it reachable.
case "$cwd" in /tmp/*) mkdir -p /.nook-cwd && mount --bind "$cwd" /.nook-cwd && cwd=/.nook-cwd ;; esac
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# ONLY cgroup2: this is the point of the guest.
mount -t tmpfs -o mode=755 cgroup-root /sys/fs/cgroup 2>/dev/null; umount /sys/fs/cgroup 2>/dev/null
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup
mkdir -p /results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /results
kver="$(uname -r)"
mkdir -p /lib/modules
mount --bind "$(cat /results/modules-dir)/lib/modules" /lib/modules
modprobe -a loop btrfs ext4 veth bridge 2>&1 | head -5
ip link set lo up
hostname nook-v2-guest
echo "stage2: kernel $kver, cgroup: $(cat /sys/fs/cgroup/cgroup.controllers)" > /dev/console
cd "$cwd" || echo "stage2: no such directory in the guest: $cwd" > /dev/console
sh /results/cmd.sh > /dev/console 2>&1
echo $? > /results/rc
sync
umount /results
poweroff -f
