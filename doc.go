// Package dock runs containers from inside a Go program: it pulls images from
// OCI and Docker registries into a local content-addressed store, unpacks
// them into copy-on-write snapshots, and runs containers isolated by Linux
// namespaces and cgroups, with no daemon and no external runtime.
//
// A [Host] owns one state root; every program that opens the same root sees
// the same images and containers.
package dock
