#!/usr/bin/env bash
# Boots the cgroup-v2 test guest (scripts/guest/build.sh) and runs a command in it, in the
# current directory, as root. The guest sees this machine's files read-only with a throwaway
# tmpfs layer on top; output goes to this terminal; the command's exit code is ours.
#   scripts/guest/run.sh [CMD...]        (default: an interactive-less `sh -c 'uname -a'`)
# Env: NOOK_GUEST_MEM_MIB (default 6144), NOOK_GUEST_CPUS (2), NOOK_GUEST_TIMEOUT_S (1500).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
guest="$(bash "$here/build.sh")"
results="$(mktemp -d /tmp/nook-guest-XXXXXX)"
trap 'rm -rf "$results"' EXIT
echo "$guest/root" > "$results/modules-dir"
pwd > "$results/cwd"
if [ $# -eq 0 ]; then set -- uname -a; fi
{
  echo 'set -e'
  # The guest's environment is minimal: pass the CI-relevant variables through.
  for v in $(env | sed -n 's/^\(NOOK_[A-Z0-9_]*\|NODE_OPTIONS\|CI\)=.*/\1/p'); do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'export HOME=/root\n'
  printf '%q ' "$@"; echo
} > "$results/cmd.sh"
start=$(date +%s)
timeout --foreground "${NOOK_GUEST_TIMEOUT_S:-1500}" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "${NOOK_GUEST_CPUS:-2}" -m "${NOOK_GUEST_MEM_MIB:-6144}" \
  -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 systemd.unified_cgroup_hierarchy=1" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap \
  -virtfs "local,path=$results,mount_tag=results,security_model=passthrough" \
  -nographic -no-reboot -nic none -monitor none -serial stdio </dev/null
rc="$(cat "$results/rc" 2>/dev/null || echo 125)"
echo "guest: exit $rc after $(( $(date +%s) - start )) s" >&2
exit "$rc"
