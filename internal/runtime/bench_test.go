//go:build linux

package runtime

import (
	"context"
	"testing"
)

// BenchmarkStartWaitDelete measures a whole `run --rm busybox true`:
// Start, Wait and Delete of a container with Docker's default isolation.
func BenchmarkStartWaitDelete(b *testing.B) {
	for i := 0; i < b.N; i++ {
		spec := testSpec(b, "true")
		h, err := Start(context.Background(), spec, nil)
		if err != nil {
			b.Fatal(err)
		}
		es, err := h.Wait(context.Background())
		if err != nil || es.ExitCode != 0 {
			b.Fatal(es, err)
		}
		if err := h.Delete(false); err != nil {
			b.Fatal(err)
		}
	}
}
