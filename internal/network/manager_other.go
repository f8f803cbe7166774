//go:build !linux

package network

import (
	"context"

	"github.com/dockkit/dock/internal/errdefs"
)

// Manager creates networks and connects containers to them; Linux only.
type Manager struct{}

// Open reports ErrNotSupported off Linux.
func Open(root string, opts ...Option) (*Manager, error) { return nil, errdefs.ErrNotSupported }

// List reports ErrNotSupported off Linux.
func (m *Manager) List() ([]Network, error) { return nil, errdefs.ErrNotSupported }

// Get reports ErrNotSupported off Linux.
func (m *Manager) Get(name string) (Network, error) { return Network{}, errdefs.ErrNotSupported }

// Endpoints reports ErrNotSupported off Linux.
func (m *Manager) Endpoints(name string) ([]Endpoint, error) { return nil, errdefs.ErrNotSupported }

// Default reports ErrNotSupported off Linux.
func (m *Manager) Default() (Network, error) { return Network{}, errdefs.ErrNotSupported }

// Create reports ErrNotSupported off Linux.
func (m *Manager) Create(name string, opts CreateOptions) (Network, error) {
	return Network{}, errdefs.ErrNotSupported
}

// Remove reports ErrNotSupported off Linux.
func (m *Manager) Remove(name string) error { return errdefs.ErrNotSupported }

// Connect reports ErrNotSupported off Linux.
func (m *Manager) Connect(ctx context.Context, network, containerID, netnsPath string, ports []PortMapping, opts ...ConnectOption) (*Endpoint, error) {
	return nil, errdefs.ErrNotSupported
}

// Disconnect reports ErrNotSupported off Linux.
func (m *Manager) Disconnect(ctx context.Context, network, containerID string) error {
	return errdefs.ErrNotSupported
}
