// Package runahead starts, for `dock run`, the monitor of the container
// the command is about to create, from its package initialisation: the
// monitor's start-up (a Go process's, some 12 ms of CPU) then runs while
// the command's own start-up and the create run, rather than after them.
//
// The command line tells the state root. What it cannot tell (a flag spelt
// in a way not looked for here) only costs a monitor that no create takes:
// it ends with the command, or after ten seconds.
package runahead

import (
	"path"
	"syscall"

	"github.com/dockkit/dock/internal/runtime/standby"
)

// The state root when neither --root nor DOCK_ROOT says (dock.DefaultRoot).
const defaultRoot = "/var/lib/dock"

func init() {
	var buf [4096]byte
	if root, ok := plan(cmdline(buf[:])); ok {
		standby.Prestart(root)
	}
}

// cmdline returns this process's arguments, without argv[0].
func cmdline(buf []byte) []string {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	n, err := syscall.Read(fd, buf)
	syscall.Close(fd)
	if err != nil || n <= 0 || n == len(buf) {
		return nil // a longer command line is left alone
	}
	var args []string
	start := 0
	for i, c := range buf[:n] {
		if c == 0 {
			args = append(args, string(buf[start:i]))
			start = i + 1
		}
	}
	if len(args) == 0 {
		return nil
	}
	return args[1:]
}

// The flags the command line may hold before the image: dock's global
// flags and those of dock run, by whether they take a value; help is left
// out, as it runs nothing. The tests of examples/dock hold these lists to
// the command's own.
var (
	GlobalFlags = map[string]bool{"--root": true, "--insecure-registry": true, "--certs-dir": true,
		"--userns-remap": true, "--debug": false}
	RunFlags = map[string]bool{
		"--rm": false, "-d": false, "--detach": false, "-i": false, "--interactive": false,
		"-t": false, "--tty": false, "--read-only": false, "--privileged": false, "--no-healthcheck": false, "--init": false,
		"--name": true, "-e": true, "--env": true, "-w": true, "--workdir": true, "-u": true, "--user": true,
		"--entrypoint": true, "-m": true, "--memory": true, "--cpus": true, "--pids-limit": true,
		"--network": true, "-p": true, "--publish": true, "-v": true, "--volume": true, "--tmpfs": true,
		"--hostname": true, "--cap-add": true, "--cap-drop": true, "--platform": true, "-l": true,
		"--label": true, "--restart": true, "--health-cmd": true, "--health-interval": true,
		"--health-timeout": true, "--health-start-period": true, "--health-retries": true,
		"--env-file": true, "--memory-swap": true, "--memory-reservation": true, "-c": true,
		"--cpu-shares": true, "--cpu-quota": true, "--cpu-period": true, "--cpuset-cpus": true,
		"--cpuset-mems": true, "--blkio-weight": true, "--pid": true, "--ipc": true, "--uts": true,
		"--stop-signal": true, "--stop-timeout": true, "--log-opt": true, "--ulimit": true,
		"--security-opt": true, "--group-add": true, "--sysctl": true, "--oom-score-adj": true, "--shm-size": true, "--device": true,
		"--cgroupns": true, "--mount": true, "--add-host": true, "--dns": true, "--dns-search": true, "--dns-option": true,
	}
)

// plan reads the command's arguments: whether it runs a container, and in
// which state root (absolute, clean). It reads flags up to the image, and
// gives up on any it does not know: what follows the image is the
// container's.
func plan(args []string) (root string, ok bool) {
	root, _ = syscall.Getenv("DOCK_ROOT")
	if root == "" {
		root = defaultRoot
	}
	run := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !run && a == "run" {
			run = true
			continue
		}
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break // the image, or a command other than run
		}
		known := GlobalFlags
		if run {
			known = RunFlags
		}
		name, value, inline := a, "", false
		if a[1] == '-' {
			for j := 2; j < len(a); j++ {
				if a[j] == '=' {
					name, value, inline = a[:j], a[j+1:], true
					break
				}
			}
		} else if len(a) > 2 {
			// Shorthands together (-it), the last of which may take a
			// value, given with them (-eK=V) or next.
			for j := 1; j < len(a); j++ {
				takes, isFlag := known["-"+a[j:j+1]]
				if !isFlag {
					return "", false
				}
				if takes {
					name = "-" + a[j:j+1]
					value, inline = a[j+1:], j+1 < len(a)
					break
				}
				name = "-" + a[j:j+1]
			}
		}
		takes, isFlag := known[name]
		if !isFlag {
			if g, global := GlobalFlags[name]; run && global {
				takes = g
			} else {
				return "", false
			}
		}
		if takes && !inline {
			if i+1 >= len(args) {
				return "", false
			}
			i++
			value = args[i]
		}
		if name == "--root" {
			root = value
		}
	}
	if !run || root == "" {
		return "", false
	}
	if root[0] != '/' {
		wd, err := syscall.Getwd()
		if err != nil {
			return "", false
		}
		root = wd + "/" + root
	}
	return path.Clean(root), true
}
