#!/usr/bin/env bash
# pull.sh [ROUNDS]: fetch-only pull of the bench image from a loopback
# registry: `dock pull --no-unpack` vs `skopeo copy` (to an OCI layout) vs
# one `curl` fetching the manifest, config and layers (in parallel, as skopeo
# does; no digest checks: a floor). Each pull lands in a fresh directory;
# the three run interleaved, in a rotating order, ROUNDS times (default 5).
#
# Prints each round's seconds and, per pair, the median of the per-round
# ratios with their min and max. Set DOCK to the dock binary to include it;
# without DOCK, only skopeo and curl run.
#
# Needs bench/build-image.sh to have built the image (it is pushed to a
# registry this script starts on 127.0.0.1 and stops at exit).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${1:-${ROUNDS:-5}}
DOCK=${DOCK:-}
need skopeo curl jq
[ -z "$DOCK" ] || [ -x "$DOCK" ] || die "DOCK=$DOCK is not executable"

WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/bench-pull.XXXXXX")
on_exit "rm -rf '$WORK'"
RUNLOG=$WORK/run.log
start_registry
push_image
REF=$REGISTRY/$REPO

# The blobs curl fetches, as the registry lists them.
base=http://$REGISTRY/v2/${REPO%:*}
manifest_url=$base/manifests/${REPO##*:}
accept='Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
mapfile -t BLOBS < <(curl -sf -H "$accept" "$manifest_url" | jq -r '.config.digest, .layers[].digest')
log "image $REF: ${#BLOBS[@]} blobs (config + $((${#BLOBS[@]} - 1)) layers)"

pull_dock() { "$DOCK" --root "$1/root" --insecure-registry "$REGISTRY" pull --no-unpack "$REF"; }

pull_skopeo() { skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$1/oci:x"; }

pull_curl() {
	local args=(-H "$accept" -o "$1/manifest.json" "$manifest_url") d
	for d in "${BLOBS[@]}"; do
		args+=(-o "$1/${d#sha256:}" "$base/blobs/$d")
	done
	curl -sSf -Z --parallel-max 6 "${args[@]}"
}

# Checks, outside the timed region, that a run did the whole job.
check_dock() { "$DOCK" --root "$1/root" images 2>/dev/null | grep -q "${REPO%:*}"; }
check_skopeo() { [ -f "$1/oci/index.json" ] && [ "$(find "$1/oci/blobs" -type f | wc -l)" -eq $((${#BLOBS[@]} + 1)) ]; }
check_curl() { [ "$(find "$1" -type f | wc -l)" -eq $((${#BLOBS[@]} + 1)) ]; }

TOOLS=(skopeo curl)
[ -n "$DOCK" ] && TOOLS=(dock skopeo curl)
declare -A T
printf '%-6s' round
for t in "${TOOLS[@]}"; do printf '%10s' "$t"; done
echo
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order each round so no tool always runs first.
	n=${#TOOLS[@]}
	for i in $(seq 0 $((n - 1))); do
		t=${TOOLS[$(((i + r) % n))]}
		d=$WORK/$t-$r
		mkdir -p "$d"
		T[$t,$r]=$(timed "pull_$t" "$d")
		"check_$t" "$d" || die "$t left no complete result in $d"
		rm -rf "$d"
	done
	printf '%-6s' "$r"
	for t in "${TOOLS[@]}"; do printf '%10s' "${T[$t,$r]}"; done
	echo
done

echo
for t in "${TOOLS[@]}"; do
	for r in $(seq 1 "$ROUNDS"); do echo "${T[$t,$r]}"; done >"$WORK/$t.txt"
	stats "$t (s)" "$WORK/$t.txt"
done
pairs=("skopeo curl")
[ -n "$DOCK" ] && pairs=("dock skopeo" "dock curl")
for p in "${pairs[@]}"; do
	set -- $p
	for r in $(seq 1 "$ROUNDS"); do ratio "${T[$1,$r]}" "${T[$2,$r]}"; done >"$WORK/ratio.txt"
	stats "$1/$2 (paired ratio)" "$WORK/ratio.txt"
done
