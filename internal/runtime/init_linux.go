package runtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initMain runs in the container's init, on a locked thread, already inside
// the new namespaces. It returns only on a bug; every failure exits with
// Docker's code after telling the monitor why.
func initMain() {
	// Not to be ptraced, nor its /proc entries read, by processes of a
	// container whose pid namespace it joins, while it still holds the
	// monitor's privileges and mounts; the exec of the command resets it.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	syncF := os.NewFile(initSyncFD, "sync")
	fail := func(code int, format string, args ...any) {
		b, _ := json.Marshal(initMsg{Code: code, Msg: fmt.Sprintf(format, args...)})
		syncF.Write(b)
		os.Exit(code)
	}
	// The monitor sends the spec and the seccomp filter once it has put us
	// into the cgroup. They come over the socket rather than from the state
	// directory, which a user namespace's root may not be able to read.
	spec, filter, err := receiveConfig(syncF)
	if err != nil {
		fail(125, "init: %v", err)
	}
	unix.Umask(0)
	rs := &rootfsSetup{premounted: len(os.Args) > 2 && os.Args[2] == premountArg}
	if spec.Process.Terminal {
		if rs.console, err = os.Readlink("/proc/self/fd/0"); err != nil {
			fail(125, "init: console: %v", err)
		}
	}
	if err := setupRootfs(spec, rs); err != nil {
		fail(125, "init: %v", err)
	}
	if err := setupProcess(spec); err != nil {
		fail(125, "init: %v", err)
	}
	finishProcess(spec, filter, fail)
}

// finishProcess turns the init, or an exec'd helper, into the user's
// process: limits, working directory, command lookup, privileges, exec.
func finishProcess(spec *Spec, filter []unix.SockFilter, fail func(int, string, ...any)) {
	p := &spec.Process
	if err := setLimits(p); err != nil {
		fail(125, "init: %v", err)
	}
	env := p.Env
	if !hasEnv(env, "PATH") {
		env = append(append([]string(nil), env...), defaultPath)
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := mkdirInRoot(cwd); err != nil {
		fail(125, "init: working directory %s: %v", cwd, err)
	}
	// Relative commands and PATH entries resolve in the working directory.
	if err := unix.Chdir(cwd); err != nil {
		fail(125, "init: working directory %s: %v", cwd, err)
	}
	path, code, err := lookPath(p.Args[0], env)
	if err != nil {
		fail(code, "%v", err)
	}
	// The reaper is this very binary, reached through the link of proc:
	// the container's root does not hold it.
	reaper := -1
	if p.Init {
		if reaper, err = unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			fail(125, "init: reaper: %v", err)
		}
	}
	if err := dropPrivileges(spec, filter); err != nil {
		fail(125, "init: %v", err)
	}
	// Again as the user, who may not be allowed in.
	if err := unix.Chdir(cwd); err != nil {
		fail(126, "init: working directory %s: %v", cwd, err)
	}
	// Nothing of the host's stays open across exec; the sync socket is
	// close-on-exec too, so its end tells the monitor the exec happened.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		closeExtraFDs()
	}
	unix.Umask(0o022)
	if reaper >= 0 {
		// The reaper closes the sync socket once it passes signals on
		// and the command runs: a signal sent before would find process
		// 1 with no handler, which drops it.
		if _, err := unix.FcntlInt(initSyncFD, unix.F_SETFD, 0); err != nil {
			fail(125, "init: reaper: %v", err)
		}
		err = execFD(reaper, append([]string{reaperArg0, "--", path}, p.Args...), append(slices.Clip(reaperEnv), env...))
		fail(125, "init: reaper: %v", err)
	}
	err = unix.Exec(path, p.Args, env)
	code = 125
	switch {
	case errors.Is(err, unix.ENOENT):
		code = 127
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
		code = 126
	}
	fail(code, "exec: %q: %v", p.Args[0], err)
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

func getEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds file in the container's PATH and returns Docker's exit code
// with the error when it cannot.
func lookPath(file string, env []string) (string, int, error) {
	if strings.Contains(file, "/") {
		fi, err := os.Stat(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", 127, fmt.Errorf("exec: %q: stat %s: no such file or directory", file, file)
			}
			return "", 126, fmt.Errorf("exec: %q: %v", file, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", 126, fmt.Errorf("exec: %q: permission denied", file)
		}
		return file, 0, nil
	}
	denied := false
	var dirs []string
	if p := getEnv(env, "PATH"); p != "" {
		dirs = strings.Split(p, ":")
	}
	for _, dir := range dirs {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, 0, nil
		}
		denied = true
	}
	if denied {
		return "", 126, fmt.Errorf("exec: %q: permission denied", file)
	}
	return "", 127, fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

// closeExtraFDs marks every descriptor above 2 close-on-exec, for kernels
// without close_range.
func closeExtraFDs() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// receiveConfig reads what sendConfig wrote.
func receiveConfig(r io.Reader) (*Spec, []unix.SockFilter, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	ns, nf := binary.NativeEndian.Uint32(hdr[:4]), binary.NativeEndian.Uint32(hdr[4:])
	if ns > 64<<20 || nf > 1<<20 {
		return nil, nil, fmt.Errorf("config: sizes %d and %d out of range", ns, nf)
	}
	buf := make([]byte, ns+nf)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(buf[:ns], &spec); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	filter, err := decodeFilter(buf[ns:])
	if err != nil {
		return nil, nil, err
	}
	return &spec, filter, nil
}

// mkdirInRoot makes dir and its missing parents, each in its parent opened
// inside the root and never through a magic link of /proc, as a cloned
// child makes its working directory (childMkdirs).
func mkdirInRoot(dir string) error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	var steps []string
	for d := path.Clean(dir); d != "/" && d != "."; d = path.Dir(d) {
		steps = append(steps, d)
	}
	for i := len(steps) - 1; i >= 0; i-- {
		d := steps[i]
		how := mkdirHow
		parent, err := unix.Openat2(root, path.Dir(d), &how)
		if err != nil {
			return &os.PathError{Op: "open", Path: path.Dir(d), Err: err}
		}
		err = unix.Mkdirat(parent, path.Base(d), 0o755)
		unix.Close(parent)
		if err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdir", Path: d, Err: err}
		}
	}
	return nil
}

// execFD executes the file open at fd, as execveat(2) with an empty path.
func execFD(fd int, argv, env []string) error {
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	if e != 0 {
		return e
	}
	return nil
}
