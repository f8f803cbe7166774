package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dockkit/dock"
)

// psFlags are dock ps's flags beyond -a.
type psFlags struct {
	all, quiet, noTrunc, latest bool
	last                        int
	filters                     []string
	format                      string
}

func (f *psFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "show stopped containers too")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print IDs only")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "print whole IDs and commands")
	fl.BoolVarP(&f.latest, "latest", "l", false, "show the latest created container, in any state")
	fl.IntVarP(&f.last, "last", "n", -1, "show the N last created containers, in any state (0 for all)")
	fl.StringArrayVarP(&f.filters, "filter", "f", nil, "show only containers matching KEY=VALUE: id, name, label, status, exited, ancestor")
	fl.StringVar(&f.format, "format", "", "print each container through a Go template, as docker ps --format")
}

// psRow is what dock ps prints of a container, with the names docker's
// --format templates use.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Status, State, Names, Ports, Mounts string
	LabelMap                                                                       map[string]string
	exitCode                                                                       int
	fullID, ref                                                                    string
}

// Labels is the container's labels as docker prints them: k=v,k2=v2.
func (r psRow) Labels() string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(r.LabelMap)) {
		kv = append(kv, k+"="+r.LabelMap[k])
	}
	return strings.Join(kv, ",")
}

// Label is the value of one label.
func (r psRow) Label(k string) string { return r.LabelMap[k] }

func newPSRow(ctr *dock.Container, trunc bool) psRow {
	st := ctr.State()
	img := ctr.Image
	if ref, err := dock.ParseReference(img); err == nil {
		img = ref.Familiar()
	}
	id, cmd := ctr.ID, strings.Join(ctr.Command(), " ")
	if trunc {
		id, cmd = id[:12], truncate(cmd, 20)
	}
	state := string(st.Status)
	if st.Restarting {
		state = "restarting"
	}
	return psRow{
		ID: id, Image: img, Command: strconv.Quote(cmd), Status: statusText(st), State: state, Names: ctr.Name,
		CreatedAt:  ctr.Created.Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: humanDuration(time.Since(ctr.Created)) + " ago",
		LabelMap:   ctr.Labels, exitCode: st.ExitCode, fullID: ctr.ID, ref: ctr.Image,
	}
}

// byStatus reports whether a filter picks containers by status, which
// shows stopped ones too, as docker's -a does.
func (f *psFlags) byStatus() bool {
	return slices.ContainsFunc(f.filters, func(kv string) bool {
		return strings.HasPrefix(kv, "status=") || strings.HasPrefix(kv, "exited=")
	})
}

// matcher reads --filter as docker's ps does: values of one key match
// when any does, and every key must match.
func (f *psFlags) matcher() (func(psRow) bool, error) {
	by := map[string][]string{}
	names := map[string]*regexp.Regexp{}
	for _, kv := range f.filters {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE: %w", kv, dock.ErrInvalidArgument)
		case k == "status" && !slices.Contains([]string{"created", "restarting", "running", "removing", "paused", "exited", "dead"}, v):
			return nil, fmt.Errorf("--filter %q: status is created, restarting, running, removing, paused, exited or dead: %w", kv, dock.ErrInvalidArgument)
		case k == "exited":
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("--filter %q: want an exit code: %w", kv, dock.ErrInvalidArgument)
			}
		case k == "name":
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("--filter %q: %w: %w", kv, err, dock.ErrInvalidArgument)
			}
			names[v] = re
		case k != "id" && k != "label" && k != "status" && k != "ancestor":
			return nil, fmt.Errorf("--filter %q: unknown key %s: %w", kv, k, dock.ErrInvalidArgument)
		}
		by[k] = append(by[k], v)
	}
	one := func(r psRow, k, v string) bool {
		switch k {
		case "id":
			return strings.HasPrefix(r.fullID, v)
		case "name":
			// A regular expression, as docker's: name=^web$ is web alone.
			return names[v].MatchString(r.Names)
		case "label":
			lk, lv, hasValue := strings.Cut(v, "=")
			got, ok := r.LabelMap[lk]
			return ok && (!hasValue || got == lv)
		case "status":
			return r.State == v
		case "exited":
			n, _ := strconv.Atoi(v)
			return r.State == "exited" && r.exitCode == n
		case "ancestor":
			return r.Image == v || r.ref == v || strings.TrimSuffix(r.Image, ":latest") == v
		}
		return false
	}
	return func(r psRow) bool {
		for k, vs := range by {
			if !slices.ContainsFunc(vs, func(v string) bool { return one(r, k, v) }) {
				return false
			}
		}
		return true
	}, nil
}

// psHeaders are the headers of dock ps's columns, by field.
var psHeaders = []string{"{{.ID}}", "CONTAINER ID", "{{.Image}}", "IMAGE", "{{.Command}}", "COMMAND",
	"{{.CreatedAt}}", "CREATED AT", "{{.RunningFor}}", "CREATED", "{{.Status}}", "STATUS", "{{.State}}", "STATE",
	"{{.Names}}", "NAMES", "{{.Ports}}", "PORTS", "{{.Labels}}", "LABELS", "{{.Mounts}}", "MOUNTS"}
