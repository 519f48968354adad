package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	refc "github.com/couchbase/gomemcached/client"
	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// vbNodes is the number of nodes of the test vbucket cluster, vbCount its
// vbuckets: the balanced map, vbucket vb active on vb%3, its replica on
// (vb+1)%3.
const (
	vbNodes = 3
	vbCount = 64
)

// startVBCluster starts vbNodes in-process gocache nodes on loopback,
// each with a cluster config naming all of them and its own index, and
// returns their addresses. The ports are taken before the nodes start, so
// that every config can name them all.
func startVBCluster(t *testing.T) []string {
	t.Helper()
	addrs, _ := startVBClusterServers(t)
	return addrs
}

// startVBClusterServers is startVBCluster, returning the servers too.
func startVBClusterServers(t *testing.T) ([]string, []*gocache.Server) {
	t.Helper()
	srvs, addrs := gocachetest.StartCluster(t, vbNodes, func(i int, addrs []string) gocache.Config {
		return gocache.Config{Cache: cache.Config{VBuckets: vbCount},
			Cluster: &gocache.ClusterConfig{Nodes: addrs, Self: i, Replicas: 1}}
	})
	return addrs, srvs
}

func newVBClient(t *testing.T, seeds []string, opts VBOptions) *VBClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := NewVBClient(ctx, seeds, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// plain dials one node with a plain Client.
func plain(t *testing.T, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// keyIn returns a key of vbucket vb.
func keyIn(t *testing.T, vb uint16, prefix string) string {
	for i := range 100000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if VBucketForKey(k, vbCount) == vb {
			return k
		}
	}
	t.Fatalf("no key for vbucket %d", vb)
	return ""
}

// Every key written through the client lands on the node the map names,
// in its vbucket: read back from each node directly with a plain Client.
func TestVBPlacement(t *testing.T) {
	addrs := startVBCluster(t)
	// A dead first seed: the next one is used.
	v := newVBClient(t, append([]string{"127.0.0.1:1"}, addrs[1:]...), VBOptions{Timeout: 2 * time.Second})
	cfg := v.Config()
	if len(cfg.VBucketMap) != vbCount || len(cfg.ServerList) != vbNodes || cfg.Rev != 1 {
		t.Fatalf("config: %d vbuckets, servers %v, rev %d", len(cfg.VBucketMap), cfg.ServerList, cfg.Rev)
	}
	for i, s := range cfg.ServerList {
		if s != addrs[i] {
			t.Fatalf("server %d is %s, want %s", i, s, addrs[i])
		}
	}
	const n = serversKeys
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("vbkey:%d", i)
		if _, err := v.Set(0, keys[i], 0, 0, []byte(keys[i])); err != nil {
			t.Fatalf("Set %s: %v", keys[i], err)
		}
	}
	direct := make([]*Client, vbNodes)
	for i, a := range addrs {
		direct[i] = plain(t, a)
	}
	perNode := make([]int, vbNodes)
	for i, k := range keys {
		vb := VBucketForKey(k, vbCount)
		owner := vb % vbNodes
		perNode[owner]++
		res, err := direct[owner].Get(vb, k)
		if err != nil || string(res.Body) != k {
			t.Fatalf("%s (vbucket %d) on node %d: %v", k, vb, owner, err)
		}
		if i%50 == 0 { // the other nodes refuse it
			other := (owner + 1) % vbNodes
			if _, err := direct[other].Get(vb, k); !errors.Is(err, gomemcached.ErrNotMyVBucket) {
				t.Fatalf("%s on node %d: %v, want NOT_MY_VBUCKET", k, other, err)
			}
		}
	}
	t.Logf("keys per node: %v", perNode)
	for i, c := range perNode {
		if c == 0 {
			t.Errorf("node %d got no key", i)
		}
	}

	// Multi-key reads, split per vbucket and node.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := v.GetMulti(ctx, append(keys, "vbkey:missing"))
	if err != nil || len(got) != n {
		t.Fatalf("GetMulti: %d of %d, %v", len(got), n, err)
	}
	for _, k := range keys {
		if string(got[k].Body) != k {
			t.Fatalf("GetMulti %s: %q", k, got[k].Body)
		}
	}
	rv := map[string]*gomemcached.MCResponse{}
	if err := v.GetBulk(7, keys[:500], rv, nil); err != nil || len(rv) != 500 {
		t.Fatalf("GetBulk: %d, %v", len(rv), err)
	}

	// The other KV calls, the vb argument ignored.
	if _, err := v.Add(999, "vb:add", 0, 0, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Append(999, "vb:add", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if res, err := v.Get(999, "vb:add"); err != nil || string(res.Body) != "ab" {
		t.Fatalf("Get after Append: %v", err)
	}
	if x, err := v.Incr(999, "vb:ctr", 5, 10, 0); err != nil || x != 10 {
		t.Fatalf("Incr: %d %v", x, err)
	}
	if x, err := v.Decr(999, "vb:ctr", 3, 0, 0); err != nil || x != 7 {
		t.Fatalf("Decr: %d %v", x, err)
	}
	if _, err := v.Del(999, "vb:add"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(999, "vb:add"); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Fatalf("Get after Del: %v", err)
	}
	res, err := v.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, VBucket: 999, Key: []byte(keys[3])})
	if err != nil || string(res.Body) != keys[3] {
		t.Fatalf("Do: %v", err)
	}
	// A replica read goes to the replica node, which holds the vbucket as
	// a replica (nothing feeds it here: a miss, not NOT_MY_VBUCKET).
	if _, err := v.GetReplica(ctx, keys[3], 1); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Fatalf("GetReplica: %v, want a miss from the replica", err)
	}
	if _, err := v.GetReplica(ctx, keys[3], 2); !errors.Is(err, ErrNoActive) {
		t.Fatalf("GetReplica 2 of 1: %v", err)
	}
	if st := v.Stats(); st.NotMyVBucket != 0 {
		t.Errorf("stats %+v: NOT_MY_VBUCKET on a static map", st)
	}
}

// moveVB makes node 2 active for vbucket vb (owned by node 0) and node 0
// dead for it, with SET_VBUCKET on each.
func moveVB(t *testing.T, addrs []string, vb uint16) {
	t.Helper()
	gocachetest.Dial(t, addrs[2]).SetVBucket(vb, cache.Active)
	gocachetest.Dial(t, addrs[0]).SetVBucket(vb, cache.Dead)
}

// A vbucket moved from node 0 to node 2: the client, not restarted, gets
// NOT_MY_VBUCKET from node 0, follows the map and retries on node 2.
func TestVBFollowNotMyVBucket(t *testing.T) {
	addrs := startVBCluster(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	const vb = 3 // [0 1]
	key := keyIn(t, vb, "move")
	if _, err := v.Set(0, key, 0, 0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	moveVB(t, addrs, vb)
	if _, err := v.Set(0, key, 0, 0, []byte("after")); err != nil {
		t.Fatalf("Set after the move: %v", err)
	}
	st := v.Stats()
	if st.NotMyVBucket != 1 {
		t.Errorf("stats %+v: want one NOT_MY_VBUCKET", st)
	}
	if addr, _ := v.Config().Server(vb, 0); addr != addrs[2] {
		t.Errorf("vbucket %d now on %s, want node 2 %s", vb, addr, addrs[2])
	}
	res, err := plain(t, addrs[2]).Get(vb, key)
	if err != nil || string(res.Body) != "after" {
		t.Fatalf("node 2's copy: %v", err)
	}
	// Another key of the moved vbucket: no NOT_MY_VBUCKET any more.
	if _, err := v.Set(0, keyIn(t, vb, "again"), 0, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := v.Stats().NotMyVBucket; got != 1 {
		t.Errorf("%d NOT_MY_VBUCKET after following", got)
	}
}

// With Push, the client takes the promoted node's pushed config and
// sends to it before any NOT_MY_VBUCKET.
func TestVBFollowPush(t *testing.T) {
	addrs := startVBCluster(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second, Push: true})
	const vb = 6 // [0 1]
	// The listeners dial in the background: wait for their HELLOs.
	for deadline := time.Now().Add(5 * time.Second); v.listening.Load() < vbNodes; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d push connections after 5s", v.listening.Load(), vbNodes)
		}
	}
	moveVB(t, addrs, vb)
	waitOwner(t, v, vb, addrs[2], "push")
	key := keyIn(t, vb, "push")
	if _, err := v.Set(0, key, 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if st := v.Stats(); st.NotMyVBucket != 0 || st.Pushes < 1 {
		t.Errorf("stats %+v: want a push taken and no NOT_MY_VBUCKET", st)
	}
	if res, err := plain(t, addrs[2]).Get(vb, key); err != nil || string(res.Body) != "v" {
		t.Fatalf("node 2's copy: %v", err)
	}
}

// waitOwner waits up to 5 s for v's config to name addr as vb's active
// node, which how (a push, a poll) brought.
func waitOwner(t *testing.T, v *VBClient, vb uint16, addr, how string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if a, _ := v.Config().Server(vb, 0); a == addr {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s followed: stats %+v", how, v.Stats())
		}
	}
}

// With PollInterval, the client follows without a NOT_MY_VBUCKET once a
// poll reached the promoted node.
func TestVBFollowPoll(t *testing.T) {
	addrs := startVBCluster(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second, PollInterval: 50 * time.Millisecond})
	const vb = 9 // [0 1]
	moveVB(t, addrs, vb)
	waitOwner(t, v, vb, addrs[2], "poll")
}

// The reference client has no vbucket routing of its own (that lives in
// go-couchbase, not gomemcached/client): given the vbucket and node our
// map names, it reads what VBClient wrote, and a wrong node answers it
// NOT_MY_VBUCKET with a config VBClient's parser takes.
func TestVBRefClient(t *testing.T) {
	addrs := startVBCluster(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	ref := make([]*refc.Client, vbNodes)
	for i, a := range addrs {
		c, err := refc.Connect("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ref[i] = c
	}
	for i := range 300 {
		k := fmt.Sprintf("ref:%d", i)
		if _, err := v.Set(0, k, 0, 0, []byte(k)); err != nil {
			t.Fatal(err)
		}
		vb := v.Config().VBucketForKey(k)
		owner := v.Config().VBucketMap[vb][0]
		res, err := ref[owner].Get(vb, k)
		if err != nil || string(res.Body) != k {
			t.Fatalf("reference Get %s on node %d: %v", k, owner, err)
		}
		if i%30 == 0 {
			_, err := ref[(owner+2)%vbNodes].Get(vb, k)
			var mr *refmc.MCResponse
			if !errors.As(err, &mr) || mr.Status != refmc.NOT_MY_VBUCKET {
				t.Fatalf("reference Get on a wrong node: %v", err)
			}
			cfg, perr := ParseClusterConfig(mr.Body, "127.0.0.1")
			if perr != nil || cfg.Rev != 1 || len(cfg.VBucketMap) != vbCount {
				t.Fatalf("NOT_MY_VBUCKET's config: %v", perr)
			}
		}
	}
}

// SetMulti stores each item on its vbucket's active node, in its vbucket
// (read back from the nodes directly); after a vbucket moves, the client
// follows the map for that vbucket's group and stores it on the new
// owner; DeleteMulti deletes them all, a missing key and a key too long
// reported in its KeyErrors.
func TestVBSetDeleteMulti(t *testing.T) {
	addrs := startVBCluster(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items := make([]Item, 2000)
	for i := range items {
		items[i] = Item{Key: fmt.Sprintf("multi-%d", i), Value: fmt.Appendf(nil, "v%d", i), Flags: uint32(i)}
	}
	if err := v.SetMulti(ctx, items); err != nil {
		t.Fatal(err)
	}
	direct := make([]*Client, len(addrs))
	for i, a := range addrs {
		direct[i] = plain(t, a)
	}
	check := func(when string) {
		t.Helper()
		for _, it := range items {
			vb := VBucketForKey(it.Key, vbCount)
			addr, _ := v.Config().Server(vb, 0)
			n := slices.Index(addrs, addr)
			res, err := direct[n].Get(vb, it.Key)
			if err != nil || string(res.Body) != string(it.Value) || len(res.Extras) < 4 || binary.BigEndian.Uint32(res.Extras) != it.Flags {
				t.Fatalf("%s: %q on node %d, vbucket %d: %v", when, it.Key, n, vb, err)
			}
		}
	}
	check("after SetMulti")

	const vb = 3 // [0 1]: moved to node 2
	moveVB(t, addrs, vb)
	for i := range items {
		items[i].Value = append(items[i].Value, '!')
	}
	if err := v.SetMulti(ctx, items); err != nil {
		t.Fatalf("SetMulti after the move: %v", err)
	}
	if st := v.Stats(); st.NotMyVBucket != 1 {
		t.Errorf("stats %+v: want one NOT_MY_VBUCKET, for the moved vbucket's group", st)
	}
	check("after the move")

	keys := make([]string, 0, len(items)+2)
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	miss, long := keyIn(t, 5, "never-set"), string(make([]byte, 300))
	err := v.DeleteMulti(ctx, append(keys, miss, long))
	var ke KeyErrors
	if !errors.As(err, &ke) || len(ke) != 2 || !errors.Is(ke[miss], gomemcached.ErrKeyNotFound) || ke[long] == nil {
		t.Fatalf("DeleteMulti: %v, want the missing and the long key", err)
	}
	got, err := v.GetMulti(ctx, keys)
	if err != nil || len(got) != 0 {
		t.Fatalf("after DeleteMulti: %d keys left, %v", len(got), err)
	}
}

// A client without pushes or polling whose node stops answering (closed,
// as a failed-over node is) asks the other nodes for their config, and
// one naming another active for the key's vbucket takes the call there.
func TestVBFollowNodeFailure(t *testing.T) {
	addrs, srvs := startVBClusterServers(t)
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	const vb = 3 // [0 1]
	key := keyIn(t, vb, "failed")
	if _, err := v.Set(0, key, 0, 0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	gocachetest.Dial(t, addrs[2]).SetVBucket(vb, cache.Active) // node 2's map: rev 2, vbucket 3 on node 2
	srvs[0].Close()
	if _, err := v.Set(0, key, 0, 0, []byte("after")); err != nil {
		t.Fatalf("Set with node 0 gone: %v", err)
	}
	if addr, _ := v.Config().Server(vb, 0); addr != addrs[2] {
		t.Errorf("vbucket %d now on %s, want node 2 %s", vb, addr, addrs[2])
	}
	if res, err := plain(t, addrs[2]).Get(vb, key); err != nil || string(res.Body) != "after" {
		t.Fatalf("node 2's copy: %v", err)
	}
	// A key of a vbucket no other node claims fails, once.
	other := keyIn(t, 0, "stranded") // [0 1]: node 0's, not moved
	if _, err := v.Set(0, other, 0, 0, []byte("x")); err == nil {
		t.Fatal("Set to a vbucket whose only active is gone succeeded")
	}
}
