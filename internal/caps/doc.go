// Package caps names Linux capabilities, merges docker's --cap-add and
// --cap-drop into a container's set, and applies a set to the calling
// thread before it execs the container's process.
//
// Capabilities belong to threads, not processes: [Apply] and its parts act
// on the calling OS thread only, which must be locked
// (runtime.LockOSThread) and be the one that calls execve. They make no
// allocations, so they suit the re-executed init between clone and exec.
package caps
