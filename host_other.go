//go:build !linux

package dock

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/dockkit/dock/internal/runtime"
)

var errNeedsLinux = fmt.Errorf("dock needs Linux: %w", ErrNotSupported)

func (h *Host) openPlatform(context.Context) error { return errNeedsLinux }

func (h *Host) mountTemp([]Mount) (string, func() error, error) { return "", nil, errNeedsLinux }

func (h *Host) emptyDir() (string, error) { return "", errNeedsLinux }

func removeAll(dir string) { os.RemoveAll(dir) }

func syncDir(string) error { return errNeedsLinux }

func lockPath(context.Context, string, bool) (func(), error) { return nil, errNeedsLinux }

func lockExisting(context.Context, string, bool) (func(), error) { return nil, errNeedsLinux }

func (h *Host) lockRoot(context.Context, bool) (func(), error) { return nil, errNeedsLinux }

func unmountScratch(string) {}

func securityDefaults(*createConfig, *runtime.Spec) error { return errNeedsLinux }

func statDevice(*runtime.Device) error { return errNeedsLinux }

func hostDevices(runtime.Device) ([]runtime.Device, error) { return nil, errNeedsLinux }

func hasOpaqueAncestor(*os.Root, string, string) bool { return false }

func unixSignalName(s syscall.Signal) string { return fmt.Sprintf("SIG%d", int(s)) }

func (h *Host) cgroupSpec(string, *Resources, *runtime.Spec) error { return errNeedsLinux }

func makeCgroup(*runtime.Spec, *Resources) error { return errNeedsLinux }

func dropCgroup(*runtime.Spec) {}

func (h *Host) fillVolume(context.Context, string, []Mount, string) (bool, error) {
	return false, errNeedsLinux
}

func checkTmpfs([]string) error { return nil }

func moveEntries(string, string) error { return errNeedsLinux }

func checkResources(*Resources) error { return nil }
func reaperRuns() error               { return errNeedsLinux }
