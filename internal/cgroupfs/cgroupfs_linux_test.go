package cgroupfs

import "testing"

func TestKeyedValue(t *testing.T) {
	b := []byte("low 0\nhigh 3\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
	if got := keyedValue(b, "oom_kill"); got != 1 {
		t.Fatalf("oom_kill = %d, want 1", got)
	}
	if got := keyedValue(b, "oom"); got != 2 {
		t.Fatalf("oom = %d, want 2", got)
	}
	if got := keyedValue([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), "oom_kill"); got != 7 {
		t.Fatalf("v1 oom_kill = %d, want 7", got)
	}
}
