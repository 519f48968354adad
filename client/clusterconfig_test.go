package memcached

import (
	"errors"
	"testing"
)

// VBucketForKey against values computed with Python's zlib.crc32:
// ((crc32(key) >> 16) & 0x7fff) % n.
func TestVBucketForKey(t *testing.T) {
	for _, tc := range []struct {
		key            string
		n1024, n64, n3 uint16
	}{
		{"hello", 528, 16, 1}, // crc32 0x3610a686
		{"foo", 115, 51, 1},   // 0x8c736521
		{"", 0, 0, 0},
		{"user::1234", 495, 47, 2},    // 0x2def0d34
		{"\xff\x00binary", 75, 11, 1}, // 0x344b9129
	} {
		for _, c := range []struct {
			n    int
			want uint16
		}{{1024, tc.n1024}, {64, tc.n64}, {3, tc.n3}} {
			if got := VBucketForKey(tc.key, c.n); got != c.want {
				t.Errorf("VBucketForKey(%q, %d) = %d, want %d", tc.key, c.n, got, c.want)
			}
		}
	}
	cfg := &ClusterConfig{VBucketMap: make([][]int, 1024)}
	if got := cfg.VBucketForKey("hello"); got != 528 {
		t.Errorf("ClusterConfig.VBucketForKey(hello) = %d", got)
	}
}

func TestParseClusterConfig(t *testing.T) {
	const good = `{"rev":7,"revEpoch":2,"name":"b","nodeLocator":"vbucket",
		"nodesExt":[{"services":{"kv":11210}},{"hostname":"10.0.0.2","services":{"kv":11211}}],
		"vBucketServerMap":{"hashAlgorithm":"CRC","numReplicas":1,"serverList":["$HOST:11210","10.0.0.2:11211"],
		"vBucketMap":[[0,1],[1,-1]]}}`
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := ParseClusterConfig([]byte(good), host)
		if err != nil {
			t.Fatal(err)
		}
		want0 := host + ":11210"
		if host == "::1" {
			want0 = "[::1]:11210"
		}
		if c.Rev != 7 || c.RevEpoch != 2 || c.Name != "b" || c.NumReplicas != 1 || c.ServerList[0] != want0 ||
			c.Nodes[0].Hostname != host || c.Nodes[0].KVPort != 11210 || c.Nodes[1].Hostname != "10.0.0.2" {
			t.Errorf("%s: %+v", host, c)
		}
		if s, ok := c.Server(1, 0); !ok || s != "10.0.0.2:11211" {
			t.Errorf("Server(1, 0) = %q %v", s, ok)
		}
		if _, ok := c.Server(1, 1); ok {
			t.Error("Server(1, 1): a replica where the map has -1")
		}
		if _, ok := c.Server(2, 0); ok {
			t.Error("Server(2, 0): a vbucket past the map")
		}
	}
	older := &ClusterConfig{Rev: 9, RevEpoch: 1}
	if c, _ := ParseClusterConfig([]byte(good), ""); !c.Newer(older) || older.Newer(c) || !c.Newer(nil) || c.ServerList[0] != "$HOST:11210" {
		t.Errorf("Newer or $HOST without a host: %+v", c)
	}
	for _, bad := range []string{
		`not json`,
		`{"nodeLocator":"ketama"}`,
		`{"nodeLocator":"vbucket"}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"MD5","serverList":["a:1"],"vBucketMap":[[0]]}}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"CRC","serverList":["a:1"],"vBucketMap":[]}}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"CRC","serverList":["a:1"],"vBucketMap":[[1]]}}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"CRC","serverList":["a:1"],"vBucketMap":[[-2]]}}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"CRC","serverList":["a:1"],"vBucketMap":[[]]}}`,
		`{"nodeLocator":"vbucket","vBucketServerMap":{"hashAlgorithm":"CRC","numReplicas":-1,"serverList":["a:1"],"vBucketMap":[[0]]}}`,
	} {
		if _, err := ParseClusterConfig([]byte(bad), "h"); !errors.Is(err, ErrBadClusterConfig) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
