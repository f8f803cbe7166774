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

// TestTakeOnce checks that a monitor started ahead is taken once, and only
// for its root.
func TestTakeOnce(t *testing.T) {
	started = &Started{Root: "/r", ID: "id"}
	defer func() { started = nil }()
	if Peek("/other") != "" || Take("/other") != nil {
		t.Errorf("taken for another root")
	}
	if Peek("/r") != "id" {
		t.Errorf("Peek(/r) = %q", Peek("/r"))
	}
	if s := Take("/r"); s == nil || s.ID != "id" {
		t.Errorf("Take(/r) = %+v", s)
	}
	if Take("/r") != nil || Peek("/r") != "" {
		t.Errorf("taken twice")
	}
}
