package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/runtime/standby"
	"github.com/dockkit/dock/internal/unixsock"
)

// monitorReq is one request on monitor.sock, a JSON line.
type monitorReq struct {
	Op     string   `json:"op"` // "wait", "kill", "resize", "exec", "kill-exec"
	Signal int      `json:"signal,omitempty"`
	Rows   uint16   `json:"rows,omitempty"`
	Cols   uint16   `json:"cols,omitempty"`
	Exec   *Process `json:"exec,omitempty"`   // for "exec", with stdin, stdout, stderr passed along
	Filter string   `json:"filter,omitempty"` // for "exec": the compiled seccomp filter's file
	Pid    int      `json:"pid,omitempty"`    // for "kill-exec"
	Manual bool     `json:"manual,omitempty"` // for "kill": a stop by a caller, which the restart policy respects
	Stdin  bool     `json:"stdin,omitempty"`  // for "attach": what the client sends goes to the container's stdin
}

// monitorResp answers a request; for "wait" it comes when the container has
// stopped.
type monitorResp struct {
	Status *ExitStatus `json:"status,omitempty"`
	Error  string      `json:"error,omitempty"`
	Code   int         `json:"code,omitempty"` // for a failed "exec": Docker's exit code
	Pid    int         `json:"pid,omitempty"`  // for "exec": the process, once it runs
}

const errNotRunning = "not running"

// sockPath returns a path for the monitor socket short enough for
// sockaddr_un (108 bytes): the socket itself when it fits, otherwise the
// same file reached through an open descriptor of its directory, which the
// caller closes with the returned file.
func sockPath(stateDir string) (string, *os.File, error) {
	p := path.Join(stateDir, socketFile)
	if len(p) < 100 {
		return p, nil, nil
	}
	d, err := os.OpenFile(stateDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), socketFile), d, nil
}

func dialMonitor(stateDir string) (*unixsock.Conn, error) {
	p, d, err := sockPath(stateDir)
	if err != nil {
		return nil, err
	}
	if d != nil {
		defer d.Close()
	}
	return unixsock.Dial(p)
}

// call sends req to the container's monitor and decodes its answer.
func (h *Handle) call(ctx context.Context, req monitorReq, resp *monitorResp) error {
	c, err := dialMonitor(h.stateDir)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return json.Unmarshal(line, resp)
}

// Resize sets the window size of the container's terminal.
func (h *Handle) Resize(rows, cols uint16) error {
	var resp monitorResp
	if err := h.call(context.Background(), monitorReq{Op: "resize", Rows: rows, Cols: cols}, &resp); err != nil {
		return fmt.Errorf("container %s: resize: %w", h.spec.ID, err)
	}
	if resp.Error != "" {
		return fmt.Errorf("container %s: resize: %s", h.spec.ID, resp.Error)
	}
	return nil
}

// sealedExe returns a read-only copy of the running binary under dir, made
// once per binary: the name carries the binary's device, inode, size and
// modification time, so a rebuilt binary gets a new copy and an unchanged
// one is never copied again.
func sealedExe(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return "", err
	}
	name := standby.SealedName(st.Dev, st.Ino, st.Size, st.Mtim.Nano())
	p := path.Join(dir, name)
	var have unix.Stat_t
	if err := unix.Stat(p, &have); err == nil && have.Size == st.Size && have.Mode&0o7777 == 0o555 && have.Uid == uint32(os.Geteuid()) {
		return p, nil
	}
	// Searchable by all: the init of a user namespace runs it as an id
	// that owns nothing on the host.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".seal-*")
	if err != nil {
		return "", err
	}
	err = copyInHugeChunks(tmp, src)
	if err == nil {
		err = tmp.Chmod(0o555)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	pruneSealed(dir, name)
	return p, nil
}

// hugeChunk is the size of a huge page, and of the writes copyInHugeChunks
// makes.
const hugeChunk = 2 << 20

// copyInHugeChunks copies src to the empty file dst in whole, aligned
// writes of hugeChunk bytes. Written so, a filesystem with large folios
// (ext4, xfs) keeps the copy in huge pages in its page cache, and every
// exec of it maps the text with one fault per 2 MiB rather than one per
// 64 KiB: a monitor and an init start a quarter faster. A copy made by
// copy_file_range or small writes gets small pages.
func copyInHugeChunks(dst, src *os.File) error {
	buf := make([]byte, hugeChunk)
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return err
		}
	}
}

// pruneSealed removes copies of other binaries made more than a day ago.
// A monitor still running one keeps it through its bind mount.
func pruneSealed(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == keep || !strings.HasPrefix(e.Name(), "dock-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(path.Join(dir, e.Name()))
		}
	}
}

// removeCgroup removes the container's group, killing what is left in it,
// when the monitor could not: it died, or kept the group for a restart.
func removeCgroup(g *cgroupfs.Group) {
	if g == nil || !g.Made() {
		return
	}
	for _, d := range g.All() {
		if _, err := os.Lstat(d); err == nil {
			g.Kill()
			g.Delete()
			return
		}
	}
}

// exitCodeOf turns a wait status into Docker's exit code and signal.
func exitCodeOf(ws syscall.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}
