#!/usr/bin/env bash
# npm run test:cgroup2: the cgroup v2 tests, in a QEMU guest that is a cgroup-v2-only host
# (this machine may be v1/hybrid). One boot, one `node --test` over the files below; TCG makes
# Node ~40x slower than native, so the list is chosen, not the whole suite:
#   guest/cgroup2      v2 specifics: lifecycle (create, stop, resume, destroy) with the cgroup
#                      files, limits, OOM, tree kill, freeze + fork, usage, crash reconcile of
#                      orphans, two daemons, the delegation and user-namespace refusals
#   runtime-conformance every RuntimeDriver (crun, runc) on the v2 host, driven directly
#   exec               exit codes, streaming, tree kill on timeout, aborts, concurrency
#   snapshots          snapshots of running sandboxes (freeze), forks, commits, crash mid-snapshot
#   volumes            encrypted volumes hot-mounted into running sandboxes
#   network            egress allow-list proxy, exposure (loopback only)
# integration/lifecycle, crash and limits pass there too but stay out of CI's list for time
# (each file is another daemon start under TCG). NOOK_GUEST_TESTS="a b" overrides the list
# (names under dist/test/, without .test.js).
set -euo pipefail
cd "$(dirname "$0")/../.."
tests="${NOOK_GUEST_TESTS:-guest/cgroup2 integration/runtime-conformance integration/exec integration/snapshots integration/volumes integration/network}"
files=()
for t in $tests; do files+=("dist/test/$t.test.js"); done
start=$(date +%s)
set +e
bash scripts/guest/run.sh node --test --test-concurrency=1 --test-timeout=900000 "${files[@]}"
rc=$?
set -e
echo "test:cgroup2: exit $rc, $(( $(date +%s) - start )) s in all (boot included)" >&2
exit $rc
