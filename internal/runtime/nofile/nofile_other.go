//go:build !linux || !(amd64 || arm64)

package nofile

func prlimitNofile(*rlimit) bool { return false }
