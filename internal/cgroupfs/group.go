package cgroupfs

import (
	"encoding/json"
	"slices"
)

// Group is one control group: its directory in the unified hierarchy on
// cgroup v2, or one directory per mounted hierarchy on v1. It is plain data,
// so that it travels in a container's spec to its monitor.
type Group struct {
	Name string            `json:"name"`           // relative to the cgroup root, such as "dock/<id>"
	Dir  string            `json:"dir,omitempty"`  // v2
	Dirs map[string]string `json:"dirs,omitempty"` // v1: hierarchy name → directory
}

// V2 reports whether g lives in the unified hierarchy.
func (g Group) V2() bool { return g.Dir != "" }

// Made reports whether g has its directories, that is whether the group
// was made (or found) rather than only named.
func (g Group) Made() bool { return g.Dir != "" || len(g.Dirs) > 0 }

// All returns the group's directories, one per hierarchy.
func (g Group) All() []string {
	if g.V2() {
		return []string{g.Dir}
	}
	out := make([]string, 0, len(g.Dirs))
	for _, d := range g.Dirs {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// UnmarshalJSON also accepts a bare name, the form older container records
// keep.
func (g *Group) UnmarshalJSON(b []byte) error {
	var name string
	if json.Unmarshal(b, &name) == nil {
		*g = Group{Name: name}
		return nil
	}
	type plain Group
	return json.Unmarshal(b, (*plain)(g))
}
