#!/usr/bin/env bash
# many.sh: N containers started at once, for N in a series (default 25 50
# 100): wall time until all run, errors, memory of their monitors (sum of
# Pss and of VmRSS) and of the whole host (MemAvailable drop), then that
# removing them all leaves no monitor, cgroup or mount behind. Linear cost
# shows as a flat time and memory per container across the series.
#
#   bench/many.sh [N...]          (root)
#
# Each container is `dock run -d busybox sleep` from its own CLI process,
# all launched together; the machine has 2 cores, so the starts contend.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "many.sh needs root"
need busybox go
SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(25 50 100)

WORK=$(mktemp -d /tmp/bench-many.XXXXXX)
on_exit "rm -rf '$WORK'"
build_dock "building dock"
busybox_tree "$WORK/rootfs"
tar -C "$WORK/rootfs" -cf "$WORK/busybox.tar" .
ROOT=$WORK/dock-root
on_exit "'$DOCK' --root '$ROOT' ps -aq 2>/dev/null | xargs -r '$DOCK' --root '$ROOT' rm -f >/dev/null 2>&1"
"$DOCK" --root "$ROOT" import "$WORK/busybox.tar" bench/busybox:1 >/dev/null
"$DOCK" --root "$ROOT" run --rm bench/busybox:1 true # warm

monitors() { pgrep -f "^dock-monitor $ROOT/" || true; }
memavail() { awk '/MemAvailable/ { print $2 }' /proc/meminfo; }

printf '%-6s %-10s %-12s %-7s %-16s %-16s %-16s %s\n' N "time (s)" "ms/container" errors "monitor Pss KiB" "monitor RSS KiB" "host KiB/ctr" leftovers
for n in "${SERIES[@]}"; do
	sync; sleep 1
	before=$(memavail)
	t0=$EPOCHREALTIME
	for i in $(seq "$n"); do
		"$DOCK" --root "$ROOT" run -d --name "m$i" bench/busybox:1 sleep 100000 >>"$WORK/ids.$n" 2>>"$WORK/err.$n" &
	done
	errs=0
	for job in $(jobs -p); do wait "$job" || errs=$((errs + 1)); done
	t1=$EPOCHREALTIME
	sleep 2
	running=$("$DOCK" --root "$ROOT" ps -q | wc -l)
	pss=0; rss=0
	for p in $(monitors); do
		pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")))
		rss=$((rss + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")))
	done
	after=$(memavail)
	nm=$(monitors | wc -l)
	"$DOCK" --root "$ROOT" ps -aq | xargs -r "$DOCK" --root "$ROOT" rm -f >/dev/null
	sleep 1
	left_m=$(monitors | wc -l)
	left_cg=0
	while read -r id; do
		for d in /sys/fs/cgroup/*/dock/"$id" /sys/fs/cgroup/dock/"$id"; do
			[ -d "$d" ] && left_cg=$((left_cg + 1))
		done
	done <"$WORK/ids.$n"
	left_mnt=$(grep -c "$ROOT" /proc/self/mountinfo || true)
	[ "$running" = "$n" ] || errs="$errs (running $running)"
	awk -v n="$n" -v a="$t0" -v b="$t1" -v e="$errs" -v pss="$pss" -v rss="$rss" -v nm="$nm" -v d="$((before - after))" \
		-v lm="$left_m" -v lc="$left_cg" -v lmt="$left_mnt" 'BEGIN {
		printf "%-6d %-10.2f %-12.1f %-7s %-16s %-16s %-16.0f monitors %d, cgroups %d, mounts %d\n",
			n, b - a, (b - a) * 1000 / n, e, sprintf("%d (%d/ctr)", pss, pss / (nm ? nm : 1)),
			sprintf("%d (%d/ctr)", rss, rss / (nm ? nm : 1)), d / n, lm, lc, lmt }'
	if [ -s "$WORK/err.$n" ]; then sort "$WORK/err.$n" | uniq -c | head -5 >&2; fi
done
