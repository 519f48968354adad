package mcbench

import (
	"flag"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseRatio(t *testing.T) {
	for _, tc := range []struct {
		in       string
		get, del float64
		bad      bool
	}{
		{in: "9:1", get: 0.9},
		{in: "1:1", get: 0.5},
		{in: "1:0", get: 1},
		{in: "0:1", get: 0},
		{in: " 3 : 1 ", get: 0.75},
		{in: "0.9", get: 0.9},
		{in: "1", get: 1},
		{in: "0", get: 0},
		{in: "8:1:1", get: 0.8, del: 0.1},
		{in: "0:0:1", del: 1},
		{in: "1:0:1", get: 0.5, del: 0.5},
		{in: "9:1:0", get: 0.9},
		{in: " 2 : 1 : 1 ", get: 0.5, del: 0.25},
		{in: "0:0", bad: true},
		{in: "0:0:0", bad: true},
		{in: "1:1:1:1", bad: true},
		{in: "1::1", bad: true},
		{in: "1:1:-1", bad: true},
		{in: "1:1:x", bad: true},
		{in: "1:1:NaN", bad: true},
		{in: "-1:2", bad: true},
		{in: "1.5", bad: true},
		{in: "x", bad: true},
		{in: "NaN", bad: true},
		{in: "", bad: true},
	} {
		get, del, err := ParseRatio(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseRatio(%q) = %v, %v, want an error", tc.in, get, del)
			}
			continue
		}
		if err != nil || get != tc.get || del != tc.del {
			t.Errorf("ParseRatio(%q) = %v, %v, %v; want %v, %v", tc.in, get, del, err, tc.get, tc.del)
		}
	}
}

func TestFormatRatio(t *testing.T) {
	for _, tc := range []struct {
		get, del float64
		want     string
	}{
		{0.9, 0, "9:1"},
		{0.5, 0, "1:1"},
		{0.25, 0, "1:3"},
		{1, 0, "1:0"},
		{0, 0, "0:1"},
		{0.8, 0.1, "8:1:1"},
		{0, 1, "0:0:1"},
		{0.5, 0.5, "1:0:1"},
		{0, 0.5, "0:1:1"},
		{0.9, 0.05, "18:1:1"},
	} {
		if got := FormatRatio(tc.get, tc.del); got != tc.want {
			t.Errorf("FormatRatio(%v, %v) = %q, want %q", tc.get, tc.del, got, tc.want)
		}
	}
	// What ParseRatio returns formats back to the ratio, reduced.
	for _, in := range []string{"9:1", "1:3", "8:1:1", "1:2:3", "0:0:1", "3:0:1", "1:1:1"} {
		get, del, err := ParseRatio(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatRatio(get, del); got != in {
			t.Errorf("FormatRatio(ParseRatio(%q)) = %q", in, got)
		}
	}
}

func TestValidateFractions(t *testing.T) {
	for _, tc := range []struct {
		get, del float64
		ok       bool
	}{
		{0.9, 0, true},
		{0.8, 0.1, true},
		{0, 1, true},
		{1.0 / 3, 2.0 / 3, true},
		{0.7, 0.7, false},
		{0.5, -0.1, false},
		{0, 1.5, false},
		{0.5, math.NaN(), false},
	} {
		c := DefaultConfig()
		c.GetFraction, c.DeleteFraction = tc.get, tc.del
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("get %v delete %v: %v, want ok %v", tc.get, tc.del, err, tc.ok)
		}
	}
}

func TestFlags(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		c := DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		err := fs.Parse(args)
		if err == nil {
			err = c.Validate()
		}
		return c, err
	}
	c, err := parse("-addr", "h:1", "-conns", "8", "-depth", "16", "-mode", "quiet", "-ratio", "1:1",
		"-keys", "5", "-value-size", "10", "-duration", "0", "-requests", "100", "-warmup", "-check",
		"-progress", "250ms", "-cpu-pid", "7", "-seed", "9", "-timeout", "1s", "-key-prefix", "k")
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "tcp" || c.Addr != "h:1" || c.Conns != 8 || c.Depth != 16 || c.Mode != Quiet ||
		c.GetFraction != 0.5 || c.Keys != 5 || c.ValueSize != 10 || c.Duration != 0 || c.Requests != 100 ||
		!c.Warmup || !c.Check || c.Progress != 250*time.Millisecond || c.CPUPid != 7 || c.Seed != 9 ||
		c.Timeout != time.Second || c.KeyPrefix != "k" {
		t.Fatalf("parsed %+v", c)
	}
	if c, err := parse("-ratio", "8:1:1"); err != nil || c.GetFraction != 0.8 || c.DeleteFraction != 0.1 {
		t.Fatalf("-ratio 8:1:1: %+v, %v", c, err)
	}
	if c, err := parse("-ratio", "0:0:1", "-ratio", "0.75"); err != nil || c.GetFraction != 0.75 || c.DeleteFraction != 0 {
		t.Fatalf("-ratio 0.75 after 0:0:1: %+v, %v", c, err)
	}
	if c, err := parse("-unix", "/tmp/s", "-progress", "off"); err != nil || c.Network != "unix" || c.Addr != "/tmp/s" || c.Progress != 0 {
		t.Fatalf("-unix: %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"-addr", "h:1", "-unix", "/tmp/s"},
		{"-duration", "0"},
		{"-mode", "loud"},
		{"-ratio", "2"},
		{"-ratio", "1:1:1:1"},
		{"-conns", "0"},
		{"-depth", "0"},
		{"-keys", "0"},
		{"-value-size", "-1"},
		{"-timeout", "0"},
		{"-progress", "-1s"},
		{"-key-prefix", strings.Repeat("k", 250)},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestDepthCap(t *testing.T) {
	c := DefaultConfig()
	c.Depth = 16
	if c.depth() != 16 {
		t.Errorf("depth %d, want 16", c.depth())
	}
	c.ValueSize = 100 << 10
	if c.depth() != 2 {
		t.Errorf("depth with 100 KiB values %d, want 2", c.depth())
	}
	c.ValueSize = 1 << 20
	if c.depth() != 1 {
		t.Errorf("depth with 1 MiB values %d, want 1", c.depth())
	}
}

func TestProgressEvery(t *testing.T) {
	c := DefaultConfig()
	if c.progressEvery() != 0 {
		t.Error("progress without an output")
	}
	c.ProgressOut = io.Discard
	if c.Duration = 10 * time.Second; c.progressEvery() != time.Second {
		t.Error("auto progress off on a 10 s run")
	}
	if c.Duration = 2 * time.Second; c.progressEvery() != 0 {
		t.Error("auto progress on for a 2 s run")
	}
	if c.Progress = 100 * time.Millisecond; c.progressEvery() != c.Progress {
		t.Error("explicit progress interval ignored")
	}
}
