package runtime

import "github.com/dockkit/dock/internal/cgroups"

// Resources are the limits of the container's cgroup.
type Resources = cgroups.Resources
