#!/usr/bin/env bash
# quickstart.sh is the main job: on a fresh Debian machine it installs
# busybox-static, then builds and runs a container with dock, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
fi
exec go run ./examples/quickstart "$@"
