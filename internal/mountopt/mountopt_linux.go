// Package mountopt reads mount(8) style options ("ro", "rbind", "nosuid",
// "rprivate", "lowerdir=...") into what mount(2) takes.
package mountopt

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// flags are the mount(8) options that are flags of mount(2); every
// other option goes to the filesystem as data.
var flags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":        {false, unix.MS_NOSUID},
	"suid":          {true, unix.MS_NOSUID},
	"nodev":         {false, unix.MS_NODEV},
	"dev":           {true, unix.MS_NODEV},
	"noexec":        {false, unix.MS_NOEXEC},
	"exec":          {true, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"noatime":       {false, unix.MS_NOATIME},
	"atime":         {true, unix.MS_NOATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"defaults":      {false, 0},
}

var propagation = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// Parsed is a list of mount options split into what mount(2) takes.
type Parsed struct {
	Flags       uintptr  // MS_RDONLY, MS_BIND, MS_NOSUID, ...
	Propagation uintptr  // MS_PRIVATE, MS_SHARED, ... with MS_REC
	Data        []string // the filesystem's own options, in order
}

// Parse reads options in order; a later option overrides an earlier one
// ("ro" then "rw").
func Parse(options []string) Parsed {
	var p Parsed
	for _, o := range options {
		if f, ok := flags[o]; ok {
			if f.clear {
				p.Flags &^= f.flag
			} else {
				p.Flags |= f.flag
			}
			continue
		}
		if f, ok := propagation[o]; ok {
			p.Propagation |= f
			continue
		}
		p.Data = append(p.Data, o)
	}
	return p
}

// tmpfsData are tmpfs's own options that a container's tmpfs may take, as
// Docker allows them.
var tmpfsData = map[string]bool{"size": true, "mode": true, "uid": true, "gid": true, "nr_inodes": true, "nr_blocks": true, "mpol": true}

// CheckTmpfs returns an error naming the first of options that is neither
// a mount flag nor an option of tmpfs: mount(2) would only say "invalid
// argument", and only when the container starts.
func CheckTmpfs(options []string) error {
	for _, d := range Parse(options).Data {
		if k, _, _ := strings.Cut(d, "="); !tmpfsData[k] {
			return fmt.Errorf("tmpfs option %q: want a mount flag (ro, noexec, ...) or size, mode, uid, gid, nr_inodes, nr_blocks, mpol", d)
		}
	}
	return nil
}
