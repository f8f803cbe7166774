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
# Packages whose tests exercise cgroups and containers on the real kernel,
# each with the tests to run there (registry tests skip: the guest has no
# docker-registry).
lanes=${VM_LANES:-"./internal/cgroups:. ./internal/runtime:. ./internal/network:. .:^Test(Container|Exec|Pause|Stats|Events|OOMEvent|Restart|Health|Attach|UnpackImplicit|Recover|UserNamespace)"}
for lane_spec in $lanes; do
	p=${lane_spec%%:*}
	run=${lane_spec#*:}
	name=$(basename "$(cd "$p" && pwd)")
	CGO_ENABLED=0 go test -c -o "$out/$name.test" "$p"
	echo "-- $p ($run) on cgroup v2"
	VMLANE_CACHE=${VMLANE_CACHE:-/var/cache/vm-lane} VMLANE_MEM=${VMLANE_MEM:-2048} VMLANE_ENV_DOCK_TEST_IP_FORWARD=1 \
		bash "$lane" "$out/$name.test" -test.run "$run" -test.timeout 600s -test.count 1
done
