package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// -o cluster=FILE: the file is read and checked at start; a bad one is
// refused with a message naming the option and what is wrong.
func TestClusterOption(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"nodes":["127.0.0.1:11211","127.0.0.1:11212"],"self":1,"replicas":1}`)
	fs := newFlagSet()
	o := flags(fs)
	if err := fs.Parse([]string{"-o", "vbuckets=8,cluster=" + good}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := configure(o)
	if err != nil || cfg.Cluster == nil || cfg.Cluster.Self != 1 || len(cfg.Cluster.Nodes) != 2 || cfg.Cluster.Replicas != 1 {
		t.Fatalf("%+v %v", cfg.Cluster, err)
	}
	for _, tc := range []struct{ file, want string }{
		{write("self.json", `{"nodes":["127.0.0.1:11211"],"self":3}`), "self 3"},
		{write("syntax.json", `{"nodes":[`), "cluster config"},
		{write("field.json", `{"nodes":["127.0.0.1:11211"],"node":1}`), `unknown field "node"`},
		{filepath.Join(dir, "missing.json"), "no such file"},
		{write("rows.json", `{"nodes":["127.0.0.1:11211"],"map":[[0],[0]]}`), "map has 2 rows for 1024 vbuckets"},
	} {
		var stderr bytes.Buffer
		code := run([]string{"-p", "0", "-U", "0", "-l", "127.0.0.1", "-o", "cluster=" + tc.file}, &stderr, &stderr, nil)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, %q; want %q", filepath.Base(tc.file), code, stderr.String(), tc.want)
		}
	}
	var stdout bytes.Buffer
	run([]string{"-h"}, &stdout, &stdout, nil)
	if !strings.Contains(stdout.String(), "cluster=FILE") || strings.Contains(stdout.String(), "MISSING") {
		t.Error("gocache -h does not document -o cluster= cleanly")
	}
}
