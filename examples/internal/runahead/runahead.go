// Package runahead starts, for `dock run`, the monitor of the container
// the command is about to create, from its package initialisation: the
// monitor's start-up (a Go process's, some 12 ms of CPU) then runs while
// the command's own start-up and the create run, rather than after them.
//
// The command line tells the state root and whether the container gets
// dock's default namespaces, in which the monitor also starts the
// container's init ahead. What it cannot tell (a flag spelt in a way not
// looked for here) only costs a monitor that no create takes: it ends
// with the command, or after a second.
package runahead

import (
	"syscall"

	"github.com/dockkit/dock/internal/runtime/standby"
)

// The state root when neither --root nor DOCK_ROOT says (dock.DefaultRoot),
// and dock's default namespaces, as the runtime names them.
const (
	defaultRoot       = "/var/lib/dock"
	defaultNamespaces = "pid,mnt,uts,ipc,net,cgroup"
)

func init() {
	var buf [4096]byte
	if root, namespaces, ok := plan(cmdline(buf[:])); ok {
		standby.Prestart(root, namespaces)
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

// plan reads the command's arguments: whether it runs a container, in which
// state root (absolute), and with which namespaces for an init started
// ahead ("" for none).
func plan(args []string) (root, namespaces string, ok bool) {
	root, _ = syscall.Getenv("DOCK_ROOT")
	if root == "" {
		root = defaultRoot
	}
	namespaces = defaultNamespaces
	run := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func(flag string) (string, bool) {
			if a == flag && i+1 < len(args) {
				i++
				return args[i], true
			}
			if len(a) > len(flag) && a[:len(flag)+1] == flag+"=" {
				return a[len(flag)+1:], true
			}
			return "", false
		}
		if v, ok := value("--root"); ok {
			root = v
			continue
		}
		if !run {
			switch a {
			case "run":
				run = true
			case "--debug":
			default:
				// Another global flag, with its value, or another command.
				if _, ok := value("--insecure-registry"); ok {
					continue
				}
				if _, ok := value("--certs-dir"); ok {
					continue
				}
				if _, ok := value("--userns-remap"); ok {
					namespaces = "" // a user namespace: no init ahead
					continue
				}
				return "", "", false
			}
			continue
		}
		// Flags of run that give the container other namespaces.
		if v, ok := value("--network"); ok && v != "none" {
			namespaces = ""
		}
		if _, ok := value("--publish"); ok {
			namespaces = ""
		}
		if len(a) >= 2 && a[:2] == "-p" {
			namespaces = ""
		}
	}
	if !run || root == "" {
		return "", "", false
	}
	if root[0] != '/' {
		wd, err := syscall.Getwd()
		if err != nil {
			return "", "", false
		}
		root = wd + "/" + root
	}
	return root, namespaces, true
}
