#!/usr/bin/env bash
# unpack.sh [ROUNDS]: pull and unpack of the bench image from a loopback
# registry, each timed run on a FRESH ext4 (a loop file made and mounted
# outside the timed region; see /work/shared/BENCH-NOTES.md on why):
#
#   part 1, pull + unpack:  dock pull  vs  skopeo copy + umoci unpack
#                           (vs podman pull, if podman is installed)
#   part 2, apply only:     tar -xf of the uncompressed layers, in order
#                           vs dock applying the same uncompressed layers
#
# Runs interleaved, in a rotating order, ROUNDS times (default 5); prints each
# round's seconds and the median of the per-round ratios with min and max.
# DOCK is the dock binary (without it, dock's runs are skipped); part 2's dock
# side runs `$DOCK layer apply DIR LAYER...` (DOCK_APPLY overrides that
# command). DOCK_B, another dock binary (say, a build of the commit before a
# change), adds a column "dockb" to part 1 and its paired ratio, for an A/B
# of the two builds in the same interleaved rounds. Needs root (mount), skopeo, umoci, mkfs.ext4, and
# bench/build-image.sh to have built the image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${1:-${ROUNDS:-5}}
DOCK=${DOCK:-}
DOCK_B=${DOCK_B:-}
DOCK_APPLY=${DOCK_APPLY:-${DOCK:+$DOCK layer apply}}
[ "$(id -u)" = 0 ] || die "needs root (loop mounts)"
need skopeo umoci mkfs.ext4 curl jq tar
[ -z "$DOCK" ] || [ -x "$DOCK" ] || die "DOCK=$DOCK is not executable"
[ -z "$DOCK_B" ] || [ -x "$DOCK_B" ] || die "DOCK_B=$DOCK_B is not executable"
HAVE_PODMAN=
command -v podman >/dev/null && HAVE_PODMAN=1

WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/bench-unpack.XXXXXX")
on_exit "rm -rf '$WORK'"
RUNLOG=$WORK/run.log
start_registry
push_image
REF=$REGISTRY/$REPO

# --- part 1: pull + unpack ---------------------------------------------------

unpack_dock() { "$DOCK" --root "$1/dock" --insecure-registry "$REGISTRY" pull "$REF"; }
unpack_dockb() { "$DOCK_B" --root "$1/dock" --insecure-registry "$REGISTRY" pull "$REF"; }

unpack_umoci() {
	skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$1/oci:x" &&
		umoci unpack --image "$1/oci:x" "$1/bundle"
}

unpack_podman() {
	podman --root "$1/storage" --runroot "$1/run" --events-backend none --cgroup-manager cgroupfs \
		pull --quiet --tls-verify=false "$REF"
}

# Checks, outside the timed region, that a run did the whole job.
check_unpack_dock() { find "$1/dock/snapshots" -path '*/srv/app.log' -size +1M 2>/dev/null | grep -q .; }
check_unpack_dockb() { check_unpack_dock "$@"; }
check_unpack_umoci() { [ -s "$1/bundle/rootfs/srv/app.log" ] && [ -x "$1/bundle/rootfs/usr/bin/perl" ]; }
check_unpack_podman() {
	[ -n "$(podman --root "$1/storage" --runroot "$1/run" --events-backend none images -q 2>/dev/null)" ]
}

# --- part 2: apply uncompressed layers ---------------------------------------

# The uncompressed layers: build-image.sh keeps them; else decompress them
# from the layout (outside any timed region).
RAW_LAYERS=()
raw_layers() {
	local n d
	if [ -f "$CACHE/layers/1.tar" ]; then
		for n in 1 2 3 4; do RAW_LAYERS+=("$CACHE/layers/$n.tar"); done
	else
		n=0
		for d in $(jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/$(jq -r '.manifests[0].digest' "$LAYOUT/index.json" | cut -d: -f2)"); do
			n=$((n + 1))
			pigz -dc "$LAYOUT/blobs/sha256/${d#sha256:}" >"$WORK/layer$n.tar"
			RAW_LAYERS+=("$WORK/layer$n.tar")
		done
	fi
	cat "${RAW_LAYERS[@]}" >/dev/null # into the page cache, for every run alike
}

apply_tar() {
	local l
	mkdir -p "$1/rootfs"
	for l in "${RAW_LAYERS[@]}"; do tar -xf "$l" -C "$1/rootfs" --numeric-owner; done
}

check_apply_tar() { [ -s "$1/rootfs/srv/app.log" ] && [ -x "$1/rootfs/usr/bin/perl" ]; }
check_apply_dock() { check_apply_tar "$@"; }

# apply_dock DIR: applies RAW_LAYERS, in order, into DIR with dock's layer
# code: $DOCK_APPLY DIR L1.tar L2.tar ... (by default `dock layer apply`, a
# hidden command over dock.ApplyLayer; like tar, it syncs nothing).
apply_dock() {
	mkdir -p "$1/rootfs"
	$DOCK_APPLY "$1/rootfs" "${RAW_LAYERS[@]}"
}

# --- the runs ----------------------------------------------------------------

declare -A T
# rounds PART TOOL...: runs unpack_TOOL or apply_TOOL for each tool,
# interleaved, ROUNDS times, each on a fresh filesystem; prints the table.
rounds() {
	local part=$1 r i t n m
	shift
	local tools=("$@")
	n=${#tools[@]}
	printf '%-6s' round
	for t in "${tools[@]}"; do printf '%10s' "$t"; done
	echo
	for r in $(seq 1 "$ROUNDS"); do
		for i in $(seq 0 $((n - 1))); do
			t=${tools[$(((i + r) % n))]}
			m=$WORK/mnt-$part-$t-$r
			fresh_fs "$m"
			T[$part,$t,$r]=$(timed "${part}_$t" "$m")
			if declare -F "check_${part}_$t" >/dev/null; then
				"check_${part}_$t" "$m" || die "$t left no complete result in $m"
			fi
			drop_fs "$m"
		done
		printf '%-6s' "$r"
		for t in "${tools[@]}"; do printf '%10s' "${T[$part,$t,$r]}"; done
		echo
	done
	echo
	for t in "${tools[@]}"; do
		for r in $(seq 1 "$ROUNDS"); do echo "${T[$part,$t,$r]}"; done >"$WORK/$t.txt"
		stats "$t (s)" "$WORK/$t.txt"
	done
	local first=${tools[0]}
	for t in "${tools[@]:1}"; do
		for r in $(seq 1 "$ROUNDS"); do ratio "${T[$part,$first,$r]}" "${T[$part,$t,$r]}"; done >"$WORK/ratio.txt"
		stats "$first/$t (paired ratio)" "$WORK/ratio.txt"
	done
}

echo "== pull + unpack: $REF"
tools=()
[ -n "$DOCK" ] && tools+=(dock)
[ -n "$DOCK_B" ] && tools+=(dockb)
tools+=(umoci)
[ -n "$HAVE_PODMAN" ] && tools+=(podman)
[ -z "$HAVE_PODMAN" ] && log "podman not installed (apt-get install -y podman): skipped"
rounds unpack "${tools[@]}"

echo
echo "== apply uncompressed layers"
raw_layers
tools=()
[ -n "${DOCK_APPLY:-}" ] && tools+=(dock)
[ -z "${DOCK_APPLY:-}" ] && log "DOCK_APPLY not set: dock's side of the apply comparison skipped"
tools+=(tar)
rounds apply "${tools[@]}"
