package replication_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/gocache/replication"
)

// testManifest has a scope "app" (0x8) with collections "users" (0x8)
// and "orders" (0x9, max TTL 60), beside the default collection.
const testManifest = `{"uid":"2","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"users","uid":"8"},{"name":"orders","uid":"9","maxTTL":60}]}]}`

// ckey is key in collection cid, as a collections connection sends it.
func ckey(cid uint32, key string) []byte { return append(gm.AppendCollectionID(nil, cid), key...) }

// startReplica starts a gocache configured by cfg as a replica of the
// gocache at primary, and returns it with its address and its
// Replicator.
func startReplica(t *testing.T, cfg gocache.Config, primary string) (*gocache.Server, string, *replication.Replicator) {
	t.Helper()
	rep := &replication.Replicator{Primary: primary}
	cfg.Replicator = rep
	srv, addr := gocachetest.Start(t, cfg)
	return srv, addr, rep
}

// status returns the replication status of rep's one bucket, waiting for
// Replicate to have started.
func status(t *testing.T, rep *replication.Replicator) replication.Status {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		st := rep.Status()
		if len(st) == 1 {
			return st[0]
		}
		if len(st) > 1 || time.Now().After(deadline) {
			t.Fatalf("replication status %+v", st)
		}
	}
}

// openDCP opens a DCP producer connection named name on addr.
func openDCP(t *testing.T, addr, name string) {
	t.Helper()
	r := gocachetest.Dial(t, addr)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER)
	if res := r.Do(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte(name), Extras: ex}); res.Status != gm.SUCCESS {
		t.Fatalf("DCP_OPEN: %v", res.Status)
	}
}

// proxy forwards loopback connections to a target it can change, and
// cuts them all at once.
type proxy struct {
	l      net.Listener
	mu     sync.Mutex
	target string
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// cut closes every connection, both ways, and returns how many pairs it
// cut.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

func (p *proxy) retarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// ack is an acknowledged write: its key, vbucket, CAS and seqno.
type ack struct {
	vb         uint16
	cas, seqno uint64
	deleted    bool
}

// waitSynced waits until every vbucket of replica has its primary's high
// seqno, failing after limit.
func waitSynced(t *testing.T, primary, replica *cache.Cache, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		behind := -1
		for vb := range primary.VBuckets() {
			p, _ := primary.HighSeqno(uint16(vb))
			r, _ := replica.HighSeqno(uint16(vb))
			if r != p {
				behind = vb
				break
			}
		}
		if behind < 0 {
			return
		}
		if time.Now().After(deadline) {
			p, _ := primary.HighSeqno(uint16(behind))
			r, _ := replica.HighSeqno(uint16(behind))
			t.Fatalf("vbucket %d: replica at seqno %d, primary at %d after %v", behind, r, p, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// End to end: writers on a primary, a replica whose connection is cut
// twice mid-stream (once by the network, once by the primary, which a
// connection taking the feed's name makes close it), and a check that
// every acknowledged write reached the replica with its seqno and CAS,
// nothing lost or applied twice; then promotion.
func TestReplicaEndToEnd(t *testing.T) {
	const vbuckets = 64
	const writers, perWriter = 4, 600
	cfg := gocache.Config{Cache: cache.Config{VBuckets: vbuckets}}
	psrv, paddr := gocachetest.Start(t, cfg)
	px := startProxy(t, paddr)
	rsrv, raddr, rep := startReplica(t, cfg, px.addr())
	pc, rc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket)
	for vb := range vbuckets {
		if st := rc.State(uint16(vb)); st != cache.Replica {
			t.Fatalf("vbucket %d of the replica is %v", vb, st)
		}
	}
	// Some data before the replica's first stream reaches it is
	// backfilled; the rest streams live.
	var acked sync.Map // key -> ack
	var total atomic.Int64
	write := func(cl *mc.Client, w, i int) {
		key := fmt.Sprintf("w%d-%d", w, i%(perWriter/2)) // each key written twice
		vb := uint16((w*perWriter + i) % vbuckets)
		if i >= perWriter/2 {
			vb = uint16((w*perWriter + i - perWriter/2) % vbuckets)
		}
		var res *gm.MCResponse
		var err error
		deleted := i%7 == 6 && i >= perWriter/2
		if deleted {
			res, err = cl.Del(vb, key)
		} else {
			res, err = cl.Set(vb, key, i, 0, []byte(fmt.Sprintf("value %d of %s", i, key)))
		}
		if err != nil {
			t.Errorf("write %s: %v", key, err)
			return
		}
		if len(res.Extras) != 16 {
			t.Errorf("write %s: no mutation token", key)
			return
		}
		acked.Store(key, ack{vb: vb, cas: res.Cas, seqno: binary.BigEndian.Uint64(res.Extras[8:]), deleted: deleted})
		total.Add(1)
	}
	var wg sync.WaitGroup
	for w := range writers {
		cl, err := mc.Dial(context.Background(), "tcp", paddr, mc.ClientOptions{Features: mc.Features{mc.FeatureMutationToken}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		wg.Go(func() {
			for i := range perWriter {
				write(cl, w, i)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let the feed interleave
				}
			}
		})
	}
	status := func() replication.Status { return status(t, rep) }
	waitFor := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s (%+v)", what, status())
			}
		}
	}
	// Cut from the network once a third is written and the replica has
	// applied some; from the primary at two thirds.
	waitFor("a third written", func() bool { return total.Load() >= writers*perWriter/3 && status().Events > 0 })
	atCut := status().Events
	t.Logf("network cut at %d writes, %d applied", total.Load(), atCut)
	if px.cut() == 0 {
		t.Fatal("the proxy had no connection to cut")
	}
	waitFor("reconnected", func() bool { return status().Connects >= 2 && status().Connected })
	waitFor("two thirds written, applying again", func() bool {
		return total.Load() >= 2*writers*perWriter/3 && status().Events > atCut
	})
	t.Logf("primary's cut at %d writes, %d applied", total.Load(), status().Events)
	openDCP(t, paddr, status().Name) // the primary closes the replica's connection
	wg.Wait()
	waitFor("reconnected again", func() bool { return status().Connects >= 3 && status().Connected })
	waitSynced(t, pc, rc, 20*time.Second)

	// Every acknowledged write is there, with its seqno and CAS.
	n := 0
	r := gocachetest.Dial(t, raddr)
	acked.Range(func(k, v any) bool {
		a, key := v.(ack), k.(string)
		n++
		it, ok := rc.GetReplica(a.vb, cache.CollectionKey(nil, 0, []byte(key)))
		switch {
		case a.deleted && ok:
			t.Errorf("%s: deleted on the primary, %+v on the replica", key, it)
		case a.deleted:
		case !ok:
			t.Errorf("%s: lost (vb %d seqno %d)", key, a.vb, a.seqno)
		case it.CAS != a.cas || it.Seqno != a.seqno:
			t.Errorf("%s: replica has CAS %x seqno %d, the primary acknowledged %x %d", key, it.CAS, it.Seqno, a.cas, a.seqno)
		}
		if n%25 == 0 && !a.deleted { // and over the wire
			res := r.Do(gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: a.vb, Key: []byte(key)})
			if res.Status != gm.SUCCESS || res.Cas != a.cas {
				t.Errorf("GET_REPLICA %s: %v cas %x, want %x", key, res.Status, res.Cas, a.cas)
			}
		}
		return true
	})
	if n != writers*perWriter/2 {
		t.Fatalf("%d keys acknowledged, want %d", n, writers*perWriter/2)
	}
	if pn, rn := pc.Len(), rc.Len(); pn != rn {
		t.Errorf("primary holds %d items, replica %d", pn, rn)
	}
	st := status()
	if st.OutOfOrder != 0 {
		t.Errorf("%d changes came out of order or twice: %+v", st.OutOfOrder, st)
	}
	if st.Events > uint64(writers*perWriter) {
		t.Errorf("replica applied %d changes of %d written: some twice", st.Events, writers*perWriter)
	}
	// OBSERVE_SEQNO on the replica: the primary's history and seqno.
	for vb := uint16(0); vb < vbuckets; vb += 9 {
		high, uuid := pc.HighSeqno(vb)
		body := binary.BigEndian.AppendUint64(nil, uuid)
		res := r.Do(gm.MCRequest{Opcode: gm.OBSERVE_SEQNO, VBucket: vb, Body: body})
		if res.Status != gm.SUCCESS || len(res.Body) != 27 || res.Body[0] != 0 || binary.BigEndian.Uint64(res.Body[19:]) != high {
			t.Errorf("OBSERVE_SEQNO vb %d on the replica: %v %x, want current seqno %d", vb, res.Status, res.Body, high)
		}
	}
	t.Logf("replication: %+v", st)

	// Promotion: each vbucket made active stops streaming, starts a new
	// history on top of the primary's and takes writes.
	for vb := range vbuckets {
		r.SetVBucket(uint16(vb), cache.Active)
	}
	waitFor("streams closed", func() bool { return status().Streams == 0 })
	for vb := range uint16(vbuckets) {
		plog, rlog := pc.FailoverLog(vb), rc.FailoverLog(vb)
		high, _ := rc.HighSeqno(vb)
		if len(rlog) != len(plog)+1 || rlog[0].Seqno != high || rlog[0].UUID == plog[0].UUID || rlog[1] != plog[0] {
			t.Fatalf("vb %d: failover log after promotion %v, primary's %v", vb, rlog, plog)
		}
	}
	// Now active, both hold the same documents, tombstones included.
	acked.Range(func(k, v any) bool {
		a, key := v.(ack), cache.CollectionKey(nil, 0, []byte(k.(string)))
		pi, pok := pc.Lookup(a.vb, key, true)
		ri, rok := rc.Lookup(a.vb, key, true)
		// (A deletion does not carry flags: a tombstone's are not compared.)
		if pok != rok || pi.CAS != ri.CAS || pi.Seqno != ri.Seqno || pi.Rev != ri.Rev || pi.Deleted != ri.Deleted ||
			!pi.Deleted && pi.Flags != ri.Flags || string(pi.Value) != string(ri.Value) {
			t.Errorf("%s: primary %+v, promoted replica %+v", key, pi, ri)
		}
		return true
	})
	for vb := range uint16(vbuckets) {
		before, _ := rc.HighSeqno(vb)
		res := r.Do(gocachetest.SetRequest(vb, "after", "promotion", 0))
		if res.Status != gm.SUCCESS {
			t.Fatalf("SET on promoted vb %d: %v", vb, res.Status)
		}
		if high, _ := rc.HighSeqno(vb); high != before+1 {
			t.Fatalf("vb %d: high seqno %d after a write, was %d", vb, high, before)
		}
	}
}

// A replica whose primary is replaced by another with a different
// history rolls back, to 0, and takes the new primary's documents.
func TestReplicaRollbackToNewPrimary(t *testing.T) {
	const vbuckets = 16
	cfg := gocache.Config{Cache: cache.Config{VBuckets: vbuckets}}
	p1, addr1 := gocachetest.Start(t, cfg)
	p2, addr2 := gocachetest.Start(t, cfg)
	px := startProxy(t, addr1)
	rsrv, _, rep := startReplica(t, cfg, px.addr())
	rc := rsrv.Cache(gocache.DefaultBucket)
	// Three changes per vbucket on the first, five on the second.
	w1, w2 := gocachetest.Dial(t, addr1), gocachetest.Dial(t, addr2)
	for i := range 5 * vbuckets {
		vb := uint16(i % vbuckets)
		if i < 3*vbuckets {
			if res := w1.Do(gocachetest.SetRequest(vb, fmt.Sprintf("old%d", i), "1", 0)); res.Status != gm.SUCCESS {
				t.Fatal(res.Status)
			}
		}
		if res := w2.Do(gocachetest.SetRequest(vb, fmt.Sprintf("new%d", i), "2", 0)); res.Status != gm.SUCCESS {
			t.Fatal(res.Status)
		}
	}
	pc1, pc2 := p1.Cache(gocache.DefaultBucket), p2.Cache(gocache.DefaultBucket)
	waitSynced(t, pc1, rc, 20*time.Second)
	px.retarget(addr2)
	px.cut()
	waitSynced(t, pc2, rc, 20*time.Second)
	for i := range 5 * vbuckets {
		vb := uint16(i % vbuckets)
		if _, ok := rc.GetReplica(vb, cache.CollectionKey(nil, 0, []byte(fmt.Sprintf("old%d", i)))); ok {
			t.Errorf("old%d survived the rollback", i)
		}
		if _, ok := rc.GetReplica(vb, cache.CollectionKey(nil, 0, []byte(fmt.Sprintf("new%d", i)))); !ok {
			t.Errorf("new%d missing", i)
		}
	}
	st := status(t, rep)
	if st.Rollbacks < vbuckets {
		t.Errorf("%d rollbacks, want one per vbucket at least (%+v)", st.Rollbacks, st)
	}
	for vb := range uint16(vbuckets) {
		if p, r := pc2.FailoverLog(vb), rc.FailoverLog(vb); len(p) != len(r) || p[0] != r[0] {
			t.Errorf("vb %d: replica's failover log %v, new primary's %v", vb, r, p)
		}
	}
}

// waitManifest waits until the manifest r's server answers holds want.
func waitManifest(t *testing.T, r *gocachetest.Conn, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res := r.Do(gm.MCRequest{Opcode: gm.GET_COLLECTIONS_MANIFEST})
		if res.Status == gm.SUCCESS && strings.Contains(string(res.Body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica's manifest never held %s: %s", want, res.Body)
		}
	}
}

// helloCollections negotiates collections on r.
func helloCollections(t *testing.T, r *gocachetest.Conn) {
	t.Helper()
	body := binary.BigEndian.AppendUint16(nil, uint16(gm.FeatureCollections))
	if res := r.Do(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("replica-test"), Body: body}); res.Status != gm.SUCCESS || len(res.Body) != 2 {
		t.Fatalf("HELLO: %v %x", res.Status, res.Body)
	}
}

// A replica streams collections-aware: documents of every collection and
// the system events keep its seqnos its primary's, and it takes the
// primary's manifest when a system event says it changed.
func TestReplicaCollections(t *testing.T) {
	const vbuckets = 8
	psrv, paddr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: vbuckets}, Manifest: []byte(testManifest)})
	rsrv, raddr, rep := startReplica(t, gocache.Config{Cache: cache.Config{VBuckets: vbuckets}}, paddr)
	pc, rc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket)
	w, r := gocachetest.Dial(t, paddr), gocachetest.Dial(t, raddr)
	helloCollections(t, w)
	helloCollections(t, r)
	write := func(cid uint32, n int) map[string]uint64 {
		cas := map[string]uint64{}
		for i := range n {
			key := string(ckey(cid, fmt.Sprintf("c%x-%d", cid, i)))
			req := gocachetest.SetRequest(uint16(i%vbuckets), key, "v", 0)
			res := w.Do(req)
			if res.Status != gm.SUCCESS {
				t.Fatalf("SET in collection %x: %v", cid, res.Status)
			}
			cas[key] = res.Cas
		}
		return cas
	}
	cas := map[string]uint64{}
	for cid, n := range map[uint32]int{0: 20, 8: 20, 9: 10} {
		for k, v := range write(cid, n) {
			cas[k] = v
		}
	}
	waitSynced(t, pc, rc, 20*time.Second)
	// The replica fetches the manifest its system events announce: until
	// it has, its collections are unknown to GET_REPLICA.
	waitManifest(t, r, `"orders"`)
	getAll := func(cas map[string]uint64) {
		t.Helper()
		for key, want := range cas {
			var i int
			var cid uint32
			if _, err := fmt.Sscanf(key[strings.IndexByte(key, 'c'):], "c%x-%d", &cid, &i); err != nil {
				t.Fatal(err)
			}
			res := r.Do(gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: uint16(i % vbuckets), Key: []byte(key)})
			if res.Status != gm.SUCCESS || res.Cas != want {
				t.Errorf("GET_REPLICA %q: %v cas %x, want %x", key, res.Status, res.Cas, want)
			}
		}
	}
	getAll(cas)
	// A new collection on the primary: its system events reach the
	// replica, which takes the new manifest.
	m := `{"uid":"3","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"users","uid":"8"},{"name":"orders","uid":"9","maxTTL":60},{"name":"extra","uid":"a"}]}]}`
	if res := w.Do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(m)}); res.Status != gm.SUCCESS {
		t.Fatalf("COLLECTIONS_SET_MANIFEST: %v %s", res.Status, res.Body)
	}
	extra := write(0xa, 16)
	waitSynced(t, pc, rc, 20*time.Second)
	waitManifest(t, r, `"extra"`)
	getAll(extra)
	// Every seqno is a distinct key's or a system event's, and each was
	// applied once.
	var sum uint64
	for vb := range uint16(vbuckets) {
		high, _ := pc.HighSeqno(vb)
		sum += high
	}
	st := status(t, rep)
	if docs := uint64(len(cas) + len(extra)); st.Events != sum || sum <= docs {
		t.Fatalf("replica applied %d changes; the primary made %d, %d of them documents", st.Events, sum, docs)
	}
	if st.Rollbacks != 0 {
		t.Fatalf("%d rollbacks", st.Rollbacks)
	}
}

// A replica that went further on its primary's history than a promoted
// replica did is rolled back when it follows the promoted one: it asks
// from a seqno past the new history's branch, the new primary answers a
// rollback to the branch, and the replica, which keeps nothing to roll
// back to, empties the vbucket and streams it again from 0.
func TestReplicaRollbackAfterFailover(t *testing.T) {
	const vbuckets = 8
	cfg := gocache.Config{Cache: cache.Config{VBuckets: vbuckets}}
	psrv, paddr := gocachetest.Start(t, cfg)
	px := startProxy(t, paddr)
	rsrv, _, rep := startReplica(t, cfg, px.addr())
	nsrv, naddr, _ := startReplica(t, cfg, paddr) // the one to be promoted
	pc, rc, nc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket), nsrv.Cache(gocache.DefaultBucket)
	w, n := gocachetest.Dial(t, paddr), gocachetest.Dial(t, naddr)
	writeAll := func(on *gocachetest.Conn, prefix string, per int) {
		t.Helper()
		for i := range per * vbuckets {
			if res := on.Do(gocachetest.SetRequest(uint16(i%vbuckets), fmt.Sprintf("%s%d", prefix, i), "v", 0)); res.Status != gm.SUCCESS {
				t.Fatalf("SET %s%d: %v", prefix, i, res.Status)
			}
		}
	}
	writeAll(w, "before", 3)
	waitSynced(t, pc, rc, 20*time.Second)
	waitSynced(t, pc, nc, 20*time.Second)
	for vb := range uint16(vbuckets) {
		n.SetVBucket(vb, cache.Active)
	}
	writeAll(w, "lost", 2) // reaches the replica, not the promoted one
	waitSynced(t, pc, rc, 20*time.Second)
	writeAll(n, "after", 1)
	px.retarget(naddr)
	px.cut()
	waitSynced(t, nc, rc, 20*time.Second)
	for i := range 3 * vbuckets {
		vb := uint16(i % vbuckets)
		for prefix, want := range map[string]bool{"before": true, "lost": false, "after": true} {
			if i >= 2*vbuckets && prefix == "lost" || i >= vbuckets && prefix == "after" {
				continue
			}
			key := cache.CollectionKey(nil, 0, []byte(fmt.Sprintf("%s%d", prefix, i)))
			if _, ok := rc.GetReplica(vb, key); ok != want {
				t.Errorf("%s%d: present %v, want %v", prefix, i, ok, want)
			}
		}
	}
	st := status(t, rep)
	if st.Rollbacks < vbuckets {
		t.Errorf("%d rollbacks, want one per vbucket (%+v)", st.Rollbacks, st)
	}
	for vb := range uint16(vbuckets) {
		if p, r := nc.FailoverLog(vb), rc.FailoverLog(vb); len(p) != 2 || len(r) != 2 || p[0] != r[0] || p[1] != r[1] {
			t.Errorf("vb %d: replica's failover log %v, the promoted one's %v", vb, r, p)
		}
	}
}

// stalledPrimary accepts connections, answers every request of a feed's
// handshake with SUCCESS (HELLO with the features asked for), and stops
// reading at the first stream request, so that the replica's writes
// block once the socket buffers fill. It returns its address and a
// channel closed at the first stream request.
func stalledPrimary(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stalled := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			wg.Go(func() {
				defer c.Close()
				r := gm.NewReader(c)
				for {
					var req gm.MCRequest
					if err := r.ReadRequest(&req); err != nil {
						return
					}
					if req.Opcode == gm.UPR_STREAMREQ {
						once.Do(func() { close(stalled) })
						<-done
						return
					}
					res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
					if req.Opcode == gm.HELLO {
						res.Body = bytes.Clone(req.Body)
					}
					if _, err := res.Transmit(c); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		close(done)
		l.Close()
		wg.Wait()
	})
	return l.Addr().String(), stalled
}

// A primary that stops reading holds up neither Close nor the feed's
// mutex: cancelling the replication closes the feed, ending a blocked
// write.
func TestReplicaCloseWithStalledPrimary(t *testing.T) {
	addr, stalled := stalledPrimary(t)
	rep := &replication.Replicator{Primary: addr}
	// 65536 stream requests: more than the socket buffers hold.
	srv, err := gocache.New(gocache.Config{Cache: cache.Config{VBuckets: cache.MaxVBuckets, SweepInterval: -1}, Replicator: rep})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		srv.Close()
		t.Fatal("no stream request reached the primary")
	}
	time.Sleep(200 * time.Millisecond) // the writes fill the buffers
	st := status(t, rep)               // Status takes the feed's mutex
	t.Logf("status with the primary stalled: %+v", st)
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while the primary does not read")
	}
}

// streamRequest opens a DCP producer connection on addr and answers a
// stream request of vbucket vb from seqno start (a complete snapshot
// there) on history uuid.
func streamRequest(t *testing.T, addr string, vb uint16, start, uuid uint64) gm.MCResponse {
	t.Helper()
	r := gocachetest.Dial(t, addr)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER)
	if res := r.Do(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte("consumer"), Extras: ex}); res.Status != gm.SUCCESS {
		t.Fatalf("DCP_OPEN: %v", res.Status)
	}
	e := make([]byte, 48)
	binary.BigEndian.PutUint64(e[8:], start)
	binary.BigEndian.PutUint64(e[16:], ^uint64(0))
	binary.BigEndian.PutUint64(e[24:], uuid)
	binary.BigEndian.PutUint64(e[32:], start)
	binary.BigEndian.PutUint64(e[40:], start)
	return r.Do(gm.MCRequest{Opcode: gm.UPR_STREAMREQ, VBucket: vb, Extras: e})
}

// The replica takes its primary's purge seqno from the disk snapshot's
// marker: once promoted, it rolls back a consumer that may have missed a
// deletion, as the primary does.
func TestReplicaPurgeSeqno(t *testing.T) {
	cfg := gocache.Config{Cache: cache.Config{VBuckets: 1, TombstoneTTL: -1}} // no tombstones: a deletion is purged at once
	psrv, paddr := gocachetest.Start(t, cfg)
	pc := psrv.Cache(gocache.DefaultBucket)
	w := gocachetest.Dial(t, paddr)
	w.Do(gocachetest.SetRequest(0, "k1", "v", 0))
	w.Do(gocachetest.SetRequest(0, "k2", "v", 0))
	high, uuid := pc.HighSeqno(0) // a consumer caught up here
	if res := w.Do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte("k1")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if p := pc.PurgeSeqno(0); p != 3 {
		t.Fatalf("primary's purge seqno %d, want 3", p)
	}
	if res := streamRequest(t, paddr, 0, high, uuid); res.Status != gm.ROLLBACK {
		t.Fatalf("primary answers a consumer behind its purge seqno %v, want ROLLBACK", res.Status)
	}
	rsrv, raddr, _ := startReplica(t, cfg, paddr)
	rc := rsrv.Cache(gocache.DefaultBucket)
	waitSynced(t, pc, rc, 10*time.Second)
	for deadline := time.Now().Add(5 * time.Second); rc.PurgeSeqno(0) != 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replica's purge seqno %d, want its primary's 3", rc.PurgeSeqno(0))
		}
	}
	gocachetest.Dial(t, raddr).SetVBucket(0, cache.Active)
	if res := streamRequest(t, raddr, 0, high, uuid); res.Status != gm.ROLLBACK {
		t.Errorf("promoted replica answers the consumer %v, want ROLLBACK: it would never learn k1 was deleted", res.Status)
	}
}

// A FLUSH sent to a replica leaves its replica vbuckets alone: only their
// primary changes them.
func TestReplicaFlushOnReplica(t *testing.T) {
	const vbuckets = 2
	cfg := gocache.Config{Cache: cache.Config{VBuckets: vbuckets}}
	psrv, paddr := gocachetest.Start(t, cfg)
	rsrv, raddr, _ := startReplica(t, cfg, paddr)
	pc, rc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket)
	w, r := gocachetest.Dial(t, paddr), gocachetest.Dial(t, raddr)
	for i := range 10 {
		if res := w.Do(gocachetest.SetRequest(uint16(i%vbuckets), fmt.Sprint("k", i), "v", 0)); res.Status != gm.SUCCESS {
			t.Fatal(res.Status)
		}
	}
	waitSynced(t, pc, rc, 10*time.Second)
	if res := r.Do(gm.MCRequest{Opcode: gm.FLUSH}); res.Status != gm.SUCCESS {
		t.Fatalf("FLUSH on the replica: %v", res.Status)
	}
	w.Do(gocachetest.SetRequest(0, "after", "v", 0))
	waitSynced(t, pc, rc, 10*time.Second)
	for i := range 10 {
		res := r.Do(gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: uint16(i % vbuckets), Key: []byte(fmt.Sprint("k", i))})
		if res.Status != gm.SUCCESS {
			t.Errorf("k%d, which the primary has, is missing on the synced replica: %v", i, res.Status)
		}
	}
}

// captureReplicator hands the ReplicaBucket it is given to the test, and
// feeds nothing itself.
type captureReplicator struct{ ch chan *gocache.ReplicaBucket }

func (r *captureReplicator) Replicate(ctx context.Context, b *gocache.ReplicaBucket) {
	r.ch <- b
	<-ctx.Done()
}

// A replicated collection drop removes the vbucket's documents of the
// collection, also those that came after the manifest that dropped it was
// taken, while the vbucket's drop was still to come.
func TestReplicaDropRemovesDocuments(t *testing.T) {
	rep := &captureReplicator{ch: make(chan *gocache.ReplicaBucket, 1)}
	gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 2}, Replicator: rep})
	var b *gocache.ReplicaBucket
	select {
	case b = <-rep.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Replicate not called")
	}
	c := b.Cache()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.SetManifest([]byte(testManifest)))
	must(c.ReplicaSnapshot(0, 1, 3, 0))
	must(c.Replicate(0, ckey(9, "a"), []byte("v"), 1, cache.Meta{CAS: 10, Rev: 1}))
	// Vbucket 1's stream had the drop first: the replicator took manifest 4.
	must(b.SetManifest([]byte(`{"uid":"4","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},{"name":"app","uid":"8","collections":[{"name":"users","uid":"8"}]}]}`)))
	// Vbucket 0's still has a write to orders, then its drop.
	must(c.Replicate(0, ckey(9, "b"), []byte("v"), 2, cache.Meta{CAS: 11, Rev: 1}))
	must(b.ReplicateSystemEvent(0, &gocache.SystemEvent{Seqno: 3, Type: 1, ManifestUID: 4, ScopeID: 8, CollectionID: 9}))
	must(c.SetState(0, cache.Active))
	for _, key := range []string{"a", "b"} {
		if _, ok := c.Get(0, ckey(9, key)); ok {
			t.Errorf("document %q of the dropped collection survives its drop on the replica", key)
		}
	}
}

// liveEvents returns the system events of vbucket vb as a backfill shows
// them: each event's kind (see sysKey in dcp_events.go) and whether it
// is deleted, leaving out a modification's deletion, which a drop makes
// on the primary and which is never streamed.
func liveEvents(t *testing.T, c *cache.Cache, vb uint16) []string {
	t.Helper()
	high, _ := c.HighSeqno(vb)
	vs, err := c.Backfill(vb, 1, high, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		if id, ok := cache.IsSystemKey(v.Key); ok && !(id[0] == 2 && v.Deleted) {
			out = append(out, fmt.Sprintf("%d:%x:%v", v.Seqno, id, v.Deleted))
		}
	}
	return out
}

// A replicated drop retires the collection's modification, as the
// primary's does, and the replica counts system events in their
// collections' high seqnos as the primary does.
func TestReplicaDropRetiresModification(t *testing.T) {
	const vbuckets = 2
	cfg := gocache.Config{Cache: cache.Config{VBuckets: vbuckets, TombstoneTTL: time.Hour}}
	pcfg := cfg
	pcfg.Manifest = []byte(testManifest)
	psrv, paddr := gocachetest.Start(t, pcfg)
	rsrv, _, _ := startReplica(t, cfg, paddr)
	pc, rc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket)
	w := gocachetest.Dial(t, paddr)
	helloCollections(t, w)
	set := func(m string) {
		t.Helper()
		if res := w.Do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(m)}); res.Status != gm.SUCCESS {
			t.Fatalf("COLLECTIONS_SET_MANIFEST: %v %s", res.Status, res.Body)
		}
		waitSynced(t, pc, rc, 10*time.Second)
	}
	waitSynced(t, pc, rc, 10*time.Second)
	// orders' max TTL 60 -> 120, then orders dropped.
	set(`{"uid":"3","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"users","uid":"8"},{"name":"orders","uid":"9","maxTTL":120}]}]}`)
	set(`{"uid":"4","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"users","uid":"8"}]}]}`)
	for vb := range uint16(vbuckets) {
		p, r := liveEvents(t, pc, vb), liveEvents(t, rc, vb)
		if !slices.Equal(p, r) {
			t.Errorf("vbucket %d: system events %v on the primary, %v on the replica", vb, p, r)
		}
		for _, cid := range []uint32{0, 8, 9} {
			if ph, rh := pc.CollectionHighSeqno(vb, cid), rc.CollectionHighSeqno(vb, cid); ph != rh {
				t.Errorf("vbucket %d: collection %d's high seqno %d on the primary, %d on the replica", vb, cid, ph, rh)
			}
		}
		if h := rc.CollectionHighSeqno(vb, 8); h == 0 {
			t.Errorf("vbucket %d: collection 8's creation is not its high seqno on the replica", vb)
		}
	}
}

// A manifest the replica could not read is read again, until the
// replica's is as new as its system events.
func TestReplicaManifestRetried(t *testing.T) {
	psrv, paddr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 1}})
	p := startProxy(t, paddr)
	rsrv, raddr, _ := startReplica(t, gocache.Config{Cache: cache.Config{VBuckets: 1}}, p.addr())
	pc, rc := psrv.Cache(gocache.DefaultBucket), rsrv.Cache(gocache.DefaultBucket)
	w, r := gocachetest.Dial(t, paddr), gocachetest.Dial(t, raddr)
	w.Do(gocachetest.SetRequest(0, "k", "v", 0))
	waitSynced(t, pc, rc, 10*time.Second)
	helloCollections(t, w)
	// New connections through the proxy now fail: the manifest's read.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	p.retarget(dead.Addr().String())
	if res := w.Do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(testManifest)}); res.Status != gm.SUCCESS {
		t.Fatalf("COLLECTIONS_SET_MANIFEST: %v", res.Status)
	}
	waitSynced(t, pc, rc, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a read or two fail
	p.retarget(paddr)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res := r.Do(gm.MCRequest{Opcode: gm.GET_COLLECTIONS_MANIFEST})
		if res.Status == gm.SUCCESS && bytes.Contains(res.Body, []byte(`"orders"`)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica's manifest after the primary's came back: %v %s", res.Status, res.Body)
		}
	}
}
