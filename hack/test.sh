#!/usr/bin/env bash
# test.sh runs every dock test on this machine, then the container and cgroup
# tests again on a pure cgroup v2 kernel in a small VM. Run it as root: the
# tests mount, create namespaces and cgroups, and start a real registry.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin

if [ "$(id -u)" = 0 ]; then
	hack/deps.sh
else
	echo "test.sh: not root: root-only tests will skip" >&2
fi

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...

echo "== staticcheck"
sc=$(go env GOPATH)/bin/staticcheck
if ! [ -x "$sc" ]; then
	GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
"$sc" ./...

echo "== go test"
# Static, as the project builds it: a container's init runs the test
# binary in the container with WithInit, where no dynamic loader is.
CGO_ENABLED=0 go test -count=1 -timeout 25m -p 2 ./...

echo "== cgroup v2 lane"
hack/vm-test.sh
