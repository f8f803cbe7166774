//go:build linux

// Package snapshottest is a conformance suite for implementations of
// dock.Snapshotter. An implementation's test calls [Run] with a constructor;
// the suite checks the contract documented on dock.Snapshotter: chains of
// prepared and committed snapshots, what mounts show and where writes land,
// deletions of lower files, read-only views, Stat, Walk and Usage, the
// removal and naming rules, labels, concurrency, deep chains and reopening a
// root. Cases that mount need root and skip without it.
package snapshottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/internal/snapshots"
	"github.com/dockkit/dock/internal/testutil"
)

// NewFunc makes a snapshotter whose state lives under root, a fresh empty
// directory on the first call. It returns the snapshotter and a function
// that releases what it holds once the case ends (nil: the snapshotter's
// Close). The suite calls it again
// with the same root to check that snapshots survive a reopen.
type NewFunc func(ctx context.Context, root string) (dock.Snapshotter, func() error, error)

// Run runs every case of the suite as subtests of t under name, each on a
// new root made by newSnapshotter.
func Run(t *testing.T, name string, newSnapshotter func(ctx context.Context, root string) (dock.Snapshotter, func() error, error)) {
	t.Run(name, func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				h := &harness{t: t, ctx: ctx, root: t.TempDir(), newFn: newSnapshotter}
				if c.root {
					testutil.RequireRoot(t)
				}
				h.sn = h.open()
				c.fn(h)
			})
		}
	})
}

var cases = []struct {
	name string
	root bool // mounts, so needs root
	fn   func(*harness)
}{
	{"StatActive", false, testStatActive},
	{"StatCommitted", false, testStatCommitted},
	{"ParentMustBeCommitted", false, testParentMustBeCommitted},
	{"UnknownParent", false, testUnknownParent},
	{"KeyReuse", false, testKeyReuse},
	{"CommitView", false, testCommitView},
	{"CommitUnknown", false, testCommitUnknown},
	{"RemoveRules", false, testRemoveRules},
	{"Walk", false, testWalk},
	{"Labels", false, testLabels},
	{"Mounts", false, testMounts},
	{"Reopen", false, testReopen},
	{"ConcurrentPrepare", false, testConcurrentPrepare},
	{"LayerFiles", true, testLayerFiles},
	{"WritesDoNotLeak", true, testWritesDoNotLeak},
	{"DeleteLowerFile", true, testDeleteLowerFile},
	{"ChangeLowerFile", true, testChangeLowerFile},
	{"ViewReadOnly", true, testViewReadOnly},
	{"Usage", true, testUsage},
	{"Attributes", true, testAttributes},
	{"DeepChain", true, testDeepChain},
}

// harness is one case's snapshotter and helpers.
type harness struct {
	t     *testing.T
	ctx   context.Context
	root  string
	newFn NewFunc
	sn    dock.Snapshotter
	close func() // releases sn, once
}

func (h *harness) open() dock.Snapshotter {
	h.t.Helper()
	sn, closeFn, err := h.newFn(h.ctx, h.root)
	if err != nil {
		h.t.Fatalf("new snapshotter at %s: %v", h.root, err)
	}
	if closeFn == nil {
		closeFn = sn.Close
	}
	var once sync.Once
	h.close = func() {
		once.Do(func() {
			if err := closeFn(); err != nil {
				h.t.Errorf("close snapshotter: %v", err)
			}
		})
	}
	h.t.Cleanup(h.close)
	return sn
}

func (h *harness) prepare(key, parent string, opts ...dock.SnapshotOpt) []dock.Mount {
	h.t.Helper()
	m, err := h.sn.Prepare(h.ctx, key, parent, opts...)
	if err != nil {
		h.t.Fatalf("Prepare(%q, %q): %v", key, parent, err)
	}
	if len(m) == 0 {
		h.t.Fatalf("Prepare(%q, %q): no mounts", key, parent)
	}
	return m
}

func (h *harness) view(key, parent string, opts ...dock.SnapshotOpt) []dock.Mount {
	h.t.Helper()
	m, err := h.sn.View(h.ctx, key, parent, opts...)
	if err != nil {
		h.t.Fatalf("View(%q, %q): %v", key, parent, err)
	}
	if len(m) == 0 {
		h.t.Fatalf("View(%q, %q): no mounts", key, parent)
	}
	return m
}

func (h *harness) commit(name, key string, opts ...dock.SnapshotOpt) {
	h.t.Helper()
	if err := h.sn.Commit(h.ctx, name, key, opts...); err != nil {
		h.t.Fatalf("Commit(%q, %q): %v", name, key, err)
	}
}

func (h *harness) remove(key string) {
	h.t.Helper()
	if err := h.sn.Remove(h.ctx, key); err != nil {
		h.t.Fatalf("Remove(%q): %v", key, err)
	}
}

func (h *harness) stat(key string) dock.SnapshotInfo {
	h.t.Helper()
	info, err := h.sn.Stat(h.ctx, key)
	if err != nil {
		h.t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// mount applies mounts on a new directory and returns it with a function
// that unmounts it; the unmount also runs at cleanup should the case stop
// early.
func (h *harness) mount(mounts []dock.Mount) (string, func()) {
	h.t.Helper()
	target := h.t.TempDir()
	ms := make([]snapshots.Mount, len(mounts))
	for i, m := range mounts {
		ms[i] = snapshots.Mount(m)
	}
	if err := snapshots.MountAll(ms, target); err != nil {
		h.t.Fatalf("mount %+v: %v", mounts, err)
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			if err := snapshots.UnmountAll(target); err != nil {
				h.t.Errorf("unmount %s: %v", target, err)
			}
		})
	}
	h.t.Cleanup(unmount)
	return target, unmount
}

// layer prepares key over parent, lets fn change its tree, and commits it
// as name.
func (h *harness) layer(name, parent string, fn func(dir string)) {
	h.t.Helper()
	key := name + "-active"
	dir, unmount := h.mount(h.prepare(key, parent))
	fn(dir)
	unmount()
	h.commit(name, key)
}

// inView mounts a view of name, runs fn on it and removes the view.
func (h *harness) inView(name string, fn func(dir string)) {
	h.t.Helper()
	key := fmt.Sprintf("view-of-%s-%d", name, time.Now().UnixNano())
	dir, unmount := h.mount(h.view(key, name))
	fn(dir)
	unmount()
	h.remove(key)
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkFile(t *testing.T, dir, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("read %s: %v", name, err)
		return
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", name, b, want)
	}
}

func checkAbsent(t *testing.T, dir, name string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want absent, lstat says %v", name, err)
	}
}

// listTree lists every path under dir, sorted, directories with a slash.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func testStatActive(h *harness) {
	before := time.Now().Add(-time.Second)
	h.prepare("a", "")
	info := h.stat("a")
	if info.Kind != dock.KindActive || info.Name != "a" || info.Parent != "" {
		h.t.Errorf("Stat(a) = %+v, want active a without parent", info)
	}
	if info.Created.Before(before) || info.Updated.Before(before) {
		h.t.Errorf("Stat(a): Created %v Updated %v, want at least %v", info.Created, info.Updated, before)
	}
	h.view("v", "")
	if info := h.stat("v"); info.Kind != dock.KindView || info.Name != "v" {
		h.t.Errorf("Stat(v) = %+v, want view v", info)
	}
	_, err := h.sn.Stat(h.ctx, "nothing")
	wantErr(h.t, "Stat(nothing)", err, dock.ErrNotFound)
}

func testStatCommitted(h *harness) {
	h.prepare("base-active", "")
	h.commit("base", "base-active")
	h.prepare("top-active", "base")
	h.commit("top", "top-active")
	for _, c := range []struct{ name, parent string }{{"base", ""}, {"top", "base"}} {
		info := h.stat(c.name)
		if info.Kind != dock.KindCommitted || info.Name != c.name || info.Parent != c.parent {
			h.t.Errorf("Stat(%s) = %+v, want committed with parent %q", c.name, info, c.parent)
		}
	}
	for _, k := range []string{"base-active", "top-active"} {
		_, err := h.sn.Stat(h.ctx, k)
		wantErr(h.t, "Stat of a committed key "+k, err, dock.ErrNotFound)
	}
	info := h.stat("top")
	if info.Created.IsZero() || info.Updated.IsZero() {
		h.t.Errorf("Stat(top): zero times: %+v", info)
	}
}

func testParentMustBeCommitted(h *harness) {
	h.prepare("active", "")
	h.view("view", "")
	for _, parent := range []string{"active", "view"} {
		if _, err := h.sn.Prepare(h.ctx, "child-of-"+parent, parent); err == nil {
			h.t.Errorf("Prepare over %s parent succeeded", parent)
		}
		if _, err := h.sn.View(h.ctx, "view-of-"+parent, parent); err == nil {
			h.t.Errorf("View over %s parent succeeded", parent)
		}
		_, err := h.sn.Stat(h.ctx, "child-of-"+parent)
		wantErr(h.t, "Stat after a refused Prepare", err, dock.ErrNotFound)
	}
}

func testUnknownParent(h *harness) {
	_, err := h.sn.Prepare(h.ctx, "a", "missing")
	wantErr(h.t, "Prepare over a missing parent", err, dock.ErrNotFound)
	_, err = h.sn.View(h.ctx, "v", "missing")
	wantErr(h.t, "View over a missing parent", err, dock.ErrNotFound)
	_, err = h.sn.Stat(h.ctx, "a")
	wantErr(h.t, "Stat after a refused Prepare", err, dock.ErrNotFound)
}

func testKeyReuse(h *harness) {
	h.prepare("committed-active", "")
	h.commit("committed", "committed-active")
	h.prepare("active", "")
	h.view("view", "")
	h.prepare("other", "")
	for _, key := range []string{"committed", "active", "view"} {
		_, err := h.sn.Prepare(h.ctx, key, "")
		wantErr(h.t, "Prepare("+key+")", err, dock.ErrAlreadyExists)
		_, err = h.sn.View(h.ctx, key, "committed")
		wantErr(h.t, "View("+key+")", err, dock.ErrAlreadyExists)
		err = h.sn.Commit(h.ctx, key, "other")
		wantErr(h.t, "Commit(other) as "+key, err, dock.ErrAlreadyExists)
	}
	if info := h.stat("other"); info.Kind != dock.KindActive {
		h.t.Errorf("a refused Commit changed its snapshot: %+v", info)
	}
	if info := h.stat("active"); info.Kind != dock.KindActive {
		h.t.Errorf("a refused Prepare changed the snapshot in the way: %+v", info)
	}
	if _, err := h.sn.Prepare(h.ctx, "", ""); err == nil {
		h.t.Errorf("Prepare with an empty key succeeded")
	}
	// A removed key is free again.
	h.remove("active")
	h.prepare("active", "committed")
	if info := h.stat("active"); info.Parent != "committed" {
		h.t.Errorf("reused key: %+v, want parent committed", info)
	}
}

func testCommitView(h *harness) {
	h.view("view", "")
	err := h.sn.Commit(h.ctx, "committed", "view")
	wantErr(h.t, "Commit of a view", err, dock.ErrWrongState)
	if info := h.stat("view"); info.Kind != dock.KindView {
		h.t.Errorf("view after a refused Commit: %+v", info)
	}
	_, err = h.sn.Stat(h.ctx, "committed")
	wantErr(h.t, "Stat of a refused Commit's name", err, dock.ErrNotFound)

	h.prepare("a", "")
	h.commit("c", "a")
	err = h.sn.Commit(h.ctx, "c2", "c")
	if err == nil {
		h.t.Errorf("Commit of a committed snapshot succeeded")
	}
}

func testCommitUnknown(h *harness) {
	err := h.sn.Commit(h.ctx, "name", "missing")
	wantErr(h.t, "Commit of a missing key", err, dock.ErrNotFound)
}

func testRemoveRules(h *harness) {
	h.prepare("base-active", "")
	h.commit("base", "base-active")
	h.prepare("child", "base")
	h.view("view", "base")

	err := h.sn.Remove(h.ctx, "base")
	wantErr(h.t, "Remove of a parent with an active child and a view", err, dock.ErrWrongState)
	h.remove("child")
	err = h.sn.Remove(h.ctx, "base")
	wantErr(h.t, "Remove of a parent with a view", err, dock.ErrWrongState)
	h.remove("view")

	h.prepare("mid-active", "base")
	h.commit("mid", "mid-active")
	err = h.sn.Remove(h.ctx, "base")
	wantErr(h.t, "Remove of a parent with a committed child", err, dock.ErrWrongState)
	h.remove("mid")
	h.remove("base")

	for _, k := range []string{"base", "mid", "child", "view", "never"} {
		_, err := h.sn.Stat(h.ctx, k)
		wantErr(h.t, "Stat("+k+") after Remove", err, dock.ErrNotFound)
		err = h.sn.Remove(h.ctx, k)
		wantErr(h.t, "Remove("+k+") again", err, dock.ErrNotFound)
	}
	n := 0
	if err := h.sn.Walk(h.ctx, func(context.Context, dock.SnapshotInfo) error { n++; return nil }); err != nil {
		h.t.Fatal(err)
	}
	if n != 0 {
		h.t.Errorf("Walk after removing all: %d snapshots", n)
	}
}

func collect(h *harness) map[string]dock.SnapshotInfo {
	h.t.Helper()
	got := map[string]dock.SnapshotInfo{}
	err := h.sn.Walk(h.ctx, func(_ context.Context, info dock.SnapshotInfo) error {
		if _, dup := got[info.Name]; dup {
			h.t.Errorf("Walk gave %q twice", info.Name)
		}
		got[info.Name] = info
		return nil
	})
	if err != nil {
		h.t.Fatalf("Walk: %v", err)
	}
	return got
}

func testWalk(h *harness) {
	h.prepare("l1-active", "")
	h.commit("l1", "l1-active")
	h.prepare("l2-active", "l1")
	h.commit("l2", "l2-active")
	h.prepare("work", "l2")
	h.view("look", "l1")
	h.prepare("scratch", "")

	want := map[string]struct {
		kind   dock.SnapshotKind
		parent string
	}{
		"l1":      {dock.KindCommitted, ""},
		"l2":      {dock.KindCommitted, "l1"},
		"work":    {dock.KindActive, "l2"},
		"look":    {dock.KindView, "l1"},
		"scratch": {dock.KindActive, ""},
	}
	got := collect(h)
	if len(got) != len(want) {
		h.t.Errorf("Walk gave %d snapshots, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		info, ok := got[name]
		if !ok {
			h.t.Errorf("Walk misses %q", name)
			continue
		}
		if info.Kind != w.kind || info.Parent != w.parent {
			h.t.Errorf("Walk: %q is %v over %q, want %v over %q", name, info.Kind, info.Parent, w.kind, w.parent)
		}
		if st := h.stat(name); st.Kind != info.Kind || st.Parent != info.Parent || !reflect.DeepEqual(st.Labels, info.Labels) {
			h.t.Errorf("Walk and Stat disagree on %q: %+v vs %+v", name, info, st)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := h.sn.Walk(h.ctx, func(context.Context, dock.SnapshotInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		h.t.Errorf("Walk with fn failing: err %v after %d calls, want fn's error after 1", err, calls)
	}
}

func testLabels(h *harness) {
	h.prepare("a", "", dock.WithSnapshotLabels(map[string]string{"one": "1", "shared": "prepare"}))
	if got := h.stat("a").Labels; got["one"] != "1" || got["shared"] != "prepare" {
		h.t.Errorf("labels after Prepare: %v", got)
	}
	h.commit("c", "a", dock.WithSnapshotLabels(map[string]string{"two": "2"}), dock.WithSnapshotLabels(map[string]string{"three": "3"}))
	got := h.stat("c").Labels
	for k, v := range map[string]string{"two": "2", "three": "3"} {
		if got[k] != v {
			h.t.Errorf("labels after Commit: %v, want %s=%s", got, k, v)
		}
	}
	h.view("v", "c", dock.WithSnapshotLabels(map[string]string{"kind": "view"}))
	walked := collect(h)
	if walked["c"].Labels["two"] != "2" || walked["v"].Labels["kind"] != "view" {
		h.t.Errorf("labels from Walk: %v", walked)
	}
	// Changing the map a caller got must not change the snapshot.
	info := h.stat("v")
	info.Labels["kind"] = "changed"
	if h.stat("v").Labels["kind"] != "view" {
		h.t.Errorf("labels alias the snapshotter's state")
	}
	h.prepare("plain", "")
	if l := h.stat("plain").Labels; len(l) != 0 {
		h.t.Errorf("labels of a snapshot made without any: %v", l)
	}
}

func testMounts(h *harness) {
	m := h.prepare("a", "")
	got, err := h.sn.Mounts(h.ctx, "a")
	if err != nil || !reflect.DeepEqual(got, m) {
		h.t.Errorf("Mounts(a) = %v, %v; Prepare gave %v", got, err, m)
	}
	h.commit("c", "a")
	m = h.prepare("b", "c")
	if got, err := h.sn.Mounts(h.ctx, "b"); err != nil || !reflect.DeepEqual(got, m) {
		h.t.Errorf("Mounts(b) = %v, %v; Prepare gave %v", got, err, m)
	}
	m = h.view("v", "c")
	if got, err := h.sn.Mounts(h.ctx, "v"); err != nil || !reflect.DeepEqual(got, m) {
		h.t.Errorf("Mounts(v) = %v, %v; View gave %v", got, err, m)
	}
	_, err = h.sn.Mounts(h.ctx, "missing")
	wantErr(h.t, "Mounts(missing)", err, dock.ErrNotFound)
}

func testReopen(h *harness) {
	h.prepare("base-active", "", dock.WithSnapshotLabels(map[string]string{"k": "v"}))
	h.commit("base", "base-active")
	h.prepare("work", "base")
	h.view("look", "base")
	want := collect(h)
	h.close()
	h.sn = h.open()
	got := collect(h)
	if len(got) != len(want) {
		h.t.Fatalf("after reopen: %v, want %v", got, want)
	}
	for name, w := range want {
		g := got[name]
		if g.Kind != w.Kind || g.Parent != w.Parent || !reflect.DeepEqual(g.Labels, w.Labels) || !g.Created.Equal(w.Created) {
			h.t.Errorf("after reopen %q = %+v, want %+v", name, g, w)
		}
	}
	err := h.sn.Remove(h.ctx, "base")
	wantErr(h.t, "Remove of a parent after reopen", err, dock.ErrWrongState)
	h.commit("work-c", "work")
}

func testConcurrentPrepare(h *harness) {
	h.prepare("base-active", "")
	h.commit("base", "base-active")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = h.sn.Prepare(h.ctx, fmt.Sprintf("distinct-%d", i), "base")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			h.t.Errorf("concurrent Prepare %d: %v", i, err)
		}
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = h.sn.Prepare(h.ctx, "same", "base")
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, dock.ErrAlreadyExists):
			h.t.Errorf("concurrent Prepare of one key: %v, want ErrAlreadyExists", err)
		}
	}
	if ok != 1 {
		h.t.Errorf("concurrent Prepare of one key: %d succeeded, want 1", ok)
	}
	for i := range n {
		wg.Go(func() {
			errs[i] = h.sn.Commit(h.ctx, fmt.Sprintf("c-%d", i), fmt.Sprintf("distinct-%d", i))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			h.t.Errorf("concurrent Commit %d: %v", i, err)
		}
	}
	// base, the n committed ones and "same".
	if got := len(collect(h)); got != n+2 {
		h.t.Errorf("Walk after concurrent work: %d snapshots, want %d", got, n+2)
	}
}

func testLayerFiles(h *harness) {
	h.layer("l1", "", func(dir string) {
		writeFile(h.t, dir, "etc/hostname", "one")
		writeFile(h.t, dir, "bin/tool", "v1")
	})
	h.layer("l2", "l1", func(dir string) {
		checkFile(h.t, dir, "etc/hostname", "one")
		writeFile(h.t, dir, "bin/tool", "v2")
		writeFile(h.t, dir, "usr/share/doc", "doc")
	})
	h.inView("l2", func(dir string) {
		checkFile(h.t, dir, "etc/hostname", "one")
		checkFile(h.t, dir, "bin/tool", "v2")
		checkFile(h.t, dir, "usr/share/doc", "doc")
		want := []string{"bin/", "bin/tool", "etc/", "etc/hostname", "usr/", "usr/share/", "usr/share/doc"}
		if got := listTree(h.t, dir); !reflect.DeepEqual(got, want) {
			h.t.Errorf("tree of l2: %v, want %v", got, want)
		}
	})
	h.inView("l1", func(dir string) {
		checkFile(h.t, dir, "bin/tool", "v1")
		checkAbsent(h.t, dir, "usr")
	})
	// Mounts of an active snapshot show its writes, mounted again later.
	dir, unmount := h.mount(h.prepare("again", "l2"))
	writeFile(h.t, dir, "new", "x")
	unmount()
	m, err := h.sn.Mounts(h.ctx, "again")
	if err != nil {
		h.t.Fatal(err)
	}
	dir, unmount = h.mount(m)
	checkFile(h.t, dir, "new", "x")
	checkFile(h.t, dir, "bin/tool", "v2")
	unmount()
}

func testWritesDoNotLeak(h *harness) {
	h.layer("base", "", func(dir string) {
		writeFile(h.t, dir, "file", "base")
		writeFile(h.t, dir, "dir/keep", "base")
	})
	a, unmountA := h.mount(h.prepare("a", "base"))
	b, unmountB := h.mount(h.prepare("b", "base"))
	writeFile(h.t, a, "file", "from a")
	writeFile(h.t, a, "dir/added", "a")
	if err := os.Remove(filepath.Join(a, "dir/keep")); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(a, "dir"), 0o700); err != nil {
		h.t.Fatal(err)
	}
	checkFile(h.t, b, "file", "base")
	checkFile(h.t, b, "dir/keep", "base")
	checkAbsent(h.t, b, "dir/added")
	h.inView("base", func(dir string) {
		checkFile(h.t, dir, "file", "base")
		checkFile(h.t, dir, "dir/keep", "base")
		checkAbsent(h.t, dir, "dir/added")
		if fi, err := os.Stat(filepath.Join(dir, "dir")); err != nil || fi.Mode().Perm() != 0o755 {
			h.t.Errorf("parent's dir: %v, %v; want mode 0755", fi.Mode(), err)
		}
	})
	unmountA()
	unmountB()
	h.commit("a-c", "a")
	h.inView("a-c", func(dir string) {
		checkFile(h.t, dir, "file", "from a")
		checkAbsent(h.t, dir, "dir/keep")
	})
}

func testDeleteLowerFile(h *harness) {
	h.layer("l1", "", func(dir string) {
		writeFile(h.t, dir, "gone", "x")
		writeFile(h.t, dir, "stays", "x")
		writeFile(h.t, dir, "tree/a", "a")
		writeFile(h.t, dir, "tree/sub/b", "b")
		writeFile(h.t, dir, "redo/old", "old")
	})
	h.layer("l2", "l1", func(dir string) {
		for _, p := range []string{"gone", "tree", "redo"} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				h.t.Fatal(err)
			}
		}
		checkAbsent(h.t, dir, "gone")
	})
	h.layer("l3", "l2", func(dir string) {
		// A directory made anew over one removed below must not show the
		// old contents.
		writeFile(h.t, dir, "redo/new", "new")
	})
	h.inView("l3", func(dir string) {
		want := []string{"redo/", "redo/new", "stays"}
		if got := listTree(h.t, dir); !reflect.DeepEqual(got, want) {
			h.t.Errorf("tree of l3: %v, want %v", got, want)
		}
	})
	h.inView("l1", func(dir string) {
		checkFile(h.t, dir, "gone", "x")
		checkFile(h.t, dir, "tree/sub/b", "b")
		checkFile(h.t, dir, "redo/old", "old")
	})
}

// testChangeLowerFile changes, in a child, files that a lower layer holds:
// contents, modes, owners, names and types. The child's commit shows the
// changes and the lower layer keeps its own.
func testChangeLowerFile(h *harness) {
	h.layer("l1", "", func(dir string) {
		writeFile(h.t, dir, "append", "one")
		writeFile(h.t, dir, "truncate", "long content")
		writeFile(h.t, dir, "chmod", "x")
		writeFile(h.t, dir, "chown", "x")
		writeFile(h.t, dir, "rename-from", "moved")
		writeFile(h.t, dir, "becomes-link", "file")
		writeFile(h.t, dir, "dir-becomes-file/inner", "inner")
	})
	h.layer("l2", "l1", func(dir string) {
		p := func(name string) string { return filepath.Join(dir, name) }
		f, err := os.OpenFile(p("append"), os.O_WRONLY|os.O_APPEND, 0)
		must(h.t, err)
		_, err = f.WriteString("+two")
		must(h.t, err)
		must(h.t, f.Close())
		must(h.t, os.Truncate(p("truncate"), 4))
		must(h.t, os.Chmod(p("chmod"), 0o600))
		must(h.t, os.Chown(p("chown"), 4321, 8765))
		must(h.t, os.Rename(p("rename-from"), p("rename-to")))
		must(h.t, os.Remove(p("becomes-link")))
		must(h.t, os.Symlink("append", p("becomes-link")))
		must(h.t, os.RemoveAll(p("dir-becomes-file")))
		writeFile(h.t, dir, "dir-becomes-file", "now a file")
	})
	h.inView("l2", func(dir string) {
		checkFile(h.t, dir, "append", "one+two")
		checkFile(h.t, dir, "truncate", "long")
		if st := lstat(h.t, filepath.Join(dir, "chmod")); st.Mode&07777 != 0o600 {
			h.t.Errorf("chmod: mode %#o, want 0600", st.Mode&07777)
		}
		if st := lstat(h.t, filepath.Join(dir, "chown")); st.Uid != 4321 || st.Gid != 8765 {
			h.t.Errorf("chown: owner %d:%d, want 4321:8765", st.Uid, st.Gid)
		}
		checkAbsent(h.t, dir, "rename-from")
		checkFile(h.t, dir, "rename-to", "moved")
		if target, err := os.Readlink(filepath.Join(dir, "becomes-link")); err != nil || target != "append" {
			h.t.Errorf("becomes-link: %q, %v; want a symlink to append", target, err)
		}
		checkFile(h.t, dir, "dir-becomes-file", "now a file")
	})
	h.inView("l1", func(dir string) {
		checkFile(h.t, dir, "append", "one")
		checkFile(h.t, dir, "truncate", "long content")
		checkFile(h.t, dir, "rename-from", "moved")
		checkFile(h.t, dir, "becomes-link", "file")
		checkFile(h.t, dir, "dir-becomes-file/inner", "inner")
		if st := lstat(h.t, filepath.Join(dir, "chown")); st.Uid != 0 {
			h.t.Errorf("chown in the child changed the parent: owner %d", st.Uid)
		}
	})
}

func testViewReadOnly(h *harness) {
	h.layer("l1", "", func(dir string) { writeFile(h.t, dir, "f", "1") })
	h.layer("l2", "l1", func(dir string) { writeFile(h.t, dir, "g", "2") })
	for _, parent := range []string{"", "l1", "l2"} {
		key := "view-over-" + parent
		dir, unmount := h.mount(h.view(key, parent))
		err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644)
		if !errors.Is(err, unix.EROFS) {
			h.t.Errorf("write in view over %q: %v, want EROFS", parent, err)
		}
		if parent != "" {
			err := os.WriteFile(filepath.Join(dir, "f"), []byte("changed"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				h.t.Errorf("overwrite in view over %q: %v, want EROFS", parent, err)
			}
			checkFile(h.t, dir, "f", "1")
		}
		unmount()
		h.remove(key)
	}
}

func testUsage(h *harness) {
	const mib = 1 << 20
	big := bytes.Repeat([]byte{'x'}, mib)
	dir, unmount := h.mount(h.prepare("a", ""))
	empty, err := h.sn.Usage(h.ctx, "a")
	if err != nil {
		h.t.Fatalf("Usage(a): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "big"), filepath.Join(dir, "big-link")); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	unix.Sync() // so that delayed allocation has given the file its blocks
	u, err := h.sn.Usage(h.ctx, "a")
	if err != nil {
		h.t.Fatalf("Usage(a): %v", err)
	}
	if u.Size-empty.Size < mib || u.Size-empty.Size >= 2*mib {
		h.t.Errorf("Usage after writing 1 MiB, hardlinked: %d bytes more, want 1 MiB up to 2 MiB", u.Size-empty.Size)
	}
	if got := u.Inodes - empty.Inodes; got != 2 {
		h.t.Errorf("Usage after a file, a hardlink and a directory: %d more inodes, want 2", got)
	}
	unmount()
	h.commit("c", "a")
	if cu, err := h.sn.Usage(h.ctx, "c"); err != nil || cu.Size < mib {
		h.t.Errorf("Usage(c) = %+v, %v; want at least 1 MiB", cu, err)
	}
	dir, unmount = h.mount(h.prepare("b", "c"))
	writeFile(h.t, dir, "small", "s")
	unmount()
	h.commit("child", "b")
	cu, err := h.sn.Usage(h.ctx, "child")
	if err != nil {
		h.t.Fatalf("Usage(child): %v", err)
	}
	if cu.Size >= mib {
		// A copying snapshotter keeps the parent's bytes in the child only
		// where it cannot share them; say so rather than fail.
		h.t.Logf("Usage(child) = %d bytes: the parent's file counts in the child (a copying snapshotter)", cu.Size)
	}
	_, err = h.sn.Usage(h.ctx, "missing")
	wantErr(h.t, "Usage(missing)", err, dock.ErrNotFound)
}

// testAttributes checks that what a container sees of a file survives
// layering: modes with setuid and sticky bits, owners, extended attributes,
// symlinks, hardlinks, device nodes, fifos and times.
func testAttributes(h *harness) {
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	h.layer("l1", "", func(dir string) {
		p := func(name string) string { return filepath.Join(dir, name) }
		writeFile(h.t, dir, "suid", "#!/bin/true\n")
		must(h.t, os.Chown(p("suid"), 1000, 1001))
		must(h.t, unix.Chmod(p("suid"), 0o4755))
		must(h.t, os.Mkdir(p("tmp"), 0o755))
		must(h.t, unix.Chmod(p("tmp"), 0o1777))
		must(h.t, os.Symlink("suid", p("link")))
		must(h.t, os.Lchown(p("link"), 7, 8))
		writeFile(h.t, dir, "hard1", "same")
		must(h.t, os.Link(p("hard1"), p("hard2")))
		must(h.t, unix.Mkfifo(p("fifo"), 0o600))
		must(h.t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		writeFile(h.t, dir, "xattr", "x")
		if err := unix.Lsetxattr(p("xattr"), "user.dock-test", []byte("value"), 0); err != nil {
			h.t.Logf("no user xattrs here: %v", err)
		}
		writeFile(h.t, dir, "old", "old")
		must(h.t, os.Chtimes(p("old"), mtime, mtime))
	})
	// A layer over it changes something unrelated, so that a copying
	// snapshotter copies it all.
	h.layer("l2", "l1", func(dir string) { writeFile(h.t, dir, "other", "o") })
	h.inView("l2", func(dir string) {
		p := func(name string) string { return filepath.Join(dir, name) }
		st := lstat(h.t, p("suid"))
		if st.Mode&07777 != 0o4755 || st.Uid != 1000 || st.Gid != 1001 {
			h.t.Errorf("suid: mode %#o owner %d:%d, want 04755 1000:1001", st.Mode&07777, st.Uid, st.Gid)
		}
		if st := lstat(h.t, p("tmp")); st.Mode&07777 != 0o1777 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			h.t.Errorf("tmp: mode %#o, want directory 01777", st.Mode)
		}
		if target, err := os.Readlink(p("link")); err != nil || target != "suid" {
			h.t.Errorf("link: %q, %v; want suid", target, err)
		}
		if st := lstat(h.t, p("link")); st.Uid != 7 || st.Gid != 8 {
			h.t.Errorf("link owner %d:%d, want 7:8", st.Uid, st.Gid)
		}
		s1, s2 := lstat(h.t, p("hard1")), lstat(h.t, p("hard2"))
		if s1.Ino != s2.Ino || s1.Nlink != 2 {
			h.t.Errorf("hard1 and hard2: inodes %d and %d, %d links; want one inode, 2 links", s1.Ino, s2.Ino, s1.Nlink)
		}
		if st := lstat(h.t, p("fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
			h.t.Errorf("fifo: mode %#o, want a fifo", st.Mode)
		}
		if st := lstat(h.t, p("null")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			h.t.Errorf("null: mode %#o rdev %#x, want char device 1:3", st.Mode, st.Rdev)
		}
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p("xattr"), "user.dock-test", buf); err == nil {
			if string(buf[:n]) != "value" {
				h.t.Errorf("xattr: %q, want value", buf[:n])
			}
		} else if !errors.Is(err, unix.ENOTSUP) {
			h.t.Errorf("xattr: %v", err)
		}
		if fi, err := os.Lstat(p("old")); err != nil || !fi.ModTime().Equal(mtime) {
			h.t.Errorf("old: mtime %v, %v; want %v", fi.ModTime(), err, mtime)
		}
		checkFile(h.t, dir, "other", "o")
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

// testDeepChain stacks 64 layers, more than fit in one mount(2) option
// string with long paths on overlay, each adding a file, overwriting one,
// and every eighth removing the previous layer's file.
func testDeepChain(h *harness) {
	const depth = 64
	parent := ""
	for i := range depth {
		name := fmt.Sprintf("layer-%02d", i)
		h.layer(name, parent, func(dir string) {
			if i > 0 {
				checkFile(h.t, dir, "top", fmt.Sprint(i-1))
			}
			writeFile(h.t, dir, "top", fmt.Sprint(i))
			writeFile(h.t, dir, fmt.Sprintf("files/%02d", i), name)
			if i%8 == 0 && i > 0 {
				must(h.t, os.Remove(filepath.Join(dir, fmt.Sprintf("files/%02d", i-1))))
			}
		})
		parent = name
	}
	h.inView(parent, func(dir string) {
		checkFile(h.t, dir, "top", fmt.Sprint(depth-1))
		var want []string
		for i := range depth {
			if (i+1)%8 == 0 && i+1 < depth {
				continue
			}
			want = append(want, fmt.Sprintf("%02d", i))
		}
		ents, err := os.ReadDir(filepath.Join(dir, "files"))
		if err != nil {
			h.t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !reflect.DeepEqual(got, want) {
			h.t.Errorf("files of the deepest layer: %s, want %s", strings.Join(got, " "), strings.Join(want, " "))
		}
	})
	// The chain comes apart from the top only.
	err := h.sn.Remove(h.ctx, "layer-00")
	wantErr(h.t, "Remove of the bottom of a chain", err, dock.ErrWrongState)
	for i := depth - 1; i >= 0; i-- {
		h.remove(fmt.Sprintf("layer-%02d", i))
	}
}
