#!/usr/bin/env bash
# exec.sh: latency of running /bin/true in an already running container,
# `dock exec` against `runc exec`, interleaved, with the median of the
# paired ratios.
#
#   bench/exec.sh [ROUNDS]          (root; default 30 rounds)
#
# Both containers run `sleep` from the same busybox tree with new pid,
# mount, uts, ipc, net and cgroup namespaces. `dock exec` is a whole CLI
# process: it opens the root, asks the container's monitor, which enters
# the namespaces and cgroup, applies Docker's seccomp profile and
# capabilities, and execs; it returns when the process has exited. runc
# exec applies the bundle's defaults. As in run.sh this runs in a private
# mount namespace with /sys/fs/cgroup/unified unmounted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-30}

if [ -z "${BENCH_EXEC_INNER:-}" ]; then
	[ "$(id -u)" = 0 ] || die "exec.sh needs root"
	need runc jq busybox go
	exec unshare -m --propagation private env BENCH_EXEC_INNER=1 bash "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

WORK=$(mktemp -d /tmp/bench-exec.XXXXXX)
on_exit "rm -rf '$WORK'"
RUNLOG=$WORK/run.log
build_dock "building dock"

busybox_tree "$WORK/bundle/rootfs"
tar -C "$WORK/bundle/rootfs" -cf "$WORK/busybox.tar" .
ROOT=$WORK/dock-root
"$DOCK" --root "$ROOT" import "$WORK/busybox.tar" bench/busybox:1 >/dev/null
"$DOCK" --root "$ROOT" run -d --name bench-exec bench/busybox:1 sleep 100000 >/dev/null
on_exit "'$DOCK' --root '$ROOT' rm -f bench-exec >/dev/null 2>&1"

(cd "$WORK/bundle" && runc spec && jq '.process.terminal = false | .process.args = ["sleep", "100000"]' config.json >c && mv c config.json)
if ! jq -e '.linux.namespaces[] | select(.type == "cgroup")' "$WORK/bundle/config.json" >/dev/null; then
	jq '.linux.namespaces += [{"type": "cgroup"}]' "$WORK/bundle/config.json" >"$WORK/c" && mv "$WORK/c" "$WORK/bundle/config.json"
fi
RID=bench-exec-$$
runc run -d --bundle "$WORK/bundle" "$RID" </dev/null >/dev/null 2>&1
on_exit "runc kill '$RID' KILL 2>/dev/null; sleep 0.2; runc delete -f '$RID' 2>/dev/null"

"$DOCK" --root "$ROOT" exec bench-exec /bin/true # warm
runc exec "$RID" /bin/true

: >"$WORK/dock.t"; : >"$WORK/runc.t"; : >"$WORK/r"
log "$ROUNDS rounds: dock exec, runc exec"
for _ in $(seq "$ROUNDS"); do
	d=$(timed "$DOCK" --root "$ROOT" exec bench-exec /bin/true)
	r=$(timed runc exec "$RID" /bin/true)
	echo "$d" >>"$WORK/dock.t"; echo "$r" >>"$WORK/runc.t"
	ratio "$d" "$r" >>"$WORK/r"
done
stats "dock exec (s)" "$WORK/dock.t"
stats "runc exec (s)" "$WORK/runc.t"
stats "dock/runc" "$WORK/r"
