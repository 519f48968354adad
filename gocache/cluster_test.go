package gocache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/sasl"
)

// terse is the terse bucket config's fields as Couchbase's clients read
// them, decoded with encoding/json only.
type terse struct {
	Rev         int64  `json:"rev"`
	RevEpoch    int64  `json:"revEpoch"`
	Name        string `json:"name"`
	NodeLocator string `json:"nodeLocator"`
	NodesExt    []struct {
		Hostname string         `json:"hostname"`
		Services map[string]int `json:"services"`
		ThisNode bool           `json:"thisNode"`
	} `json:"nodesExt"`
	VBucketServerMap struct {
		HashAlgorithm string   `json:"hashAlgorithm"`
		NumReplicas   int      `json:"numReplicas"`
		ServerList    []string `json:"serverList"`
		VBucketMap    [][]int  `json:"vBucketMap"`
	} `json:"vBucketServerMap"`
}

func parseTerse(t *testing.T, body []byte) terse {
	t.Helper()
	var c terse
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("config %q: %v", body, err)
	}
	return c
}

var clusterNodes = []string{"127.0.0.1:11211", "127.0.0.1:11212", "$HOST:11213"}

// startCluster starts node self of clusterNodes, 16 vbuckets, one replica,
// the balanced map: vbucket vb active on vb%3, its replica on (vb+1)%3.
func startCluster(t *testing.T, self int) string {
	t.Helper()
	return startClusterLoops(t, self, 0)
}

// startClusterLoops is startCluster in a connection model: loops as
// Config.EventLoops.
func startClusterLoops(t *testing.T, self, loops int) string {
	t.Helper()
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 16}, EventLoops: loops,
		Cluster: &gocache.ClusterConfig{Nodes: clusterNodes, Self: self, Replicas: 1}})
	return addr
}

func helloFeatures(t *testing.T, c *gocachetest.Conn, features ...gm.Feature) []gm.Feature {
	t.Helper()
	var body []byte
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	res := c.Do(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("cluster_test"), Body: body})
	if res.Status != gm.SUCCESS {
		t.Fatalf("HELLO %v: %v %q", features, res.Status, res.Body)
	}
	var got []gm.Feature
	for b := res.Body; len(b) >= 2; b = b[2:] {
		got = append(got, gm.Feature(binary.BigEndian.Uint16(b)))
	}
	return got
}

func TestClusterGetConfig(t *testing.T) {
	addr := startCluster(t, 1)
	c := gocachetest.Dial(t, addr)
	res := c.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG})
	if res.Status != gm.SUCCESS || res.DataType != 0 {
		t.Fatalf("GET_CLUSTER_CONFIG: %v datatype %#x", res.Status, res.DataType)
	}
	cfg := parseTerse(t, res.Body)
	if cfg.Rev != 1 || cfg.RevEpoch != 1 || cfg.Name != gocache.DefaultBucket || cfg.NodeLocator != "vbucket" {
		t.Errorf("rev %d epoch %d name %q locator %q", cfg.Rev, cfg.RevEpoch, cfg.Name, cfg.NodeLocator)
	}
	m := cfg.VBucketServerMap
	if m.HashAlgorithm != "CRC" || m.NumReplicas != 1 || strings.Join(m.ServerList, ",") != strings.Join(clusterNodes, ",") || len(m.VBucketMap) != 16 {
		t.Fatalf("vBucketServerMap %+v", m)
	}
	for vb, row := range m.VBucketMap {
		if len(row) != 2 || row[0] != vb%3 || row[1] != (vb+1)%3 {
			t.Errorf("vbucket %d: %v", vb, row)
		}
	}
	if len(cfg.NodesExt) != 3 || cfg.NodesExt[2].Hostname != "$HOST" || cfg.NodesExt[1].Services["kv"] != 11212 ||
		!cfg.NodesExt[1].ThisNode || cfg.NodesExt[0].ThisNode {
		t.Errorf("nodesExt %+v", cfg.NodesExt)
	}

	// Datatype JSON once negotiated; with a known version, a value only
	// if the server's is newer.
	helloFeatures(t, c, gm.FeatureJSON, gm.FeatureGetClusterConfigWithKnownVersion)
	if res := c.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}); res.DataType != gm.DatatypeFlagJSON {
		t.Errorf("datatype %#x with JSON", res.DataType)
	}
	for _, tc := range []struct {
		epoch, rev int64
		body       bool
	}{{1, 0, true}, {0, 5, true}, {1, 1, false}, {1, 2, false}, {2, 0, false}} {
		ex := make([]byte, 16)
		binary.BigEndian.PutUint64(ex, uint64(tc.epoch))
		binary.BigEndian.PutUint64(ex[8:], uint64(tc.rev))
		res := c.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG, Extras: ex})
		if res.Status != gm.SUCCESS || (len(res.Body) > 0) != tc.body {
			t.Errorf("known (%d, %d): %v, %d bytes", tc.epoch, tc.rev, res.Status, len(res.Body))
		}
	}

	// Malformed: a key, a value, a CAS, extras of another length.
	for _, req := range []gm.MCRequest{
		{Opcode: gm.GET_CLUSTER_CONFIG, Key: []byte("k")},
		{Opcode: gm.GET_CLUSTER_CONFIG, Body: []byte("v")},
		{Opcode: gm.GET_CLUSTER_CONFIG, Cas: 1},
		{Opcode: gm.GET_CLUSTER_CONFIG, Extras: make([]byte, 8)},
	} {
		c := gocachetest.Dial(t, addr)
		if res := c.Do(req); res.Status != gm.EINVAL {
			t.Errorf("%+v: %v", req, res.Status)
		}
	}
}

// The vbucket states follow the map: active where this node is first,
// replica where it is second, NOT_MY_VBUCKET with the config elsewhere.
func TestClusterNotMyVBucket(t *testing.T) {
	addr := startCluster(t, 0)
	c := gocachetest.Dial(t, addr)
	for vb := range uint16(16) {
		want := cache.Dead
		switch vb % 3 {
		case 0:
			want = cache.Active
		case 2:
			want = cache.Replica
		}
		res := c.Do(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: vb})
		if res.Status != gm.SUCCESS || cache.VBState(binary.BigEndian.Uint32(res.Body)) != want {
			t.Errorf("vbucket %d: %v %v, want %v", vb, res.Status, res.Body, want)
		}
	}
	if res := c.Do(gocachetest.SetRequest(0, "k", "v", 0)); res.Status != gm.SUCCESS {
		t.Fatalf("SET in vbucket 0: %v", res.Status)
	}
	res := c.Do(gocachetest.SetRequest(1, "k", "v", 0))
	if res.Status != gm.NOT_MY_VBUCKET || parseTerse(t, res.Body).Rev != 1 {
		t.Fatalf("SET in vbucket 1: %v %q", res.Status, res.Body)
	}
	// Without dedupe every NOT_MY_VBUCKET carries it; with it, only one
	// newer than what the connection was sent.
	if res := c.Do(gm.MCRequest{Opcode: gm.GET, VBucket: 1, Key: []byte("k")}); res.Status != gm.NOT_MY_VBUCKET || len(res.Body) == 0 {
		t.Errorf("second NOT_MY_VBUCKET: %v, %d bytes", res.Status, len(res.Body))
	}
	d := gocachetest.Dial(t, addr)
	if got := helloFeatures(t, d, gm.FeatureXError, gm.FeatureDedupeNotMyVbucketClustermap); len(got) != 2 {
		t.Fatalf("HELLO accepted %v", got)
	}
	for i, want := range []bool{true, false, false} {
		res := d.Do(gm.MCRequest{Opcode: gm.GET, VBucket: 4, Key: []byte("k")})
		if res.Status != gm.NOT_MY_VBUCKET || (len(res.Body) > 0) != want {
			t.Errorf("deduped NOT_MY_VBUCKET %d: %v, %d bytes", i, res.Status, len(res.Body))
		}
	}
	e := gocachetest.Dial(t, addr)
	helloFeatures(t, e, gm.FeatureDedupeNotMyVbucketClustermap)
	e.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG})
	if res := e.Do(gm.MCRequest{Opcode: gm.GET, VBucket: 4, Key: []byte("k")}); len(res.Body) != 0 {
		t.Errorf("NOT_MY_VBUCKET after GET_CLUSTER_CONFIG: %d bytes", len(res.Body))
	}
}

// pushConn reads whatever the server sends, pushes included.
type pushConn struct {
	t *testing.T
	c net.Conn
}

func dialPush(t *testing.T, addr string) *pushConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pushConn{t, c}
}

func (r *pushConn) send(req gm.MCRequest) {
	r.t.Helper()
	if _, err := req.Transmit(r.c); err != nil {
		r.t.Fatal(err)
	}
}

// pushPacket is a packet read raw: header fields and sections.
type pushPacket struct {
	magic, opcode, datatype byte
	status                  uint16
	extras, key, body       []byte
}

func (r *pushConn) read() pushPacket {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [24]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		r.t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(r.c, b); err != nil {
		r.t.Fatal(err)
	}
	kl, el := int(binary.BigEndian.Uint16(h[2:])), int(h[4])
	return pushPacket{magic: h[0], opcode: h[1], datatype: h[5], status: binary.BigEndian.Uint16(h[6:]),
		extras: b[:el], key: b[el : el+kl], body: b[el+kl:]}
}

func (r *pushConn) hello(features ...gm.Feature) {
	r.t.Helper()
	var body []byte
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	r.send(gm.MCRequest{Opcode: gm.HELLO, Body: body})
	if p := r.read(); p.status != 0 || len(p.body) != 2*len(features) {
		r.t.Fatalf("HELLO %v: status %#x, accepted %x", features, p.status, p.body)
	}
}

// SET_VBUCKET active on one of this node's replicas bumps the rev, makes
// the node the vbucket's active in the map, and pushes the new config to
// the duplex connections that asked, in full or brief, and to no other.
func TestClusterSetVBucketPush(t *testing.T) {
	for _, loops := range []int{0, 1} {
		t.Run(map[int]string{0: "goroutines", 1: "eventloop"}[loops], func(t *testing.T) {
			testClusterSetVBucketPush(t, startClusterLoops(t, 0, loops))
		})
	}
}

func testClusterSetVBucketPush(t *testing.T, addr string) {
	full, brief, plain, other := dialPush(t, addr), dialPush(t, addr), dialPush(t, addr), dialPush(t, addr)
	full.hello(gm.FeatureDuplex, gm.FeatureJSON, gm.FeatureClustermapChangeNotification)
	brief.hello(gm.FeatureDuplex, gm.FeatureClustermapChangeNotificationBrief)
	plain.hello(gm.FeatureDuplex)
	other.hello(gm.FeatureDuplex, gm.FeatureClustermapChangeNotification)
	other.send(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("@no bucket@")})
	if p := other.read(); p.status != 0 {
		t.Fatalf("SELECT_BUCKET: %#x", p.status)
	}

	admin := gocachetest.Dial(t, addr)
	admin.SetVBucket(2, cache.Active) // vbucket 2: active on node 2, replica here
	for _, tc := range []struct {
		c    *pushConn
		name string
		body bool
	}{{full, "full", true}, {brief, "brief", false}} {
		p := tc.c.read()
		if p.magic != gm.ServerRequestMagic || p.opcode != 0x01 || len(p.extras) != 16 || string(p.key) != gocache.DefaultBucket {
			t.Fatalf("%s: magic %#x opcode %#x extras %x key %q", tc.name, p.magic, p.opcode, p.extras, p.key)
		}
		if epoch, rev := binary.BigEndian.Uint64(p.extras), binary.BigEndian.Uint64(p.extras[8:]); epoch != 1 || rev != 2 {
			t.Errorf("%s: epoch %d rev %d", tc.name, epoch, rev)
		}
		if (len(p.body) > 0) != tc.body {
			t.Fatalf("%s: %d bytes of config", tc.name, len(p.body))
		}
		if tc.body {
			cfg := parseTerse(t, p.body)
			if p.datatype != gm.DatatypeFlagJSON || cfg.Rev != 2 || cfg.VBucketServerMap.VBucketMap[2][0] != 0 {
				t.Errorf("pushed config: datatype %#x rev %d row %v", p.datatype, cfg.Rev, cfg.VBucketServerMap.VBucketMap[2])
			}
		}
	}
	// The others got nothing: the next packet they read is their NOOP's
	// answer.
	for _, c := range []*pushConn{plain, other, full} {
		c.send(gm.MCRequest{Opcode: gm.NOOP, Opaque: 7})
		if p := c.read(); p.magic != gm.RES_MAGIC || p.opcode != byte(gm.NOOP) {
			t.Errorf("expected the NOOP's answer, read magic %#x opcode %#x", p.magic, p.opcode)
		}
	}
	res := admin.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG})
	cfg := parseTerse(t, res.Body)
	if cfg.Rev != 2 || len(cfg.VBucketServerMap.VBucketMap[2]) != 2 || cfg.VBucketServerMap.VBucketMap[2][0] != 0 || cfg.VBucketServerMap.VBucketMap[2][1] != -1 {
		t.Errorf("after promotion: rev %d row %v", cfg.Rev, cfg.VBucketServerMap.VBucketMap[2])
	}
	if res := admin.Do(gocachetest.SetRequest(2, "k", "v", 0)); res.Status != gm.SUCCESS {
		t.Errorf("SET in the promoted vbucket: %v", res.Status)
	}
	// The same state again changes nothing: no new rev.
	admin.SetVBucket(2, cache.Active)
	if cfg := parseTerse(t, admin.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}).Body); cfg.Rev != 2 {
		t.Errorf("rev %d after a SET_VBUCKET that changed nothing", cfg.Rev)
	}
	// Leaving active: the active slot is left empty, the node a replica.
	admin.SetVBucket(0, cache.Replica)
	if p := full.read(); p.magic != gm.ServerRequestMagic || binary.BigEndian.Uint64(p.extras[8:]) != 3 {
		t.Errorf("second push: magic %#x extras %x", p.magic, p.extras)
	} else if row := parseTerse(t, p.body).VBucketServerMap.VBucketMap[0]; row[0] != -1 || row[1] != 1 {
		// vbucket 0 was [0 1]: no active known, node 1's replica stays
		t.Errorf("vbucket 0 after leaving active: %v", row)
	}
	// Dead takes the node out of the row: vbucket 5 was [2 0].
	admin.SetVBucket(5, cache.Dead)
	if p := full.read(); binary.BigEndian.Uint64(p.extras[8:]) != 4 {
		t.Errorf("third push: extras %x", p.extras)
	} else if row := parseTerse(t, p.body).VBucketServerMap.VBucketMap[5]; row[0] != 2 || row[1] != -1 {
		t.Errorf("vbucket 5 after dead: %v", row)
	}
}

// ClustermapChangeNotification needs Duplex (EINVAL, as kv_engine); with
// both forms asked, only the brief one is taken.
func TestClusterHello(t *testing.T) {
	addr := startCluster(t, 0)
	c := gocachetest.Dial(t, addr)
	for _, f := range []gm.Feature{gm.FeatureClustermapChangeNotification, gm.FeatureClustermapChangeNotificationBrief} {
		res := c.Do(gm.MCRequest{Opcode: gm.HELLO, Body: binary.BigEndian.AppendUint16(nil, uint16(f))})
		if res.Status != gm.EINVAL {
			t.Errorf("HELLO %v without Duplex: %v", f, res.Status)
		}
	}
	got := helloFeatures(t, c, gm.FeatureDuplex, gm.FeatureClustermapChangeNotification, gm.FeatureClustermapChangeNotificationBrief)
	if len(got) != 2 || got[0] != gm.FeatureDuplex || got[1] != gm.FeatureClustermapChangeNotificationBrief {
		t.Errorf("accepted %v", got)
	}
}

// Without a cluster: KEY_ENOENT, and NOT_MY_VBUCKET carries nothing.
func TestClusterNone(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 4}})
	c := gocachetest.Dial(t, addr)
	if res := c.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}); res.Status != gm.KEY_ENOENT || len(res.Body) != 0 {
		t.Errorf("GET_CLUSTER_CONFIG: %v %q", res.Status, res.Body)
	}
	c.SetVBucket(1, cache.Replica)
	if res := c.Do(gocachetest.SetRequest(1, "k", "v", 0)); res.Status != gm.NOT_MY_VBUCKET || len(res.Body) != 0 {
		t.Errorf("NOT_MY_VBUCKET: %v %q", res.Status, res.Body)
	}
	cl, err := mc.Dial(context.Background(), "tcp", addr, mc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.ClusterConfig(context.Background()); !errors.Is(err, gm.ErrKeyNotFound) {
		t.Errorf("client: %v", err)
	}
}

func TestClusterConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"empty", `{}`, "nodes"},
		{"not json", `{"nodes":`, "cluster config"},
		{"unknown field", `{"nodes":["a:1"],"slef":0}`, "slef"},
		{"trailing", `{"nodes":["a:1"]} {}`, "after"},
		{"no port", `{"nodes":["a"]}`, "host:port"},
		{"port 0", `{"nodes":["a:0"]}`, "host:port"},
		{"port too big", `{"nodes":["a:70000"]}`, "host:port"},
		{"twice", `{"nodes":["a:1","a:1"]}`, "twice"},
		{"self", `{"nodes":["a:1"],"self":1}`, "self"},
		{"replicas", `{"nodes":["a:1"],"replicas":1}`, "replicas"},
		{"epoch", `{"nodes":["a:1"],"epoch":-1}`, "epoch"},
		{"row length", `{"nodes":["a:1","b:1"],"replicas":1,"map":[[0]]}`, "entries"},
		{"row node", `{"nodes":["a:1","b:1"],"map":[[2]]}`, "node 2"},
		{"row dup", `{"nodes":["a:1","b:1"],"replicas":1,"map":[[1,1]]}`, "twice"},
		{"empty map", `{"nodes":["a:1"],"map":[]}`, "rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gocache.ParseClusterConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gocache: ") {
				t.Errorf("%s: %v, want an error about %q", tc.json, err, tc.want)
			}
		})
	}
	cfg, err := gocache.ParseClusterConfig([]byte(`{"nodes":["a:1","b:2"],"self":1,"replicas":1,"map":[[0,1],[1,-1]]}`))
	if err != nil || cfg.Self != 1 || len(cfg.VBucketMap) != 2 {
		t.Fatalf("%+v %v", cfg, err)
	}
	// The map must have a row per vbucket.
	if _, err := gocache.New(gocache.Config{Cache: cache.Config{VBuckets: 4}, Cluster: cfg}); err == nil || !strings.Contains(err.Error(), "4 vbuckets") {
		t.Errorf("New with 2 rows for 4 vbuckets: %v", err)
	}
	s, err := gocache.New(gocache.Config{Cache: cache.Config{VBuckets: 2}, Cluster: cfg})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// The client's ClusterConfig against gocache: "$HOST" replaced, each
// key's vbucket served by the node the map names.
func TestClusterClient(t *testing.T) {
	addr := startCluster(t, 0)
	cl, err := mc.Dial(context.Background(), "tcp", addr, mc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg, err := cl.ClusterConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rev != 1 || cfg.Name != gocache.DefaultBucket || len(cfg.VBucketMap) != 16 || cfg.NumReplicas != 1 ||
		cfg.ServerList[2] != "127.0.0.1:11213" || cfg.Nodes[2].Hostname != "127.0.0.1" || !cfg.Nodes[0].ThisNode {
		t.Fatalf("%+v", cfg)
	}
	served := 0
	for i := range 200 {
		key := "key" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		vb := cfg.VBucketForKey(key)
		_, err := cl.Set(vb, key, 0, 0, []byte("v"))
		owner, _ := cfg.Server(vb, 0)
		switch {
		case owner == clusterNodes[0]:
			if err != nil {
				t.Fatalf("%s in vbucket %d, served here: %v", key, vb, err)
			}
			served++
		case !errors.Is(err, gm.ErrNotMyVBucket):
			t.Fatalf("%s in vbucket %d, on %s: %v", key, vb, owner, err)
		}
	}
	if served == 0 {
		t.Error("no key was this node's")
	}
}

// The reference client has no call for the config, but reads it from a
// NOT_MY_VBUCKET's value and through Send.
func TestClusterRefClient(t *testing.T) {
	addr := startCluster(t, 0)
	c, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(1, "k")
	var res *refmc.MCResponse
	if !errors.As(err, &res) || res.Status != refmc.NOT_MY_VBUCKET || parseTerse(t, res.Body).Rev != 1 {
		t.Fatalf("Get in vbucket 1: %v", err)
	}
	res, err = c.Send(&refmc.MCRequest{Opcode: refmc.CommandCode(gm.GET_CLUSTER_CONFIG)})
	if err != nil || len(parseTerse(t, res.Body).VBucketServerMap.VBucketMap) != 16 {
		t.Fatalf("GET_CLUSTER_CONFIG: %v", err)
	}
}

// setConfigRequest is a SET_CLUSTER_CONFIG of a map over clusterNodes
// (16 vbuckets, one replica) at epoch 1 and rev, every row vbmapRow.
func setConfigRequest(t *testing.T, rev int64, serverList []string, row []int) gm.MCRequest {
	t.Helper()
	vbmap := make([][]int, 16)
	for i := range vbmap {
		vbmap[i] = row
	}
	body, err := json.Marshal(map[string]any{"rev": rev, "revEpoch": 1, "nodeLocator": "vbucket",
		"vBucketServerMap": map[string]any{"hashAlgorithm": "CRC", "numReplicas": 1, "serverList": serverList, "vBucketMap": vbmap}})
	if err != nil {
		t.Fatal(err)
	}
	ex := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1), uint64(rev))
	return gm.MCRequest{Opcode: 0xb4, Extras: ex, Key: []byte(gocache.DefaultBucket), Body: body, DataType: gm.DatatypeFlagJSON}
}

// SET_CLUSTER_CONFIG: a newer map of this cluster is served at its
// revision and pushed; an older or equal one is KEY_EEXISTS, another
// cluster's or a malformed one EINVAL, and the map stays.
func TestClusterSetConfig(t *testing.T) {
	addr := startCluster(t, 0)
	full := dialPush(t, addr)
	full.hello(gm.FeatureDuplex, gm.FeatureClustermapChangeNotification)
	admin := gocachetest.Dial(t, addr)
	if res := admin.Do(setConfigRequest(t, 5, clusterNodes, []int{1, 0})); res.Status != gm.SUCCESS {
		t.Fatalf("SET_CLUSTER_CONFIG: %v %s", res.Status, res.Body)
	}
	if p := full.read(); p.magic != gm.ServerRequestMagic || binary.BigEndian.Uint64(p.extras[8:]) != 5 {
		t.Fatalf("push: magic %#x extras %x", p.magic, p.extras)
	} else if cfg := parseTerse(t, p.body); cfg.Rev != 5 || cfg.VBucketServerMap.VBucketMap[0][0] != 1 {
		t.Fatalf("pushed rev %d row %v", cfg.Rev, cfg.VBucketServerMap.VBucketMap[0])
	}
	for _, tc := range []struct {
		name string
		req  gm.MCRequest
		want gm.Status
	}{
		{"same rev", setConfigRequest(t, 5, clusterNodes, []int{2, 0}), gm.KEY_EEXISTS},
		{"older rev", setConfigRequest(t, 4, clusterNodes, []int{2, 0}), gm.KEY_EEXISTS},
		{"other nodes", setConfigRequest(t, 6, clusterNodes[:2], []int{1, 0}), gm.EINVAL},
		{"node out of range", setConfigRequest(t, 6, clusterNodes, []int{3, 0}), gm.EINVAL},
		{"row too short", setConfigRequest(t, 6, clusterNodes, []int{1}), gm.EINVAL},
		{"node twice", setConfigRequest(t, 6, clusterNodes, []int{1, 1}), gm.EINVAL},
		{"rev 0", setConfigRequest(t, 0, clusterNodes, []int{1, 0}), gm.EINVAL},
	} {
		if res := admin.Do(tc.req); res.Status != tc.want {
			t.Errorf("%s: %v %s, want %v", tc.name, res.Status, res.Body, tc.want)
		}
	}
	bad := setConfigRequest(t, 6, clusterNodes, []int{1, 0})
	bad.Body = []byte("{")
	if res := admin.Do(bad); res.Status != gm.EINVAL {
		t.Errorf("malformed JSON: %v", res.Status)
	}
	trailing := setConfigRequest(t, 6, clusterNodes, []int{1, 0})
	trailing.Body = append(trailing.Body, []byte(` {}`)...)
	if res := admin.Do(trailing); res.Status != gm.EINVAL {
		t.Errorf("data after the JSON object: %v", res.Status)
	}
	// Larger than any config, refused before it is decoded (a valid
	// config padded with spaces, taken without the bound).
	huge := setConfigRequest(t, 6, clusterNodes, []int{1, 0})
	huge.Body = append(huge.Body, bytes.Repeat([]byte(" "), 1<<20)...)
	if res := admin.Do(huge); res.Status != gm.E2BIG {
		t.Errorf("a config over 1 MiB: %v", res.Status)
	}
	cfg := parseTerse(t, admin.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}).Body)
	if cfg.Rev != 5 || cfg.VBucketServerMap.VBucketMap[3][0] != 1 {
		t.Errorf("after the refusals: rev %d row %v", cfg.Rev, cfg.VBucketServerMap.VBucketMap[3])
	}
	// The map names node 1 active: this node's vbuckets say NOT_MY_VBUCKET
	// only by their states, which SET_CLUSTER_CONFIG leaves alone.
	if res := admin.Do(gocachetest.SetRequest(0, "k", "v", 0)); res.Status != gm.SUCCESS {
		t.Errorf("SET in vbucket 0, still active here: %v", res.Status)
	}
	// The operator's map is the map from now on: SET_VBUCKET leaves it
	// (a revision bumped here alone could be another node's at the same
	// revision with another map).
	admin.SetVBucket(3, cache.Dead)
	if cfg := parseTerse(t, admin.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}).Body); cfg.Rev != 5 ||
		!slices.Equal(cfg.VBucketServerMap.VBucketMap[3], []int{1, 0}) {
		t.Errorf("after SET_VBUCKET dead: rev %d row %v, want the operator's rev 5 [1 0]", cfg.Rev, cfg.VBucketServerMap.VBucketMap[3])
	}
	// No extras: malformed, the connection closed.
	noExtras := setConfigRequest(t, 7, clusterNodes, []int{1, 0})
	noExtras.Extras = nil
	if res := admin.Do(noExtras); res.Status != gm.EINVAL {
		t.Errorf("without extras: %v", res.Status)
	}
}

// SET_CLUSTER_CONFIG of a bucket named in its key: a user limited to
// other buckets is refused it (EACCESS), as SELECT_BUCKET refuses it,
// and the bucket's map stays.
func TestClusterSetConfigAccess(t *testing.T) {
	users, err := sasl.Load(strings.NewReader("alice:wonderland\nbob:builder\n!buckets bob travel\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 16}, Users: users,
		Buckets: []string{gocache.DefaultBucket, "travel"}, Cluster: &gocache.ClusterConfig{Nodes: clusterNodes, Replicas: 1}})
	bob := dialRaw(t, addr)
	bob.hello(0x07) // XERROR, for EACCESS
	if st := bob.plain("bob", "builder"); st != gm.SUCCESS {
		t.Fatal(st)
	}
	if res := bob.do(setConfigRequest(t, 5, clusterNodes, []int{1, 0})); res.Status != gm.EACCESS {
		t.Fatalf("bob setting the default bucket's map: %v %s", res.Status, res.Body)
	}
	travel := setConfigRequest(t, 5, clusterNodes, []int{1, 0})
	travel.Key = []byte("travel")
	if res := bob.do(travel); res.Status != gm.SUCCESS {
		t.Fatalf("bob setting travel's map: %v %s", res.Status, res.Body)
	}
	alice := dialRaw(t, addr)
	if st := alice.plain("alice", "wonderland"); st != gm.SUCCESS {
		t.Fatal(st)
	}
	if cfg := parseTerse(t, alice.do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}).Body); cfg.Rev != 1 {
		t.Errorf("the default bucket's map: rev %d, want 1", cfg.Rev)
	}
}
