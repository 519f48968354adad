package replication_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/gocache/replication"
)

// clusterNode is one in-process node of a test vbucket cluster.
type clusterNode struct {
	addr string
	srv  *gocache.Server
	rep  *replication.Replicator
}

// startClusterNodes starts n in-process gocache nodes on loopback, a
// cluster of vbuckets vbuckets with replicas replicas and the balanced
// map (vbucket vb active on vb%n, its replicas on the next nodes), each
// with a Replicator that streams its replica vbuckets from their actives.
func startClusterNodes(t *testing.T, n, vbuckets, replicas int) []clusterNode {
	t.Helper()
	reps := make([]*replication.Replicator, n)
	srvs, addrs := gocachetest.StartCluster(t, n, func(i int, addrs []string) gocache.Config {
		reps[i] = &replication.Replicator{}
		return gocache.Config{Cache: cache.Config{VBuckets: vbuckets},
			Cluster:    &gocache.ClusterConfig{Nodes: addrs, Self: i, Replicas: replicas},
			Replicator: reps[i]}
	})
	nodes := make([]clusterNode, n)
	for i := range nodes {
		nodes[i] = clusterNode{addr: addrs[i], srv: srvs[i], rep: reps[i]}
	}
	return nodes
}

// pushMap gives the node at addr the map vbmap at epoch 1 and rev with
// SET_CLUSTER_CONFIG, and returns the answer's status.
func pushMap(t *testing.T, addr string, nodes []string, replicas int, rev int64, vbmap [][]int) gm.Status {
	t.Helper()
	body, err := json.Marshal(map[string]any{"rev": rev, "revEpoch": 1, "name": gocache.DefaultBucket, "nodeLocator": "vbucket",
		"vBucketServerMap": map[string]any{"hashAlgorithm": "CRC", "numReplicas": replicas, "serverList": nodes, "vBucketMap": vbmap}})
	if err != nil {
		t.Fatal(err)
	}
	ex := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1), uint64(rev))
	res := gocachetest.Dial(t, addr).Do(gm.MCRequest{Opcode: 0xb4, Extras: ex, Key: []byte(gocache.DefaultBucket),
		Body: body, DataType: gm.DatatypeFlagJSON})
	return res.Status
}

// waitReplicated waits until vbucket vb on every node of replicas has the
// high seqno it has on active, failing after 10 s.
func waitReplicated(t *testing.T, active *cache.Cache, vb uint16, replicas ...*cache.Cache) {
	t.Helper()
	want, _ := active.HighSeqno(vb)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		behind := -1
		var at uint64
		for i, r := range replicas {
			if at, _ = r.HighSeqno(vb); at != want {
				behind = i
				break
			}
		}
		if behind < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vbucket %d: replica %d at seqno %d, active at %d", vb, behind, at, want)
		}
	}
}

// A node holding replicas of vbuckets active on two other nodes streams
// each from its own source, one feed per source; a vbucket whose active
// moves (a new map, the new active promoted, the old one made a replica)
// streams from the new active, resumed where it was (no rollback), on
// the old active too.
func TestClusterReplicasTwoSources(t *testing.T) {
	const vbuckets, replicas = 12, 2
	nodes := startClusterNodes(t, 3, vbuckets, replicas)
	addrs := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}
	caches := make([]*cache.Cache, 3)
	conns := make([]*gocachetest.Conn, 3)
	for i, n := range nodes {
		caches[i], conns[i] = n.srv.Cache(gocache.DefaultBucket), gocachetest.Dial(t, n.addr)
	}
	key := func(vb uint16, i int) string { return fmt.Sprintf("vb%d-k%d", vb, i) }
	write := func(node int, vb uint16, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if res := conns[node].Do(gocachetest.SetRequest(vb, key(vb, i), key(vb, i)+"-v", 0)); res.Status != gm.SUCCESS {
				t.Fatalf("SET %s on node %d: %v", key(vb, i), node, res.Status)
			}
		}
	}
	for vb := range uint16(vbuckets) {
		write(int(vb)%3, vb, 0, 10)
	}
	for vb := range uint16(vbuckets) {
		a := int(vb) % 3
		waitReplicated(t, caches[a], vb, caches[(a+1)%3], caches[(a+2)%3])
	}
	for vb := range uint16(vbuckets) {
		a := int(vb) % 3
		for _, r := range []int{(a + 1) % 3, (a + 2) % 3} {
			it, ok := caches[r].GetReplica(vb, cache.CollectionKey(nil, 0, []byte(key(vb, 3))))
			if !ok || string(it.Value) != key(vb, 3)+"-v" {
				t.Fatalf("vbucket %d on node %d: %q %v", vb, r, it.Value, ok)
			}
		}
	}
	st := nodes[2].rep.Status()
	if len(st) != 2 || st[0].Primary == st[1].Primary {
		t.Fatalf("node 2's replication: %+v", st)
	}
	for _, s := range st {
		if !s.Connected || s.Streams != vbuckets/3 || (s.Primary != addrs[0] && s.Primary != addrs[1]) {
			t.Fatalf("node 2's feed from %s: %+v", s.Primary, s)
		}
	}

	// vbucket 0 moves from node 0 to node 1: the new map on every node,
	// then the old active made a replica and the new one promoted.
	vbmap := make([][]int, vbuckets)
	for vb := range vbmap {
		vbmap[vb] = []int{vb % 3, (vb + 1) % 3, (vb + 2) % 3}
	}
	vbmap[0] = []int{1, 2, 0}
	for _, a := range addrs {
		if s := pushMap(t, a, addrs, replicas, 2, vbmap); s != gm.SUCCESS {
			t.Fatalf("SET_CLUSTER_CONFIG on %s: %v", a, s)
		}
	}
	conns[0].SetVBucket(0, cache.Replica)
	conns[1].SetVBucket(0, cache.Active)
	write(1, 0, 10, 15)
	waitReplicated(t, caches[1], 0, caches[2], caches[0])
	for _, r := range []int{0, 2} {
		it, ok := caches[r].GetReplica(0, cache.CollectionKey(nil, 0, []byte(key(0, 14))))
		if !ok || string(it.Value) != key(0, 14)+"-v" {
			t.Fatalf("vbucket 0 on node %d after the move: %q %v", r, it.Value, ok)
		}
	}
	for i, n := range nodes {
		for _, s := range n.rep.Status() {
			if s.Rollbacks != 0 || s.OutOfOrder != 0 {
				t.Errorf("node %d's feed from %s: %+v", i, s.Primary, s)
			}
		}
	}
	// Every node serves the pushed map's revision: SET_VBUCKET found it
	// already said what it did.
	for i, c := range conns {
		res := c.Do(gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG})
		var cfg struct {
			Rev int64 `json:"rev"`
		}
		if err := json.Unmarshal(res.Body, &cfg); err != nil || cfg.Rev != 2 {
			t.Errorf("node %d serves rev %d (%v)", i, cfg.Rev, err)
		}
	}
}

// A vbucket whose new active is behind the replica: the replica streams
// from the new active, whose failover log branched off below what the
// replica holds, so it rolls back (to 0, as an ephemeral bucket does) and
// takes the new active's history, without the writes the new active
// never had.
func TestClusterReplicaRollbackOnMove(t *testing.T) {
	const vbuckets, replicas = 3, 2
	nodes := startClusterNodes(t, 3, vbuckets, replicas)
	addrs := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}
	caches := make([]*cache.Cache, 3)
	conns := make([]*gocachetest.Conn, 3)
	for i, n := range nodes {
		caches[i], conns[i] = n.srv.Cache(gocache.DefaultBucket), gocachetest.Dial(t, n.addr)
	}
	set := func(node int, key string) {
		t.Helper()
		if res := conns[node].Do(gocachetest.SetRequest(0, key, key+"-v", 0)); res.Status != gm.SUCCESS {
			t.Fatalf("SET %s on node %d: %v", key, node, res.Status)
		}
	}
	// vbucket 0: active on node 0, replicas on 1 and 2.
	set(0, "early")
	waitReplicated(t, caches[0], 0, caches[1], caches[2])
	// Node 1 stops following (pending: kept, not streamed); node 2 gets
	// what follows.
	conns[1].SetVBucket(0, cache.Pending)
	set(0, "late1")
	set(0, "late2")
	waitReplicated(t, caches[0], 0, caches[2])
	// Node 0 is gone: node 1, behind, becomes vbucket 0's active, node
	// 2 its replica.
	// Rev 3: node 1's SET_VBUCKET made its own rev 2.
	vbmap := [][]int{{1, 2, -1}, {1, 2, 0}, {2, 0, 1}}
	for _, a := range addrs[1:] {
		if s := pushMap(t, a, addrs, replicas, 3, vbmap); s != gm.SUCCESS {
			t.Fatalf("SET_CLUSTER_CONFIG on %s: %v", a, s)
		}
	}
	conns[1].SetVBucket(0, cache.Active)
	set(1, "after")
	waitReplicated(t, caches[1], 0, caches[2])
	early, late, after := cache.CollectionKey(nil, 0, []byte("early")), cache.CollectionKey(nil, 0, []byte("late1")),
		cache.CollectionKey(nil, 0, []byte("after"))
	if _, ok := caches[2].GetReplica(0, early); !ok {
		t.Error("the replica lost what both copies had")
	}
	if _, ok := caches[2].GetReplica(0, after); !ok {
		t.Error("the replica lacks the new active's write")
	}
	if _, ok := caches[2].GetReplica(0, late); ok {
		t.Error("the replica kept a write the new active never had")
	}
	var rollbacks uint64
	for _, s := range nodes[2].rep.Status() {
		if s.Primary == addrs[1] {
			rollbacks = s.Rollbacks
		}
	}
	if rollbacks == 0 {
		t.Errorf("node 2 streamed from node 1 without a rollback: %+v", nodes[2].rep.Status())
	}
}
