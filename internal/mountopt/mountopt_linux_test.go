package mountopt

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		options     []string
		flags       uintptr
		propagation uintptr
		data        []string
	}{
		{"ro bind", []string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, 0, nil},
		{"rw clears ro", []string{"ro", "rw", "bind"}, unix.MS_BIND, 0, nil},
		{"overlay data", []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b"}, 0, 0,
			[]string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b"}},
		{"flags and data", []string{"nosuid", "nodev", "mode=755", "size=65536k"}, unix.MS_NOSUID | unix.MS_NODEV, 0, []string{"mode=755", "size=65536k"}},
		{"propagation", []string{"rbind", "rprivate"}, unix.MS_BIND | unix.MS_REC, unix.MS_PRIVATE | unix.MS_REC, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Parse(tt.options)
			if p.Flags != tt.flags || p.Propagation != tt.propagation || !reflect.DeepEqual(p.Data, tt.data) {
				t.Errorf("Parse(%q) = %#x %#x %q, want %#x %#x %q", tt.options, p.Flags, p.Propagation, p.Data, tt.flags, tt.propagation, tt.data)
			}
		})
	}
}

func TestCheckTmpfs(t *testing.T) {
	for _, ok := range [][]string{nil, {"size=64m", "mode=1777", "noexec", "ro", "uid=1000", "nr_inodes=10k"}} {
		if err := CheckTmpfs(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range [][]string{{"foo"}, {"size=1m", "lowerdir=/x"}, {"nosuchflag=1"}} {
		if err := CheckTmpfs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
