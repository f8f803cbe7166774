//go:build !linux

package store

import "os"

func preallocate(*os.File, int64) {}

func startWriteback(*os.File, int64, int64) {}
