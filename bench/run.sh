#!/usr/bin/env bash
# run.sh: container start latency, `dock run --rm busybox /bin/true` against
# `runc run` and `crun run` of a prepared bundle of the same busybox tree,
# interleaved, with the median of the paired ratios.
#
#   bench/run.sh [ROUNDS]          (root; default 30 rounds)
#
# All three get new pid, mount, uts, ipc, net and cgroup namespaces, a cgroup,
# and a pivot_root into the busybox tree. dock also applies Docker's seccomp
# profile and sets up /dev, masked paths and its monitor; runc and crun run
# the `runc spec` defaults (no seccomp profile). crun refuses this host's
# hybrid cgroup layout, so the comparison runs in a private mount namespace
# with /sys/fs/cgroup/unified unmounted, for all three alike.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-30}

if [ -z "${BENCH_RUN_INNER:-}" ]; then
	[ "$(id -u)" = 0 ] || die "run.sh needs root"
	need runc crun jq busybox go
	exec unshare -m --propagation private env BENCH_RUN_INNER=1 bash "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

WORK=$(mktemp -d /tmp/bench-run.XXXXXX)
on_exit "rm -rf '$WORK'"
RUNLOG=$WORK/run.log
build_dock "building dock (CGO_ENABLED=0: a static binary, as the project builds it)"

# The busybox tree, as a bundle rootfs and as a dock image.
busybox_tree "$WORK/bundle/rootfs"
tar -C "$WORK/bundle/rootfs" -cf "$WORK/busybox.tar" .
ROOT=$WORK/dock-root
"$DOCK" --root "$ROOT" import "$WORK/busybox.tar" bench/busybox:1 >/dev/null
"$DOCK" --root "$ROOT" run --rm bench/busybox:1 /bin/true # warm: sealed binary, snapshots

(cd "$WORK/bundle" && runc spec && jq '.process.terminal = false | .process.args = ["/bin/true"]' config.json >c && mv c config.json)
if ! jq -e '.linux.namespaces[] | select(.type == "cgroup")' "$WORK/bundle/config.json" >/dev/null; then
	jq '.linux.namespaces += [{"type": "cgroup"}]' "$WORK/bundle/config.json" >"$WORK/c" && mv "$WORK/c" "$WORK/bundle/config.json"
fi

: >"$WORK/dock.t"; : >"$WORK/runc.t"; : >"$WORK/crun.t"; : >"$WORK/r-runc"; : >"$WORK/r-crun"
log "$ROUNDS rounds: dock, runc, crun"
for i in $(seq "$ROUNDS"); do
	d=$(timed "$DOCK" --root "$ROOT" run --rm bench/busybox:1 /bin/true)
	r=$(timed runc run --bundle "$WORK/bundle" "bench-runc-$$-$i")
	c=$(timed crun run --bundle "$WORK/bundle" "bench-crun-$$-$i")
	echo "$d" >>"$WORK/dock.t"; echo "$r" >>"$WORK/runc.t"; echo "$c" >>"$WORK/crun.t"
	ratio "$d" "$r" >>"$WORK/r-runc"; ratio "$d" "$c" >>"$WORK/r-crun"
done
stats "dock run --rm (s)" "$WORK/dock.t"
stats "runc run (s)" "$WORK/runc.t"
stats "crun run (s)" "$WORK/crun.t"
stats "dock/runc" "$WORK/r-runc"
stats "dock/crun" "$WORK/r-crun"
