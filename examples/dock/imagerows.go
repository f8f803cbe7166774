package main

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dockkit/dock"
)

// imageRow is what dock images prints of an image, with the names docker's
// --format templates use.
type imageRow struct {
	Repository, Tag, ID, Digest, CreatedSince, CreatedAt, Size, Unpacked string
	labels                                                               map[string]string
	dangling                                                             bool
	names                                                                []string // what --filter reference matches
}

// imageHeaders are the headers of dock images's columns, by field.
var imageHeaders = []string{"{{.Repository}}", "REPOSITORY", "{{.Tag}}", "TAG", "{{.ID}}", "IMAGE ID",
	"{{.Digest}}", "DIGEST", "{{.CreatedSince}}", "CREATED", "{{.CreatedAt}}", "CREATED AT", "{{.Size}}", "SIZE",
	"{{.Unpacked}}", "UNPACKED"}

func newImageRow(ctx context.Context, h *dock.Host, img *dock.Image, trunc bool) imageRow {
	ref := img.Reference()
	name := ref
	name.Tag, name.Digest = "", ""
	r := imageRow{
		Repository: name.Familiar(), Tag: ref.Tag, ID: img.ID.String(),
		Digest: img.Digest.String(), CreatedSince: ago(img.Created), Size: humanSize(img.Size), Unpacked: "-",
		CreatedAt: img.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		labels:    img.Config.Config.Labels, dangling: img.Name == "",
	}
	if !r.dangling {
		// As docker's: the short and the full name, each with and
		// without the tag.
		r.names = []string{name.Familiar(), name.Name()}
		if ref.Tag != "" {
			r.names = append(r.names, name.Familiar()+":"+ref.Tag, name.Name()+":"+ref.Tag)
		}
	}
	if trunc {
		r.ID = img.ID.Encoded()[:12]
	}
	if r.dangling {
		r.Repository = "<none>"
	}
	if r.Tag == "" {
		r.Tag = "<none>"
	}
	if n := h.UnpackedSize(ctx, img); n > 0 {
		r.Unpacked = humanSize(n)
	}
	return r
}

// imageMatcher reads dock images's --filter as docker's: values of one key
// match when any does, and every key must match.
func imageMatcher(filters []string) (func(imageRow) bool, error) {
	by := map[string][]string{}
	for _, kv := range filters {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE: %w", kv, dock.ErrInvalidArgument)
		case k == "dangling":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("--filter %q: dangling is true or false: %w", kv, dock.ErrInvalidArgument)
			}
			v = strconv.FormatBool(b)
		case k == "reference":
			if _, err := path.Match(v, ""); err != nil {
				return nil, fmt.Errorf("--filter %q: %w: %w", kv, err, dock.ErrInvalidArgument)
			}
		case k != "dangling" && k != "label":
			return nil, fmt.Errorf("--filter %q: unknown key %s: %w", kv, k, dock.ErrInvalidArgument)
		}
		by[k] = append(by[k], v)
	}
	one := func(r imageRow, k, v string) bool {
		switch k {
		case "dangling":
			return r.dangling == (v == "true")
		case "reference":
			// As docker's: the pattern against the name, with or
			// without the tag.
			return slices.ContainsFunc(r.names, func(name string) bool {
				ok, _ := path.Match(v, name)
				return ok
			})
		case "label":
			lk, lv, hasValue := strings.Cut(v, "=")
			got, ok := r.labels[lk]
			return ok && (!hasValue || got == lv)
		}
		return false
	}
	keys := slices.Sorted(maps.Keys(by))
	return func(r imageRow) bool {
		for _, k := range keys {
			if !slices.ContainsFunc(by[k], func(v string) bool { return one(r, k, v) }) {
				return false
			}
		}
		return true
	}, nil
}
