# Shared helpers for the bench scripts; source it, don't run it.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${BENCH_CACHE:-$BENCH_DIR/.cache} # a dot directory: go's ./... patterns skip it
LAYOUT=$CACHE/image          # OCI layout written by build-image.sh
IMAGE_NAME=debian:1          # its ref.name in $LAYOUT
REPO=bench/debian:1          # where it is pushed in the registry

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not installed (apt-get install it)"
	done
}

# Cleanup actions run in reverse order at exit.
CLEANUPS=()
on_exit() { CLEANUPS=("$1" "${CLEANUPS[@]}"); }
run_cleanups() {
	local c
	for c in "${CLEANUPS[@]}"; do eval "$c" || true; done
}
trap run_cleanups EXIT
trap 'exit 130' INT TERM

# now prints a monotonic-enough wall clock in seconds with microseconds.
now() { printf '%s\n' "$EPOCHREALTIME"; }

# timed CMD...: runs CMD with its output in $RUNLOG, prints elapsed seconds.
timed() {
	local t0 t1
	t0=$EPOCHREALTIME
	"$@" >>"$RUNLOG" 2>&1 || { tail -20 "$RUNLOG" >&2; die "failed: $*"; }
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port"
}

# start_registry: runs Debian's docker-registry on 127.0.0.1 with storage in
# a temp dir; sets REGISTRY=127.0.0.1:PORT. Stopped at exit.
start_registry() {
	need docker-registry curl
	local dir port pid
	dir=$(mktemp -d /tmp/bench-registry.XXXXXX)
	on_exit "rm -rf '$dir'"
	port=$(free_port)
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
	docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
	pid=$!
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for _ in $(seq 100); do
		if curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; then
			REGISTRY=127.0.0.1:$port
			log "registry on $REGISTRY (storage $dir)"
			return
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$dir/registry.log" >&2; die "registry exited"; }
		sleep 0.1
	done
	die "registry did not come up"
}

# push_image: copies the OCI layout into the registry as $REGISTRY/$REPO.
push_image() {
	need skopeo
	[ -f "$LAYOUT/index.json" ] || die "no image at $LAYOUT: run bench/build-image.sh first"
	log "pushing $LAYOUT:$IMAGE_NAME to $REGISTRY/$REPO"
	skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:$IMAGE_NAME" "docker://$REGISTRY/$REPO" >&2
}

# stats NAME FILE: FILE holds one number a line; prints median and min–max.
stats() {
	sort -g "$2" | awk -v name="$1" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { printf "%-28s (no data)\n", name; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%-28s median %.3f  (min %.3f, max %.3f, n=%d)\n", name, m, v[1], v[NR], NR
		}'
}

# ratio A B: prints A/B.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b > 0) ? a / b : 0 }'; }

# fresh_fs DIR [SIZE]: mounts a newly made ext4 (in a loop file under
# $WORK) at DIR, so that timed file creation never follows many deletes on
# the same filesystem. drop_fs DIR (or exit) unmounts and removes it.
declare -A FS_IMG
FS_SEQ=0
fresh_fs() {
	local dir=$1 size=${2:-3G} img
	FS_SEQ=$((FS_SEQ + 1))
	img=$WORK/fs-$FS_SEQ.img
	truncate -s "$size" "$img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
	mkdir -p "$dir"
	mount -o loop "$img" "$dir"
	FS_IMG[$dir]=$img
	on_exit "drop_fs '$dir'"
	sync
}

drop_fs() {
	local dir=$1 img=${FS_IMG[$1]:-}
	[ -n "$img" ] || return 0
	umount "$dir" 2>/dev/null || umount -l "$dir"
	rmdir "$dir" 2>/dev/null || true
	rm -f "$img"
	unset "FS_IMG[$dir]"
}

# build_dock [MESSAGE]: leaves in DOCK the dock to measure: $DOCK when the
# caller gave one, else a static build of examples/dock in $WORK.
build_dock() {
	DOCK=${DOCK:-}
	if [ -z "$DOCK" ]; then
		log "${1:-building dock}"
		(cd "$BENCH_DIR/.." && CGO_ENABLED=0 go build -o "$WORK/dock" ./examples/dock)
		DOCK=$WORK/dock
	fi
}

# busybox_tree DIR: a root filesystem in DIR of Debian's busybox with every
# applet linked, and root in /etc/passwd and /etc/group.
busybox_tree() {
	mkdir -p "$1/bin" "$1/etc"
	cp "$(command -v busybox)" "$1/bin/busybox"
	local a
	for a in $(busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$1/bin/$a" # the list names busybox itself
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
	echo 'root:x:0:' >"$1/etc/group"
}
