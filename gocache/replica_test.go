package gocache_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// The replicator's tests, end to end, are in gocache/replication.

// GET_REPLICA reads replica vbuckets only; writes to a replica are
// refused until it is made active.
func TestReplicaGetAndWrites(t *testing.T) {
	srv, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 16}})
	c := srv.Cache(gocache.DefaultBucket)
	r := gocachetest.Dial(t, addr)
	r.SetVBucket(3, cache.Replica)
	key := cache.CollectionKey(nil, 0, []byte("k"))
	if err := c.ReplicaSnapshot(3, 0, 2, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(3, key, []byte("v"), 2, cache.Meta{CAS: 0x1234, Rev: 1, Flags: 7}); err != nil {
		t.Fatal(err)
	}
	if res := r.Do(gocachetest.SetRequest(0, "k", "active", 0)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := r.Do(gm.MCRequest{Opcode: gm.DEL_VBUCKET, VBucket: 5}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	for _, tc := range []struct {
		name   string
		vb     uint16
		key    string
		status gm.Status
	}{
		{"replica", 3, "k", gm.SUCCESS},
		{"replica, no such key", 3, "nope", gm.KEY_ENOENT},
		{"active", 0, "k", gm.NOT_MY_VBUCKET},
		{"missing", 5, "k", gm.NOT_MY_VBUCKET},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.Do(gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: tc.vb, Key: []byte(tc.key)})
			if res.Status != tc.status {
				t.Fatalf("status %v, want %v", res.Status, tc.status)
			}
			if tc.status != gm.SUCCESS {
				return
			}
			if string(res.Body) != "v" || res.Cas != 0x1234 || len(res.Extras) != 4 || binary.BigEndian.Uint32(res.Extras) != 7 || len(res.Key) != 0 {
				t.Fatalf("GET_REPLICA: %+v", res)
			}
		})
	}
	// The client's Get reads replicas once asked to.
	cl, err := mc.Dial(context.Background(), "tcp", addr, mc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.SetReplica(true)
	if res, err := cl.Get(3, "k"); err != nil || string(res.Body) != "v" || res.Cas != 0x1234 {
		t.Fatalf("client Get from the replica: %v, %v", res, err)
	}
	if _, err := cl.Get(0, "k"); !errors.Is(err, gm.ErrNotMyVBucket) {
		t.Fatalf("client Get from an active vbucket as a replica: %v", err)
	}
	cl.SetReplica(false)
	// Writes and plain reads of the replica are refused.
	ex := make([]byte, 8)
	for _, req := range []gm.MCRequest{
		gocachetest.SetRequest(3, "k", "w", 0),
		{Opcode: gm.ADD, VBucket: 3, Key: []byte("new"), Body: []byte("w"), Extras: ex},
		{Opcode: gm.DELETE, VBucket: 3, Key: []byte("k")},
		{Opcode: gm.INCREMENT, VBucket: 3, Key: []byte("n"), Extras: make([]byte, 20)},
		{Opcode: gm.TOUCH, VBucket: 3, Key: []byte("k"), Extras: make([]byte, 4)},
		{Opcode: gm.GET, VBucket: 3, Key: []byte("k")},
	} {
		if res := r.Do(req); res.Status != gm.NOT_MY_VBUCKET {
			t.Errorf("%v on a replica: %v, want NOT_MY_VBUCKET", req.Opcode, res.Status)
		}
	}
	// Made active, it takes writes, starting a new history at its high
	// seqno, and GET_REPLICA no longer reads it.
	r.SetVBucket(3, cache.Active)
	if res := r.Do(gocachetest.SetRequest(3, "k", "w", 0)); res.Status != gm.SUCCESS {
		t.Fatalf("SET after promotion: %v", res.Status)
	}
	if res := r.Do(gm.MCRequest{Opcode: gm.GET, VBucket: 3, Key: []byte("k")}); res.Status != gm.SUCCESS || string(res.Body) != "w" {
		t.Fatalf("GET after promotion: %v %q", res.Status, res.Body)
	}
	if res := r.Do(gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: 3, Key: []byte("k")}); res.Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("GET_REPLICA after promotion: %v", res.Status)
	}
	if log := c.FailoverLog(3); len(log) < 2 || log[0].Seqno != 2 {
		t.Fatalf("failover log after promotion: %v", log)
	}
}

// With Config.ReplicaReads the plain GETs read replica vbuckets too.
func TestReplicaPlainReads(t *testing.T) {
	srv, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 4}, ReplicaReads: true})
	c := srv.Cache(gocache.DefaultBucket)
	r := gocachetest.Dial(t, addr)
	r.SetVBucket(1, cache.Replica)
	if err := c.ReplicaSnapshot(1, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(1, cache.CollectionKey(nil, 0, []byte("k")), []byte("v"), 1, cache.Meta{CAS: 99, Rev: 1, Flags: 3}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op     gm.CommandCode
		key    string
		status gm.Status
		value  string
	}{
		{gm.GET, "k", gm.SUCCESS, "v"},
		{gm.GETK, "k", gm.SUCCESS, "v"},
		{gm.GET, "nope", gm.KEY_ENOENT, "Not found"},
		{gm.GETK, "nope", gm.KEY_ENOENT, ""},
	} {
		res := r.Do(gm.MCRequest{Opcode: tc.op, VBucket: 1, Key: []byte(tc.key)})
		if res.Status != tc.status || string(res.Body) != tc.value || tc.status == gm.SUCCESS && res.Cas != 99 ||
			(tc.op == gm.GETK) != (len(res.Key) > 0) {
			t.Errorf("%v %q: %v %q cas %d key %q", tc.op, tc.key, res.Status, res.Body, res.Cas, res.Key)
		}
	}
	// Writes stay refused.
	if res := r.Do(gocachetest.SetRequest(1, "k", "w", 0)); res.Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("SET on a replica: %v", res.Status)
	}
}

// seamReplicator records what a Server gives its Replicator.
type seamReplicator struct {
	mu      sync.Mutex
	buckets map[string]*gocache.ReplicaBucket
	changed chan string // a bucket's StateChanged fired
	running sync.WaitGroup
	stopped atomic.Int32
}

func (r *seamReplicator) Replicate(ctx context.Context, b *gocache.ReplicaBucket) {
	r.mu.Lock()
	r.buckets[b.Name()] = b
	r.mu.Unlock()
	r.running.Done()
	for {
		select {
		case <-ctx.Done():
			time.Sleep(10 * time.Millisecond) // Close waits for this
			r.stopped.Add(1)
			return
		case <-b.StateChanged():
			r.changed <- b.Name()
		}
	}
}

// The Replicator seam: Replicate runs per bucket of empty replicas from
// New, is told of SET_VBUCKET, and is stopped and waited for by Close.
func TestReplicatorSeam(t *testing.T) {
	rep := &seamReplicator{buckets: map[string]*gocache.ReplicaBucket{}, changed: make(chan string, 4)}
	rep.running.Add(2)
	srv, err := gocache.New(gocache.Config{Cache: cache.Config{VBuckets: 4}, Buckets: []string{gocache.DefaultBucket, "b2"}, Replicator: rep})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	rep.running.Wait()
	for name, b := range rep.buckets {
		if b.Cache() != srv.Cache(name) || b.Logger() == nil {
			t.Errorf("bucket %q: another cache or no logger", name)
		}
		for vb := range uint16(4) {
			if st := b.Cache().State(vb); st != cache.Replica {
				t.Errorf("bucket %q vb %d: %v", name, vb, st)
			}
		}
	}
	r := gocachetest.Dial(t, l.Addr().String())
	r.SetVBucket(2, cache.Active)
	select {
	case name := <-rep.changed:
		if name != gocache.DefaultBucket {
			t.Errorf("SET_VBUCKET on the default bucket told %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SET_VBUCKET not told")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rep.stopped.Load(); n != 2 {
		t.Fatalf("Close returned with %d of 2 Replicate calls returned", n)
	}
}
