#!/usr/bin/env bash
# Installs what nook needs on Debian 12 (run as root): system packages, npm dependencies,
# the build, and the `nook`/`nookd` commands on PATH. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (nook creates namespaces, cgroups and mounts)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# crun: the OCI runtime (runc: its fallback, tested too); btrfs-progs: the storage pool; libarchive-tools:
# bsdtar, which unpacks image layers chrooted into the image; busybox-static and debootstrap: the
# minimal and python presets; build-essential: nook-init (static C) and better-sqlite3;
# bubblewrap: only for the benchmark's comparison column; skopeo, docker-registry and
# openssl: only for the tests and benchmarks of image pulls (a registry on loopback); runsc:
# gVisor, the stronger isolation level (--runtime gvisor) and cold mode.
apt-get install -y -q --no-install-recommends \
  crun runc runsc btrfs-progs e2fsprogs util-linux procps busybox-static debootstrap socat libarchive-tools \
  build-essential python3 ca-certificates bubblewrap skopeo docker-registry openssl
# chromium: only for the web console's browser test (puppeteer-core drives it; test/integration/console.test.ts).
apt-get install -y -q --no-install-recommends chromium
# qemu-system-x86, kmod and cpio: only for the cgroup v2 test host (npm run test:cgroup2 boots
# Debian's kernel in QEMU with this machine's root read-only; scripts/guest/).
apt-get install -y -q --no-install-recommends qemu-system-x86 kmod cpio
# The package's own service would listen on :5000 on every interface; the tests start
# their own on loopback, so the system one stays off.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  apt-get install -y -q --no-install-recommends nodejs npm
fi

npm ci --no-fund --no-audit
npm run build
npm link --no-fund --no-audit >/dev/null
echo "nook installed: $(command -v nook)"

# Under systemd, nookd runs as a unit with a delegated cgroup subtree (required on cgroup v2
# hosts: packaging/nookd.service). Without systemd, start nookd yourself; it takes
# /sys/fs/cgroup/nook-<instance> on a v2 host.
if [ -d /run/systemd/system ]; then
  sed -e "s|@NODE@|$(command -v node)|" -e "s|@PREFIX@|$(pwd)|" packaging/nookd.service > /etc/systemd/system/nookd.service
  systemctl daemon-reload
  systemctl enable --now nookd.service
  echo "nookd.service enabled (Delegate=yes)"
fi
