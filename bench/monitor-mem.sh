#!/usr/bin/env bash
# monitor-mem.sh: memory of the process each engine keeps per running
# container, with N idle `sleep` containers each: dock's monitor, podman's
# conmon, containerd's containerd-shim-runc-v2.
#
#   bench/monitor-mem.sh [N]          (root; default 5 containers per engine)
#   LINES=100000 bench/monitor-mem.sh 3   (each container first writes that
#                                          many lines to stdout, which the
#                                          process logs, then sleeps)
#
# For each such process it reads VmRSS (/proc/PID/status) and Pss, Pss_Anon
# (/proc/PID/smaps_rollup) a few seconds after the last start, and prints the
# median per engine. PSS splits the pages of a shared binary among the
# processes mapping it, so it is what one more container costs. Like run.sh
# it runs in a private mount namespace with /sys/fs/cgroup/unified unmounted
# (crun, podman's runtime here, refuses the hybrid layout).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-5}
SETTLE=${SETTLE:-3}
LINES=${LINES:-0}
# The containers' command: sleep, after LINES lines of output.
CMD=(/bin/sh -c "i=0; while [ \$i -lt $LINES ]; do echo \"line \$i of the container's output\"; i=\$((i+1)); done; exec sleep 100000")

if [ -z "${BENCH_MEM_INNER:-}" ]; then
	[ "$(id -u)" = 0 ] || die "monitor-mem.sh needs root"
	need busybox go
	exec unshare -m --propagation private env BENCH_MEM_INNER=1 bash "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

WORK=$(mktemp -d /tmp/bench-mem.XXXXXX)
# podman's cleanup processes may still mount and unmount its storage as
# this exits: unmount what is left under WORK (in this mount namespace
# only) and retry.
remove_work() {
	local try
	for try in 1 2 3 4 5; do
		awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
		rm -rf "$WORK" 2>/dev/null && return
		sleep 1
	done
	rm -rf "$WORK"
}
on_exit remove_work
RUNLOG=$WORK/run.log
build_dock "building dock (CGO_ENABLED=0)"

busybox_tree "$WORK/rootfs"
tar -C "$WORK/rootfs" -cf "$WORK/busybox.tar" .

# mem PID...: one line per process: rss pss pss_anon (KiB).
mem() {
	local p
	for p in "$@"; do
		awk '/^VmRSS:/ { r = $2 } END { printf "%s ", r }' "/proc/$p/status"
		awk '/^Pss:/ { p = $2 } /^Pss_Anon:/ { a = $2 } END { printf "%s %s\n", p, a }' "/proc/$p/smaps_rollup"
	done
}

# report NAME FILE: medians of the columns of mem's lines.
report() {
	sort -n "$2" | awk -v name="$1" '
		{ r[NR] = $1; p[NR] = $2; a[NR] = $3 }
		function med(v, n,   i, j, t) {
			for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
			return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		END {
			if (NR == 0) { printf "%-26s (none)\n", name; exit }
			printf "%-26s n=%d  RSS %6.0f KiB  PSS %6.0f KiB  PSS anon %6.0f KiB\n", name, NR, med(r, NR), med(p, NR), med(a, NR)
		}'
}

# dock: one monitor per container.
ROOT=$WORK/dock-root
"$DOCK" --root "$ROOT" import "$WORK/busybox.tar" bench/busybox:1 >>"$RUNLOG"
on_exit "for i in \$(seq $N); do '$DOCK' --root '$ROOT' rm -f benchmem$$-\$i >/dev/null 2>&1; done"
for i in $(seq "$N"); do
	"$DOCK" --root "$ROOT" run -d --name "benchmem$$-$i" bench/busybox:1 "${CMD[@]}" >>"$RUNLOG"
done
sleep "$SETTLE"
mem $(pgrep -f "^dock-monitor $ROOT/containers/") >"$WORK/dock.mem"

# podman: conmon per container.
if command -v podman >/dev/null && command -v conmon >/dev/null; then
	P=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --cgroup-manager cgroupfs --events-backend file)
	"${P[@]}" import "$WORK/busybox.tar" bench/busybox:1 >>"$RUNLOG" 2>&1
	# podman leaves its storage mounted; they live in this mount namespace only.
	on_exit "awk '\$2 ~ \"^$WORK/\" { print \$2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l"
	on_exit "'${P[0]}' ${P[*]:1} rm -f -a >/dev/null 2>&1"
	for i in $(seq "$N"); do
		"${P[@]}" run -d --network=none --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
			--name "benchmem$$-$i" bench/busybox:1 "${CMD[@]}" >>"$RUNLOG" 2>&1
	done
	sleep "$SETTLE"
	mem $(pgrep -f "conmon .*$WORK/podman") >"$WORK/conmon.mem"
else
	log "podman or conmon missing: apt-get install -y podman conmon"
fi

# containerd: one containerd-shim-runc-v2 per container.
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
	C=$WORK/containerd
	mkdir -p "$C"
	cat >"$C/config.toml" <<EOT
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
EOT
	containerd -c "$C/config.toml" >"$C/log" 2>&1 &
	cpid=$!
	on_exit "kill $cpid 2>/dev/null; wait $cpid 2>/dev/null"
	for _ in $(seq 100); do [ -S "$C/containerd.sock" ] && break; sleep 0.1; done
	CTR=(ctr -a "$C/containerd.sock" -n benchmem)
	on_exit "for i in \$(seq $N); do ${CTR[*]} tasks kill -s KILL benchmem$$-\$i >/dev/null 2>&1; sleep 0.2; ${CTR[*]} tasks rm -f benchmem$$-\$i >/dev/null 2>&1; ${CTR[*]} c rm benchmem$$-\$i >/dev/null 2>&1; done"
	for i in $(seq "$N"); do
		"${CTR[@]}" run -d --rootfs "$WORK/rootfs" "benchmem$$-$i" "${CMD[@]}" >>"$RUNLOG" 2>&1
	done
	sleep "$SETTLE"
	mem $(pgrep -f "containerd-shim-runc-v2 -namespace benchmem .*-address $C/containerd.sock") >"$WORK/shim.mem"
else
	log "containerd missing: apt-get install -y containerd"
fi

report "dock monitor" "$WORK/dock.mem"
[ -f "$WORK/conmon.mem" ] && report "conmon (podman)" "$WORK/conmon.mem"
[ -f "$WORK/shim.mem" ] && report "containerd-shim-runc-v2" "$WORK/shim.mem"
exit 0
