// Package procstat reads a process's /proc/PID/stat.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Fields returns the fields of /proc/PID/stat after the command name:
// the third, the state, first. The name, second, may hold spaces and
// parentheses, so the fields are counted after its last ")".
func Fields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// Start returns when process pid started, in clock ticks after boot (the
// 22nd field), which tells a live process from another that took its pid.
func Start(pid int) (uint64, error) {
	f, err := Fields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
