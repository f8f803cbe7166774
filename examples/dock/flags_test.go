package main

import (
	"errors"
	"testing"
	"time"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/examples/internal/runahead"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"67108864", 67108864, true},
		{"64m", 64 << 20, true},
		{"64M", 64 << 20, true},
		{"64mb", 64 << 20, true},
		{"64MiB", 64 << 20, true},
		{"64 m", 64 << 20, true},
		{"1g", 1 << 30, true},
		{"1.5g", 3 << 29, true},
		{"512k", 512 << 10, true},
		{"100b", 100, true},
		{"2t", 2 << 40, true},
		{"1p", 1 << 50, true},
		{"0", 0, true},
		{"", 0, false},
		{"m", 0, false},
		{"-1", 0, false},
		{"-64m", 0, false},
		{"64x", 0, false},
		{"1.2.3m", 0, false},
		{"0x10", 0, false},
		{"64mm", 0, false},
		{"8192p", 0, false},                // overflows int64
		{"99999999999999999999", 0, false}, // overflows int64
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBytes(tc.in)
			if !tc.ok {
				if err == nil || !errors.Is(err, dock.ErrInvalidArgument) {
					t.Fatalf("parseBytes(%q) = %d, %v; want an ErrInvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMemoryFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantOpt bool
		ok      bool
	}{
		{"64m", true, true},
		{"0", false, true}, // no limit, as docker
		{"1m", false, false},
		{"junk", false, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			f := runFlags{memory: tc.in}
			opts, err := f.options()
			if (err == nil) != tc.ok {
				t.Fatalf("-m %s: %v", tc.in, err)
			}
			if err == nil && (len(opts) == 1) != tc.wantOpt {
				t.Fatalf("-m %s gave %d options", tc.in, len(opts))
			}
		})
	}
}

func TestCheckUser(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"root", true},
		{"1000", true},
		{"1000:1000", true},
		{"user:users", true},
		{"0:0", true},
		{"", false},
		{":1000", false},
		{"1000:", false},
		{"1:2:3", false},
		{"a b", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			err := checkUser(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("checkUser(%q) = %v, want ok %v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, dock.ErrInvalidArgument) {
				t.Fatalf("checkUser(%q) = %v, want an ErrInvalidArgument", tc.in, err)
			}
		})
	}
}

// TestRunFlagParsing checks that run and create parse combined short flags
// and stop at the image, so that flags after it belong to the command.
func TestRunFlagParsing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(f *runFlags, rest []string) bool
	}{
		{"-it", []string{"-it", "img", "sh"}, func(f *runFlags, rest []string) bool {
			return f.interactive && f.tty && !f.detach && len(rest) == 2
		}},
		{"-dit", []string{"-dit", "img"}, func(f *runFlags, rest []string) bool {
			return f.interactive && f.tty && f.detach && len(rest) == 1
		}},
		{"-ti --rm", []string{"-ti", "--rm", "img"}, func(f *runFlags, rest []string) bool {
			return f.interactive && f.tty && f.rm
		}},
		{"-m and -u", []string{"-m", "64m", "-u", "1000:1000", "img"}, func(f *runFlags, rest []string) bool {
			return f.memory == "64m" && f.user == "1000:1000"
		}},
		{"-m=1g -uroot", []string{"-m=1g", "-uroot", "img"}, func(f *runFlags, rest []string) bool {
			return f.memory == "1g" && f.user == "root"
		}},
		{"flags after the image", []string{"--rm", "img", "ls", "-la", "--rm"}, func(f *runFlags, rest []string) bool {
			return f.rm && len(rest) == 4 && rest[1] == "ls" && rest[2] == "-la" && rest[3] == "--rm"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f runFlags
			cmd := &cobra.Command{Use: "run"}
			f.register(cmd, true)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatalf("parse %q: %v", tc.args, err)
			}
			if !tc.check(&f, cmd.Flags().Args()) {
				t.Fatalf("parse %q: flags %+v, args %q", tc.args, f, cmd.Flags().Args())
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "Less than a second"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{90 * time.Second, "About a minute"},
		{5 * time.Minute, "5 minutes"},
		{61 * time.Minute, "About an hour"},
		{5 * time.Hour, "5 hours"},
		{3 * 24 * time.Hour, "3 days"},
		{20 * 24 * time.Hour, "2 weeks"},
		{100 * 24 * time.Hour, "3 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := ago(time.Time{}); got != "N/A" {
		t.Errorf("ago(zero) = %q", got)
	}
}

// TestRunAheadFlags holds the flags examples/internal/runahead reads
// before the image to the command's own: a flag it does not know makes it
// give up, and one it takes for a flag without a value would make it read
// a value as the image.
func TestRunAheadFlags(t *testing.T) {
	root := (&cli{}).command()
	var run *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "run" {
			run = c
		}
	}
	if run == nil {
		t.Fatal("no run command")
	}
	run.InitDefaultHelpFlag()
	check := func(known map[string]bool, fs *pflag.FlagSet, what string) {
		seen := map[string]bool{}
		fs.VisitAll(func(f *pflag.Flag) {
			takes := f.NoOptDefVal == ""
			names := []string{"--" + f.Name}
			if f.Shorthand != "" {
				names = append(names, "-"+f.Shorthand)
			}
			for _, n := range names {
				seen[n] = true
				if got, ok := known[n]; !ok || got != takes {
					t.Errorf("%s flag %s: runahead knows it %v, taking a value %v; want %v", what, n, ok, got, takes)
				}
			}
		})
		for n := range known {
			if !seen[n] {
				t.Errorf("runahead knows %s flag %s, which dock has not", what, n)
			}
		}
	}
	check(runahead.GlobalFlags, root.PersistentFlags(), "global")
	local := pflag.NewFlagSet("run", pflag.ContinueOnError)
	run.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { local.AddFlag(f) })
	check(withHelp(runahead.RunFlags), local, "run")
}

// withHelp adds the help flag cobra gives every command to flags.
func withHelp(flags map[string]bool) map[string]bool {
	m := map[string]bool{"-h": false, "--help": false}
	for k, v := range flags {
		m[k] = v
	}
	return m
}
