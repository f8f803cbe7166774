#!/usr/bin/env bash
# vm-test.sh runs the cgroup and container tests on a pure cgroup v2 kernel
# (cgroup_no_v1=all) in a throw-away QEMU VM, using the vm-lane recipe kept
# beside the repository in ../shared/vm-lane. Where that recipe is absent it
# says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
lane=${VMLANE:-../shared/vm-lane/run-in-vm.sh}
if [ ! -x "$lane" ] && [ ! -f "$lane" ]; then
	echo "vm-test.sh: SKIP: no vm-lane recipe at $lane; cgroup v2 tests not run" >&2
	exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Packages whose tests exercise cgroups and containers on the real kernel.
pkgs=${VM_PACKAGES:-./internal/cgroups}
for p in $pkgs; do
	name=$(basename "$p")
	CGO_ENABLED=0 go test -c -o "$out/$name.test" "$p"
	echo "-- $p on cgroup v2"
	VMLANE_CACHE=${VMLANE_CACHE:-/var/cache/vm-lane} bash "$lane" "$out/$name.test" -test.timeout 300s -test.count 1
done
