package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/atomicfile"
	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/procstat"
)

// record is one network's file: the network and its endpoints, which are
// also its address allocations.
type record struct {
	Network   Network              `json:"network"`
	Endpoints map[string]*epRecord `json:"endpoints"`
}

// epRecord is an endpoint and what tells whether its container still lives.
type epRecord struct {
	Endpoint
	NetNS      string `json:"netns"`
	OwnerPID   int    `json:"owner_pid,omitempty"`
	OwnerStart uint64 `json:"owner_start,omitempty"` // /proc/<pid>/stat start time
}

func (m *Manager) dir() string { return filepath.Join(m.root, "networks") }

func (m *Manager) recordPath(name string) string {
	return filepath.Join(m.dir(), name+".json")
}

// lock takes the root-wide network lock: an flock on networks/.lock, and a
// mutex for the goroutines of this process.
func (m *Manager) lock() (unlock func(), err error) {
	m.mu.Lock()
	f, err := os.OpenFile(filepath.Join(m.dir(), ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("network lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		m.mu.Unlock()
		return nil, fmt.Errorf("network lock: %w", err)
	}
	return func() {
		f.Close() // releases the flock
		m.mu.Unlock()
	}, nil
}

func (m *Manager) load(name string) (*record, error) {
	b, err := os.ReadFile(m.recordPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network %q: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", name, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("network %q: state file: %w", name, err)
	}
	if r.Endpoints == nil {
		r.Endpoints = map[string]*epRecord{}
	}
	return &r, nil
}

func (m *Manager) loadAll() ([]*record, error) {
	ents, err := os.ReadDir(m.dir())
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	var out []*record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || checkName(name) != nil {
			continue
		}
		r, err := m.load(name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Network.Name < out[j].Network.Name })
	return out, nil
}

// save writes r as temp file, fsync, rename, fsync of the directory.
func (m *Manager) save(r *record) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.recordPath(r.Network.Name), b); err != nil {
		return fmt.Errorf("network %q: %w", r.Network.Name, err)
	}
	return nil
}

func (m *Manager) drop(name string) error {
	if err := os.Remove(m.recordPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network %q: %w", name, err)
	}
	return syncDir(m.dir())
}

// writeFileAtomic replaces path with b durably.
func writeFileAtomic(path string, b []byte) error {
	if err := atomicfile.Write(path, b, 0o600, true); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// procStart returns the start time of process pid, which tells a live
// process from a reused pid.
func procStart(pid int) (uint64, error) { return procstat.Start(pid) }

// pidFromNetNSPath returns pid for "/proc/<pid>/ns/net", or 0.
func pidFromNetNSPath(p string) int {
	rest, ok := strings.CutPrefix(filepath.Clean(p), "/proc/")
	if !ok {
		return 0
	}
	pidStr, tail, _ := strings.Cut(rest, "/")
	if tail != "ns/net" {
		return 0
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// loadRootID reads this root's id, making one on first use.
func (m *Manager) loadRootID() error {
	p := filepath.Join(m.dir(), ".id")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) == 8 {
		m.rid = strings.TrimSpace(string(b))
		return nil
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) == 8 {
		m.rid = strings.TrimSpace(string(b))
		return nil
	}
	rb := make([]byte, 4)
	rand.Read(rb)
	m.rid = hex.EncodeToString(rb)
	if err := writeFileAtomic(p, []byte(m.rid+"\n")); err != nil {
		return fmt.Errorf("networks: %w", err)
	}
	return nil
}
