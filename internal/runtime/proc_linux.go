package runtime

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// command is a child process to start: the part of os/exec.Cmd this package
// needs. It does not import os/exec (nor creack/pty, which does), because
// os/exec brings path/filepath, which a binary initialises late: see the
// package documentation.
type command struct {
	Path        string
	Args        []string
	Env         []string // nil is an empty environment, unlike os/exec
	Dir         string
	Stdin       *os.File // nil: /dev/null, as with os/exec
	Stdout      *os.File
	Stderr      *os.File
	ExtraFiles  []*os.File // descriptors 3 and up
	SysProcAttr *syscall.SysProcAttr

	Process *os.Process // once started
}

// Start starts the process; the caller reaps it.
func (c *command) Start() error {
	files := []*os.File{c.Stdin, c.Stdout, c.Stderr}
	for i, f := range files {
		if f != nil {
			continue
		}
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer null.Close()
		for j := i; j < len(files); j++ {
			if files[j] == nil {
				files[j] = null
			}
		}
		break
	}
	files = append(files, c.ExtraFiles...)
	env := c.Env
	if env == nil {
		env = []string{}
	}
	p, err := os.StartProcess(c.Path, c.Args, &os.ProcAttr{Dir: c.Dir, Env: env, Files: files, Sys: c.SysProcAttr})
	if err != nil {
		return err
	}
	c.Process = p
	return nil
}

// openPTY opens a new pseudo-terminal: the master side, and the terminal a
// process gets as its stdio. Neither becomes the caller's controlling
// terminal.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		var err error
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err == nil {
		slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	}
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// setWinsize sets the window size of the terminal whose master is f.
func setWinsize(f *os.File, rows, cols uint16) error {
	return control(f, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// control runs fn on f's descriptor without f.Fd, which would take the
// file out of the poller.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
