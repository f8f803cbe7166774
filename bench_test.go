package dock

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRunTrue measures a whole container life: Create, Start, Wait and
// Remove of `true` in a busybox image, all namespaces and a cgroup.
func BenchmarkRunTrue(b *testing.B) { benchRunTrue(b) }

// BenchmarkRunTrueWarm is BenchmarkRunTrue with a monitor kept ready for
// the next Create (WithWarmMonitor).
func BenchmarkRunTrueWarm(b *testing.B) { benchRunTrue(b, WithWarmMonitor()) }

func benchRunTrue(b *testing.B, opts ...OpenOption) {
	h := benchHost(b, opts...)
	img := benchImage(b, h)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		c, err := h.Create(ctx, img, WithCmd("true"))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
			b.Fatal(st, err)
		}
		if err := c.Remove(ctx, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStart measures Create and Start up to the container's command
// running, one container at a time with the program idle in between (50
// ms, not measured), as an orchestrator that starts a container on demand.
func BenchmarkStart(b *testing.B) { benchStart(b) }

// BenchmarkStartWarm is BenchmarkStart with WithWarmMonitor: the monitor,
// and the init, of the next container start while the program is idle.
func BenchmarkStartWarm(b *testing.B) { benchStart(b, WithWarmMonitor()) }

func benchStart(b *testing.B, opts ...OpenOption) {
	h := benchHost(b, opts...)
	img := benchImage(b, h)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		c, err := h.Create(ctx, img, WithCmd("true"))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
			b.Fatal(st, err)
		}
		if err := c.Remove(ctx, false); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
	}
}
