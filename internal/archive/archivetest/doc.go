// Package archivetest builds tar layers and compares file trees for tests of
// layer apply and diff: what a layer should have produced is a tree equal in
// content and metadata to a reference. The tree helpers are Linux-only.
package archivetest
