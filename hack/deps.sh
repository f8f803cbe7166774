#!/usr/bin/env bash
# deps.sh installs, on Debian, the packages dock's tests and examples use:
# a real registry, busybox for test images, the peers the benchmarks compare
# against, and QEMU for the cgroup v2 test lane. It is quiet when all are
# present already.
set -euo pipefail

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
for p in busybox-static docker-registry skopeo umoci apache2-utils openssl zstd \
	qemu-system-x86 cpio kmod xz-utils iproute2 nftables uidmap; do
	have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian package starts a registry service on :5000 where systemd runs;
# tests start their own on loopback ports, so it is stopped.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
	systemctl stop docker-registry || true
fi
