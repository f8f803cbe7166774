package dock

import "github.com/dockkit/dock/internal/errdefs"

// Sentinel errors. Every error dock returns that a caller may act on wraps one
// of these; test with errors.Is.
var (
	// ErrNotFound: no such image, container, blob, snapshot or registry object.
	ErrNotFound = errdefs.ErrNotFound
	// ErrAlreadyExists: a name or key is taken.
	ErrAlreadyExists = errdefs.ErrAlreadyExists
	// ErrInvalidArgument: a reference, option or input could not be used.
	ErrInvalidArgument = errdefs.ErrInvalidArgument
	// ErrNotSupported: this host or platform cannot do what was asked.
	ErrNotSupported = errdefs.ErrNotSupported
	// ErrWrongState: the object is not in a state that allows the call,
	// such as Start on a running container.
	ErrWrongState = errdefs.ErrWrongState
	// ErrDigestMismatch: content did not hash to the digest that named it.
	ErrDigestMismatch = errdefs.ErrDigestMismatch
	// ErrUnauthorized: a registry refused the credentials, or none were given.
	ErrUnauthorized = errdefs.ErrUnauthorized
)
