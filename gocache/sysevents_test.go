package gocache_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer for a logger that other goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// manyCollections is a manifest of uid uid whose scope s (0x8) holds n
// collections c0... (ids from 0x10), beside the default collection, each
// of maxTTL ttl (none if 0).
func manyCollections(uid uint64, n int, ttl uint32) string {
	cs := make([]string, n)
	for i := range cs {
		cs[i] = fmt.Sprintf(`{"name":"c%d","uid":"%x"`, i, 0x10+i)
		if ttl != 0 {
			cs[i] += fmt.Sprintf(`,"maxTTL":%d`, ttl)
		}
		cs[i] += "}"
	}
	return fmt.Sprintf(`{"uid":"%x","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},{"name":"s","uid":"8","collections":[%s]}]}`,
		uid, strings.Join(cs, ","))
}

// manifestUID returns the uid of the bucket's manifest.
func manifestUID(t *testing.T, d *dcpConn) string {
	t.Helper()
	res := d.call(gm.MCRequest{Opcode: gm.GET_COLLECTIONS_MANIFEST})
	uid, _, _ := strings.Cut(strings.TrimPrefix(string(res.Body), `{"uid":"`), `"`)
	return uid
}

// TestDelayedFlushKeepsSystemEvents: a FLUSH with a delay, carried out
// when the clock passes it, removes the documents but not the
// collections' system events, which a stream from 0 still sends with
// their seqnos.
func TestDelayedFlushKeepsSystemEvents(t *testing.T) {
	clk := &testClock{now: time.Unix(1_700_000_000, 0)}
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 1, Clock: clk}, Manifest: []byte(dcpManifest)})
	w := collConn(t, addr)
	setIn(t, w, 0, 9, "k", "v") // 4
	if res := w.call(gm.MCRequest{Opcode: gm.FLUSH, Extras: be32(2)}); res.VBucket != 0 {
		t.Fatalf("FLUSH: 0x%x", res.VBucket)
	}
	if st := stats(t, addr, ""); st["curr_items"] != "1" {
		t.Fatalf("before the delayed flush's time: curr_items %s", st["curr_items"])
	}
	clk.advance(2 * time.Second)
	setIn(t, w, 0, 9, "after", "v") // the flush, then this (5)
	st := stats(t, addr, "")
	if st["curr_items"] != "1" || st["system_events"] != "3" {
		t.Fatalf("after the delayed flush: curr_items %s, system_events %s", st["curr_items"], st["system_events"])
	}
	d := openCollDCP(t, addr, "delayed", 0)
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	got := make([]gm.MCRequest, 5)
	for i := range got {
		got[i], _ = d.must()
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 5, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(1, 3, 0), []byte("s8"), cat(be64(0), be32(8)))
	wantMsg(t, got[2], gm.DCP_SYSTEM_EVENT, sysExtras(2, 0, 0), []byte("c9"), cat(be64(0), be32(0), be32(9)))
	wantMsg(t, got[3], gm.DCP_SYSTEM_EVENT, sysExtras(3, 0, 1), []byte("ca"), cat(be64(2), be32(8), be32(0xa), be32(100)))
	if got[4].Opcode != gm.UPR_MUTATION || !bytes.Equal(got[4].Key, cache.CollectionKey(nil, 9, []byte("after"))) {
		t.Fatalf("then %s %q, want the document stored after the flush", got[4].Opcode, got[4].Key)
	}
}

// TestManyCollections: a manifest past Couchbase's 1000 scopes or 1000
// collections cannot be applied; one whose system events (one per
// collection in each of 1024 vbuckets) would take more than half the
// memory limit is refused with ENOMEM at once, changing nothing and
// evicting no document; one that fits is applied in bounded time, its
// events counted apart from the documents' statistics, and a dropped
// collection's retired modification is no deletion.
func TestManyCollections(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{MaxBytes: 16 << 20}})
	w := collConn(t, addr, gm.FeatureXError)
	for i := range 1000 {
		setIn(t, w, uint16(i%1024), 0, fmt.Sprint("user", i), strings.Repeat("v", 100))
	}
	set := func(m string) gm.MCRequest {
		t.Helper()
		return w.call(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(m)})
	}
	scopes := make([]string, 1001)
	scopes[0] = `{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]}`
	for i := 1; i < len(scopes); i++ {
		scopes[i] = fmt.Sprintf(`{"name":"s%d","uid":"%x","collections":[]}`, i, 7+i)
	}
	for name, m := range map[string]string{
		"1001 collections": manyCollections(2, 1000, 0),
		"1001 scopes":      `{"uid":"2","scopes":[` + strings.Join(scopes, ",") + `]}`,
	} {
		if res := set(m); gm.Status(res.VBucket) != gm.CANNOT_APPLY_COLLECTIONS_MANIFEST {
			t.Fatalf("%s: 0x%x %s", name, res.VBucket, res.Body)
		}
	}
	for _, n := range []int{300, 999} {
		start := time.Now()
		res := set(manyCollections(2, n, 0))
		if took := time.Since(start); gm.Status(res.VBucket) != gm.ENOMEM || took > 2*time.Second {
			t.Fatalf("%d collections in 1024 vbuckets of a 16 MB cache: 0x%x %s in %v", n, res.VBucket, res.Body, took)
		}
	}
	st := stats(t, addr, "")
	if uid := manifestUID(t, w); uid != "0" || st["curr_items"] != "1000" || st["evictions"] != "0" || st["system_events"] != "0" {
		t.Fatalf("after the refusals: manifest %s, curr_items %s, evictions %s, system_events %s",
			uid, st["curr_items"], st["evictions"], st["system_events"])
	}
	// A server whose configured manifest would not fit is not made.
	if srv, err := gocache.New(gocache.Config{Cache: cache.Config{MaxBytes: 16 << 20}, Manifest: []byte(manyCollections(2, 300, 0))}); !errors.Is(err, cache.ErrNoMemory) {
		if srv != nil {
			srv.Close()
		}
		t.Fatalf("New with a manifest that does not fit: %v", err)
	}
	// 20 collections and their scope: 21 events in each vbucket.
	start := time.Now()
	if res := set(manyCollections(2, 20, 0)); res.VBucket != 0 {
		t.Fatalf("20 collections: 0x%x %s", res.VBucket, res.Body)
	}
	t.Logf("21 events in 1024 vbuckets: %v", time.Since(start))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("21 events in 1024 vbuckets took %v", took)
	}
	st = stats(t, addr, "")
	if st["system_events"] != fmt.Sprint(21*1024) || st["curr_items"] != "1000" || st["total_items"] != "1000" || st["evictions"] != "0" {
		t.Fatalf("after 20 collections: system_events %s, curr_items %s, total_items %s, evictions %s",
			st["system_events"], st["curr_items"], st["total_items"], st["evictions"])
	}
	// Modified (a maxTTL), then dropped: the drop retires 20 × 1024
	// modifications, none a client's deletion.
	for _, m := range []string{manyCollections(3, 20, 60), manyCollections(4, 0, 0)} {
		if res := set(m); res.VBucket != 0 {
			t.Fatalf("SET_MANIFEST: 0x%x %s", res.VBucket, res.Body)
		}
	}
	st = stats(t, addr, "")
	if st["delete_hits"] != "0" || st["delete_misses"] != "0" || st["system_events"] != "1024" || st["curr_items"] != "1000" { // the scope's
		t.Fatalf("after the drop: delete_hits %s, delete_misses %s, system_events %s, curr_items %s",
			st["delete_hits"], st["delete_misses"], st["system_events"], st["curr_items"])
	}
}

// TestManifestEventsNotRecorded: a vbucket that cannot record an event (too
// large for the item size limit) is logged and counted, and the manifest
// stays in force; a vbucket created active whose events memory would not
// take is refused with ENOMEM and stays missing.
func TestManifestEventsNotRecorded(t *testing.T) {
	var log syncBuffer
	_, addr := gocachetest.Start(t, gocache.Config{
		Cache:  cache.Config{VBuckets: 2, MaxItemSize: 100},
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	w := collConn(t, addr)
	long := strings.Repeat("n", 60)
	setManifest(t, w, `{"uid":"2","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"`+long+`","uid":"9"}]}]}`)
	if uid := manifestUID(t, w); uid != "2" {
		t.Fatalf("manifest %s, want 2", uid)
	}
	if st := stats(t, addr, ""); st["system_events_not_recorded"] != "2" {
		t.Fatalf("system_events_not_recorded %s, want 2", st["system_events_not_recorded"])
	}
	if n := strings.Count(log.String(), "system events not recorded"); n != 2 {
		t.Fatalf("%d warnings logged, want 2:\n%s", n, log.String())
	}

	// 64 KB: events may take 32 KB; 100 collections take about 12 KB
	// in each vbucket.
	_, addr = gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 2, MaxBytes: 64 << 10}})
	w = collConn(t, addr)
	setManifest(t, w, manyCollections(2, 100, 0))
	if res := w.call(gm.MCRequest{Opcode: gm.DEL_VBUCKET, VBucket: 1}); res.VBucket != 0 {
		t.Fatalf("DEL_VBUCKET: 0x%x", res.VBucket)
	}
	setManifest(t, w, manyCollections(3, 200, 0)) // vbucket 0 only: about 24 KB
	active := binary.BigEndian.AppendUint32(nil, uint32(cache.Active))
	if res := w.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 1, Extras: active}); gm.Status(res.VBucket) != gm.ENOMEM {
		t.Fatalf("SET_VBUCKET of a vbucket whose events do not fit: 0x%x %s", res.VBucket, res.Body)
	}
	if res := w.call(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: 1}); gm.Status(res.VBucket) != gm.NOT_MY_VBUCKET {
		t.Fatalf("GET_VBUCKET after the refusal: 0x%x %x", res.VBucket, res.Body)
	}
}

// TestDCPCursorDroppedFlush: a consumer that supports cursor dropping,
// whose cursor a flush took away, is not backfilled from where it was
// (hiding that its keys were flushed): its stream ends with "rollback",
// as kv_engine ends a backfill from below the purge seqno.
func TestDCPCursorDroppedFlush(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 1}})
	w := kv(t, addr)
	d := openDCP(t, addr, "dropping", 0)
	if st := d.control("supports_cursor_dropping_vulcan", "true"); st != 0 {
		t.Fatal(st)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	for _, key := range []string{"a", "b"} {
		if _, err := w.Set(0, key, 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for seen := 0; seen < 2; {
		if pkt, _ := d.must(); pkt.Opcode == gm.UPR_MUTATION {
			seen++
		}
	}
	if res := dialDCP(t, addr).call(gm.MCRequest{Opcode: gm.FLUSH}); res.VBucket != 0 {
		t.Fatalf("FLUSH: 0x%x", res.VBucket)
	}
	if _, err := w.Set(0, "c", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	for {
		pkt, _ := d.must()
		switch pkt.Opcode {
		case gm.UPR_SNAPSHOT:
			continue
		case gm.UPR_STREAMEND:
			if r := binary.BigEndian.Uint32(pkt.Extras); r != 6 {
				t.Fatalf("stream end reason %d, want 6 (rollback)", r)
			}
			return
		}
		t.Fatalf("%s %q after the flush, want STREAM_END rollback", pkt.Opcode, pkt.Key)
	}
}
