#!/usr/bin/env bash
# build-image.sh: builds a realistic multi-layer Debian image for the pull and
# unpack benchmarks, as an OCI layout in $BENCH_CACHE/image (default
# bench/.cache/image), then pushes it to a loopback registry it starts (and stops
# at exit) to check that the layout is servable.
#
# Layers (gzip, each a tar of what changed):
#   1  debootstrap --variant=minbase bookworm            (~6.7k files)
#   2  python3 and perl, installed with apt-get in a chroot
#   3  locales and man pages (docs), installed the same way
#   4  data: pseudo-random, partly compressible files      (~100 MB)
# About 180 MB compressed, 400 MB and 12k files unpacked.
#
# Needs root (debootstrap, chroot, mount of /proc), debootstrap, pigz, skopeo,
# docker-registry, jq, openssl. Packages come from the apt mirror this host
# uses. Everything is cached: a rerun only re-pushes. --rebuild starts over.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
need debootstrap pigz skopeo jq openssl sha256sum tar chroot

if [ "${1:-}" = --rebuild ]; then
	rm -rf "$CACHE/rootfs" "$CACHE/layers" "$LAYOUT"
fi
mkdir -p "$CACHE/layers"
ROOTFS=$CACHE/rootfs
SUITE=bookworm

# mirror: the first deb URI of the main Debian archive in apt's sources.
mirror() {
	local m
	if [ -n "${BENCH_MIRROR:-}" ]; then
		echo "$BENCH_MIRROR"
		return
	fi
	m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
	[ -n "$m" ] || m=$(grep -hsE '^deb (\[[^]]*\] )?http' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
		sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}' | grep -v security | grep debian | head -1 || true)
	[ -n "$m" ] || die "no Debian mirror in /etc/apt/sources.list*; set BENCH_MIRROR"
	echo "$m"
}

in_chroot() {
	chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C "$@"
}

# chroot_install LAYER PKG...: installs PKG in the rootfs and records as
# layer LAYER every entry whose ctime changed meanwhile (dpkg keeps package
# mtimes, but a created or changed file always gets a new ctime).
chroot_install() {
	local n=$1
	shift
	local out=$CACHE/layers/$n.tar
	[ -f "$out" ] && return
	log "layer $n: apt-get install $*"
	local marker=$CACHE/layers/$n.marker
	touch "$marker"
	sleep 1.1 # ctime has whole-second granularity on some filesystems
	# Layers never carry /dev; a rootfs recreated from layer 1 needs these.
	local dev
	for dev in null:3 zero:5 full:7 random:8 urandom:9; do
		[ -c "$ROOTFS/dev/${dev%:*}" ] || mknod -m 666 "$ROOTFS/dev/${dev%:*}" c 1 "${dev#*:}"
	done
	cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
	mount -t proc proc "$ROOTFS/proc"
	on_exit "umount '$ROOTFS/proc' 2>/dev/null"
	printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
	chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
	in_chroot apt-get update -qq
	in_chroot apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	in_chroot apt-get clean
	if [ "$n" = 3 ]; then
		# Generate a few locales so the docs layer also carries binary data.
		sed -i -E 's/^# (en_US.UTF-8|de_DE.UTF-8|fr_FR.UTF-8|ja_JP.UTF-8|C.UTF-8)/\1/' "$ROOTFS/etc/locale.gen"
		in_chroot locale-gen >/dev/null
	fi
	rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS/usr/sbin/policy-rc.d"
	umount "$ROOTFS/proc"
	(cd "$ROOTFS" && find . -cnewer "$marker" ! -path './proc/*' ! -path './dev/*' ! -path . -print0 |
		LC_ALL=C sort -z |
		tar --null --no-recursion --numeric-owner --xattrs -cf "$out.tmp" -T -)
	mv "$out.tmp" "$out"
}

# 1: the base system.
if [ ! -f "$CACHE/layers/1.tar" ]; then
	if [ ! -f "$ROOTFS/.debootstrap-done" ]; then
		rm -rf "$ROOTFS"
		m=$(mirror)
		log "layer 1: debootstrap --variant=minbase $SUITE from $m (a minute or two)"
		debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$m" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
		rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
		mkdir -p "$ROOTFS/dev/pts"
		touch "$ROOTFS/.debootstrap-done"
	fi
	log "layer 1: tar of the base rootfs"
	(cd "$ROOTFS" && find . ! -path './proc/*' ! -path './dev/*' ! -path . ! -name .debootstrap-done -print0 |
		LC_ALL=C sort -z |
		tar --null --no-recursion --numeric-owner --xattrs -cf "$CACHE/layers/1.tar.tmp" -T -)
	mv "$CACHE/layers/1.tar.tmp" "$CACHE/layers/1.tar"
fi

# 2 and 3: package sets on top, installed into the base rootfs (recreated
# from layer 1 if only the layer was kept).
if [ ! -f "$CACHE/layers/3.tar" ] && [ ! -d "$ROOTFS/usr" ]; then
	[ -f "$CACHE/layers/2.tar" ] && die "layer 2 without its rootfs: run with --rebuild"
	log "recreating the base rootfs from layer 1"
	mkdir -p "$ROOTFS"
	tar -xf "$CACHE/layers/1.tar" -C "$ROOTFS" --numeric-owner
fi
chroot_install 2 python3 perl
chroot_install 3 locales manpages less

# 4: data files, deterministic: AES-CTR keystream of zeros, hex-encoded or
# base64-encoded in turns, with runs of text, so gzip saves about a quarter.
if [ ! -f "$CACHE/layers/4.tar" ]; then
	log "layer 4: data files"
	d=$CACHE/layers/4.dir
	rm -rf "$d"
	mkdir -p "$d/srv/data"
	for i in $(seq -w 1 240); do
		sub=$d/srv/data/set$((10#$i % 8))
		mkdir -p "$sub"
		size=$(((10#$i * 7919) % 700000 + 60000))
		key=$(printf '%032x' "$((10#$i))")
		head -c "$size" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 |
			if ((10#$i % 3 == 0)); then base64 -w 76; else base64 -w 0 | fold -w 120; fi >"$sub/blob$i.txt"
		if ((10#$i % 4 == 0)); then
			for _ in $(seq 200); do echo "record $i: the quick brown fox jumps over the lazy dog"; done >>"$sub/blob$i.txt"
		fi
	done
	# Many small records and one long log: the compressible part.
	mkdir -p "$d/srv/records"
	for i in $(seq -w 1 1000); do
		printf '{"id": %d, "name": "record-%s", "tags": ["alpha", "beta", "gamma"], "payload": "%s"}\n' \
			"$((10#$i))" "$i" "$(printf '%0*d' $((10#$i % 1500 + 200)) 0 | tr 0 x)" >"$d/srv/records/$i.json"
	done
	seq 1 500000 | awk '{ printf "2024-01-01T00:%02d:%02d host app[%d]: request %d served in %d ms\n", ($1 / 60) % 60, $1 % 60, $1 % 977, $1, ($1 * 7) % 350 }' >"$d/srv/app.log"
	find "$d" -exec touch -h -d @1704067200 {} +
	(cd "$d" && find . ! -path . -print0 | LC_ALL=C sort -z |
		tar --null --no-recursion --numeric-owner -cf "$CACHE/layers/4.tar.tmp" -T -)
	mv "$CACHE/layers/4.tar.tmp" "$CACHE/layers/4.tar"
	rm -rf "$d"
fi

# The OCI layout.
blob() { # blob FILE MEDIATYPE: moves FILE into the layout, prints its descriptor
	local f=$1 mt=$2 dg size
	dg=$(sha256sum "$f" | cut -d' ' -f1)
	size=$(stat -c %s "$f")
	mv "$f" "$LAYOUT/blobs/sha256/$dg"
	jq -nc --arg mt "$mt" --arg d "sha256:$dg" --argjson s "$size" '{mediaType: $mt, digest: $d, size: $s}'
}

if [ ! -f "$LAYOUT/index.json" ]; then
	log "writing OCI layout $LAYOUT"
	rm -rf "$LAYOUT"
	mkdir -p "$LAYOUT/blobs/sha256"
	layers=() diffids=()
	for n in 1 2 3 4; do
		diffids+=("sha256:$(sha256sum "$CACHE/layers/$n.tar" | cut -d' ' -f1)")
		pigz -n -6 -c "$CACHE/layers/$n.tar" >"$LAYOUT/layer.tmp"
		layers+=("$(blob "$LAYOUT/layer.tmp" application/vnd.oci.image.layer.v1.tar+gzip)")
	done
	jq -nc --args '{
		created: "2024-01-01T00:00:00Z", architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"], Cmd: ["bash"]},
		rootfs: {type: "layers", diff_ids: $ARGS.positional},
		history: [range($ARGS.positional | length) | {created: "2024-01-01T00:00:00Z", created_by: "bench/build-image.sh"}]
	}' "${diffids[@]}" | sed "s/\"amd64\"/\"$(dpkg --print-architecture)\"/" >"$LAYOUT/config.tmp"
	config=$(blob "$LAYOUT/config.tmp" application/vnd.oci.image.config.v1+json)
	printf '%s\n' "${layers[@]}" | jq -sc --argjson c "$config" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: $c, layers: .}' >"$LAYOUT/manifest.tmp"
	manifest=$(blob "$LAYOUT/manifest.tmp" application/vnd.oci.image.manifest.v1+json)
	echo '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
	jq -nc --argjson m "$manifest" --arg n "$IMAGE_NAME" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
		  manifests: [$m + {annotations: {"org.opencontainers.image.ref.name": $n}}]}' >"$LAYOUT/index.json.tmp"
	mv "$LAYOUT/index.json.tmp" "$LAYOUT/index.json"
fi

# Summary.
files=0 usize=0
for n in 1 2 3 4; do
	c=$(tar -tf "$CACHE/layers/$n.tar" | wc -l)
	s=$(stat -c %s "$CACHE/layers/$n.tar")
	files=$((files + c)) usize=$((usize + s))
	log "layer $n: $c entries, $((s / 1048576)) MiB uncompressed"
done
csize=$(du -sb "$LAYOUT/blobs" | cut -f1)
log "image: $files entries, $((usize / 1048576)) MiB uncompressed, $((csize / 1048576)) MiB compressed"

if [ "${BENCH_NO_PUSH:-}" = "" ]; then
	start_registry
	push_image
	skopeo inspect --tls-verify=false "docker://$REGISTRY/$REPO" | jq -c '{Digest, Layers: (.Layers | length)}'
fi
