package dock

import (
	"context"
	"testing"
)

// BenchmarkRunTrue measures a whole container life: Create, Start, Wait and
// Remove of `true` in a busybox image, all namespaces and a cgroup.
func BenchmarkRunTrue(b *testing.B) {
	h := benchHost(b)
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
