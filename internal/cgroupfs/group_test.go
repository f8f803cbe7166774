package cgroupfs

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestGroupJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Group
		made bool
	}{
		{`"dock/abc"`, Group{Name: "dock/abc"}, false},
		{`{"name":"dock/abc","dir":"/sys/fs/cgroup/dock/abc"}`, Group{Name: "dock/abc", Dir: "/sys/fs/cgroup/dock/abc"}, true},
		{`{"name":"d/x","dirs":{"memory":"/sys/fs/cgroup/memory/d/x"}}`, Group{Name: "d/x", Dirs: map[string]string{"memory": "/sys/fs/cgroup/memory/d/x"}}, true},
	} {
		var g Group
		if err := json.Unmarshal([]byte(tc.in), &g); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(g, tc.want) || g.Made() != tc.made {
			t.Errorf("%s: got %+v (made %v), want %+v (made %v)", tc.in, g, g.Made(), tc.want, tc.made)
		}
		b, _ := json.Marshal(g)
		var back Group
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, g) {
			t.Errorf("%s: round trip gave %+v, %v", tc.in, back, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"name":3}`), new(Group)); err == nil {
		t.Error("a number as name was accepted")
	}
}
