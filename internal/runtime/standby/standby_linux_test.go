package standby

import (
	"fmt"
	"regexp"
	"testing"
)

func TestNewID(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 100 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if !hex64.MatchString(id) || seen[id] {
			t.Fatalf("ID %q: not 64 hex digits, or seen before", id)
		}
		seen[id] = true
	}
}

func TestSealedName(t *testing.T) {
	for _, v := range [][4]uint64{{0xfe00, 0x98e59b, 0x154d4e0, 0x18ebeb2e267d3555}, {0, 1, 0, 0}, {1 << 40, 1<<64 - 1, 1 << 33, 1 << 62}} {
		want := fmt.Sprintf("dock-%x-%x-%x-%x", v[0], v[1], v[2], v[3])
		if got := SealedName(v[0], v[1], int64(v[2]), int64(v[3])); got != want {
			t.Errorf("SealedName(%x) = %q, want %q", v, got, want)
		}
	}
}

// TestClaimAndTakeOnce checks that the ID of a monitor started ahead is
// given once, and only for its root, and the monitor taken once.
func TestClaimAndTakeOnce(t *testing.T) {
	started, claimed = &Started{Root: "/r", ID: "id"}, false
	defer func() { started, claimed = nil, false }()
	if ClaimID("/other") != "" {
		t.Errorf("claimed for another root")
	}
	if id := ClaimID("/r"); id != "id" {
		t.Errorf("ClaimID(/r) = %q", id)
	}
	if id := ClaimID("/r"); id != "" {
		t.Errorf("claimed twice: %q", id)
	}
	if s := Take(); s == nil || s.ID != "id" {
		t.Errorf("Take() = %+v", s)
	}
	if Take() != nil {
		t.Errorf("taken twice")
	}
}
