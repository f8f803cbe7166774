//go:build !linux

package store

import "os"

func preallocate(*os.File, int64) {}
