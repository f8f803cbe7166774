// Package errdefs holds the sentinel errors shared by dock and its internal
// packages, so that an error made deep inside matches the exported sentinel
// with errors.Is.
package errdefs

import "errors"

var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrNotSupported    = errors.New("not supported")
	ErrWrongState      = errors.New("wrong state")
	ErrDigestMismatch  = errors.New("digest mismatch")
	ErrUnauthorized    = errors.New("unauthorized")
	ErrLocked          = errors.New("locked")
)
