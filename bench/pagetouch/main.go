//go:build linux

// Command pagetouch measures what touching fresh memory costs on this
// host: the first write to each 4 KiB page of a new anonymous mapping, the
// same after MADV_POPULATE_WRITE faulted the pages in, and after a huge
// page backs the mapping. A process that starts touches every page it uses
// for the first time, so on a host where this is dear (a guest whose
// page tables the hypervisor shadows), process start-up is dear too.
//
//	go run ./bench/pagetouch [-rounds N]
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	page     = 4 << 10
	hugePage = 2 << 20
)

func main() {
	rounds := flag.Int("rounds", 9, "rounds; the median is printed")
	flag.Parse()
	kinds := []struct {
		name    string
		prepare func([]byte) error
	}{
		{"fault (small pages)", func([]byte) error { return nil }},
		{"after MADV_POPULATE_WRITE", func(b []byte) error { return unix.Madvise(b, unix.MADV_POPULATE_WRITE) }},
		{"huge page (MADV_HUGEPAGE)", func(b []byte) error { return unix.Madvise(b, unix.MADV_HUGEPAGE) }},
	}
	fmt.Printf("first write to each of %d pages of %d KiB, median of %d rounds\n", hugePage/page, page>>10, *rounds)
	for _, k := range kinds {
		var per []time.Duration
		var prep []time.Duration
		for range *rounds {
			b, release, err := alignedRegion()
			if err != nil {
				fail(err)
			}
			t := time.Now()
			if err := k.prepare(b); err != nil {
				fail(fmt.Errorf("%s: %w", k.name, err))
			}
			prep = append(prep, time.Since(t))
			t = time.Now()
			for i := 0; i < len(b); i += page {
				b[i] = 1
			}
			per = append(per, time.Since(t)/time.Duration(len(b)/page))
			release()
		}
		fmt.Printf("  %-28s %8v a page (madvise: %v)\n", k.name, median(per), median(prep))
	}
}

// alignedRegion maps a fresh anonymous region and returns its first
// huge-page-aligned 2 MiB.
func alignedRegion() ([]byte, func(), error) {
	m, err := unix.Mmap(-1, 0, 2*hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, err
	}
	p := uintptr(unsafe.Pointer(&m[0]))
	off := int((p+hugePage-1)&^(hugePage-1) - p)
	return m[off : off+hugePage], func() { unix.Munmap(m) }, nil
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pagetouch:", err)
	os.Exit(1)
}
