package memcached_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// feedWait bounds every wait of the feed tests.
const feedWait = 10 * time.Second

// The collections of feedManifest.
const (
	testCollection = 0x8 // _default.c1
)

// feedManifest is the manifest of the collections tests' gocache.
const feedManifest = `{"uid":"2a","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"c1","uid":"8"}]},
 {"name":"app","uid":"8","collections":[{"name":"things","uid":"9","maxTTL":3600}]}]}`

// collectionFeatures are what the collections tests' clients ask for.
var collectionFeatures = memcached.Features{memcached.FeatureCollections, memcached.FeatureXattr, memcached.FeatureDataType, memcached.FeatureXerror}

// dialT dials addr, closing the client with the test.
func dialT(t testing.TB, addr string, opts ...memcached.ClientOptions) *memcached.Client {
	t.Helper()
	var o memcached.ClientOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	c, err := memcached.Dial(ctx, "tcp", addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newFeedT dials addr and makes the connection a feed, closed with the
// test.
func newFeedT(t testing.TB, addr string, opts memcached.FeedOptions, copts ...memcached.ClientOptions) *memcached.Feed {
	t.Helper()
	c := dialT(t, addr, copts...)
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	f, err := memcached.NewFeed(ctx, c, opts)
	if err != nil {
		t.Fatalf("memcached.NewFeed: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// cloneEvent returns a copy of ev that owns its bytes.
func cloneEvent(ev *memcached.Event) memcached.Event {
	c := *ev
	c.Key = bytes.Clone(ev.Key)
	c.Value = bytes.Clone(ev.Value)
	c.FailoverLog = append([]memcached.FailoverEntry(nil), ev.FailoverLog...)
	c.System.Name = bytes.Clone(ev.System.Name)
	return c
}

// feedRec is a handler that records copies of the events, after calling
// hook (if set), whose error it returns.
type feedRec struct {
	hook   func(ctx context.Context, ev *memcached.Event) error
	mu     sync.Mutex
	events []memcached.Event
	wake   chan struct{}
}

func newRec() *feedRec { return &feedRec{wake: make(chan struct{}, 1)} }

func (r *feedRec) HandleEvent(ctx context.Context, ev *memcached.Event) error {
	if r.hook != nil {
		if err := r.hook(ctx, ev); err != nil {
			return err
		}
	}
	c := cloneEvent(ev)
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// snapshot returns the events so far.
func (r *feedRec) snapshot() []memcached.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]memcached.Event(nil), r.events...)
}

// waitFor waits until cond holds for the events recorded, failing the
// test after feedWait (or when the feed's Run ended, errc).
func (r *feedRec) waitFor(t *testing.T, what string, errc <-chan error, cond func([]memcached.Event) bool) []memcached.Event {
	t.Helper()
	deadline := time.After(feedWait)
	for {
		evs := r.snapshot()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.wake:
		case err := <-errc:
			evs := r.snapshot()
			if cond(evs) {
				return evs
			}
			t.Fatalf("waiting for %s: Run returned %v after %d events", what, err, len(evs))
		case <-deadline:
			t.Fatalf("waiting for %s: timed out after %d events", what, len(r.snapshot()))
		}
	}
}

// count counts the events of kind k.
func count(evs []memcached.Event, k memcached.EventKind) int {
	n := 0
	for i := range evs {
		if evs[i].Kind == k {
			n++
		}
	}
	return n
}

// runFeed runs f with h until the test ends or cancel is called; errc
// gets Run's error.
func runFeed(t *testing.T, f *memcached.Feed, h memcached.FeedHandler) (cancel context.CancelFunc, errc chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc = make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- f.Run(ctx, h)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(feedWait):
			t.Error("Run did not return after its context ended")
		}
	})
	return cancel, errc
}

// runErr waits for Run's error.
func runErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(feedWait):
		t.Fatal("Run did not return")
	}
	return nil
}

// doc is a document as stored.
type doc struct {
	value []byte
	flags uint32
	cas   uint64
}

// fill stores n documents in each vbucket of vbs, keys prefixed with
// prefix, and returns them by vbucket and key.
func fillDocs(t testing.TB, kv *memcached.Client, vbs []uint16, n int, prefix string, into map[uint16]map[string]doc) {
	t.Helper()
	for _, vb := range vbs {
		if into[vb] == nil {
			into[vb] = map[string]doc{}
		}
		for i := range n {
			key := fmt.Sprintf("%s-%d-%d", prefix, vb, i)
			// Values of varied lengths, binary bytes included.
			val := append([]byte(key+"="), bytes.Repeat([]byte{byte(i), 0, 0xff}, i%97)...)
			flags := uint32(vb)<<16 | uint32(i)
			res, err := kv.Set(vb, key, int(flags), 0, val)
			if err != nil {
				t.Fatalf("Set %s: %v", key, err)
			}
			into[vb][key] = doc{val, flags, res.Cas}
		}
	}
}

func vbRange(n int) []uint16 {
	vbs := make([]uint16, n)
	for i := range vbs {
		vbs[i] = uint16(i)
	}
	return vbs
}

// checkDocs checks that the mutations of evs are exactly want, byte for
// byte, seqnos rising in each vbucket, each inside its snapshot and its
// checkpoint.
func checkDocs(t *testing.T, evs []memcached.Event, want map[uint16]map[string]doc) {
	t.Helper()
	last := map[uint16]uint64{}
	got := 0
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != memcached.EventMutation {
			continue
		}
		got++
		d, ok := want[ev.VBucket][string(ev.Key)]
		if !ok {
			t.Fatalf("unexpected mutation vb %d key %q", ev.VBucket, ev.Key)
		}
		if !bytes.Equal(ev.Value, d.value) || ev.Flags != d.flags || ev.CAS != d.cas {
			t.Fatalf("vb %d key %q: value %q flags %#x cas %#x, want %q %#x %#x",
				ev.VBucket, ev.Key, ev.Value, ev.Flags, ev.CAS, d.value, d.flags, d.cas)
		}
		if ev.Seqno <= last[ev.VBucket] {
			t.Fatalf("vb %d: seqno %d after %d", ev.VBucket, ev.Seqno, last[ev.VBucket])
		}
		last[ev.VBucket] = ev.Seqno
		if ev.Seqno < ev.SnapStart || ev.Seqno > ev.SnapEnd {
			t.Fatalf("vb %d: seqno %d outside its snapshot %d..%d", ev.VBucket, ev.Seqno, ev.SnapStart, ev.SnapEnd)
		}
		cp := ev.Checkpoint
		if cp.Seqno != ev.Seqno || cp.SnapStart > cp.Seqno || cp.Seqno > cp.SnapEnd || cp.VBUUID == 0 {
			t.Fatalf("vb %d seqno %d: checkpoint %+v", ev.VBucket, ev.Seqno, cp)
		}
	}
	n := 0
	for _, m := range want {
		n += len(m)
	}
	if got != n {
		t.Fatalf("%d mutations, want %d", got, n)
	}
}

// TestFeedBackfillAndLive streams 32 vbuckets at once on one connection:
// what they held (backfill), then what is written while they stream.
func TestFeedBackfillAndLive(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	vbs := vbRange(32)
	want := map[uint16]map[string]doc{}
	fillDocs(t, kv, vbs, 20, "old", want)

	f := newFeedT(t, addr, memcached.FeedOptions{Name: "backfill-live"})
	for _, vb := range vbs {
		if err := f.Add(memcached.StreamSpec{VBucket: vb}); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRec()
	cancel, errc := runFeed(t, f, rec)
	rec.waitFor(t, "the backfill", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 32*20 })
	fillDocs(t, kv, vbs, 5, "new", want)
	evs := rec.waitFor(t, "the live changes", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 32*25 })
	checkDocs(t, evs, want)

	starts := map[uint16]bool{}
	for _, ev := range evs {
		switch ev.Kind {
		case memcached.EventStreamStart:
			if len(ev.FailoverLog) == 0 || ev.Checkpoint.VBUUID != ev.FailoverLog[0].VBUUID || starts[ev.VBucket] {
				t.Fatalf("stream start %+v", ev)
			}
			starts[ev.VBucket] = true
		case memcached.EventMutation:
			if !starts[ev.VBucket] {
				t.Fatalf("vb %d: a mutation before the stream start", ev.VBucket)
			}
		}
	}
	if len(starts) != len(vbs) {
		t.Fatalf("%d stream starts, want %d", len(starts), len(vbs))
	}
	if count(evs, memcached.EventSnapshot) < 2*len(vbs) {
		t.Fatalf("%d snapshot markers, want a backfill's and a live one's per vbucket", count(evs, memcached.EventSnapshot))
	}
	cancel()
	if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// TestFeedDeletion: a deletion comes with its key, CAS and delete time on
// a feed with delete times, and an expiration as such.
func TestFeedDeletion(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	set, err := kv.Set(3, "gone", 0, 0, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "deletion", DeleteTimes: true})
	if err := f.Add(memcached.StreamSpec{VBucket: 3}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	rec.waitFor(t, "the mutation", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 1 })
	if _, err := kv.Del(3, "gone"); err != nil {
		t.Fatal(err)
	}
	evs := rec.waitFor(t, "the deletion", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventDeletion) == 1 })
	ev := evs[len(evs)-1]
	if ev.Kind != memcached.EventDeletion || string(ev.Key) != "gone" || ev.Seqno != 2 || ev.CAS <= set.Cas || ev.Checkpoint.Seqno != 2 {
		t.Fatalf("deletion %+v (the set's CAS %#x)", ev, set.Cas)
	}
	if now := uint32(time.Now().Unix()); ev.Expiry+60 < now || ev.Expiry > now+60 {
		t.Fatalf("delete time %d, now %d", ev.Expiry, now)
	}
	if testing.Short() {
		return
	}
	// An item that expires, found so by a read.
	if _, err := kv.Set(3, "brief", 0, 1, []byte("v")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	kv.Get(3, "brief")
	evs = rec.waitFor(t, "the expiration", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventExpiration) == 1 })
	ev = evs[len(evs)-1]
	if ev.Kind != memcached.EventExpiration || string(ev.Key) != "brief" || ev.Seqno != 4 || ev.Checkpoint.Seqno != 4 {
		t.Fatalf("expiration %+v", ev)
	}
}

// TestFeedEndSeqno: a stream with an end seqno ends there with
// EventStreamEnd, and Run returns nil once no stream is left.
func TestFeedEndSeqno(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	want := map[uint16]map[string]doc{}
	fillDocs(t, kv, []uint16{3}, 10, "k", want)
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "end"})
	if err := f.Add(memcached.StreamSpec{VBucket: 3, End: 6}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if err := f.Run(ctx, rec); err != nil {
		t.Fatalf("Run: %v", err)
	}
	evs := rec.snapshot()
	if count(evs, memcached.EventMutation) != 6 {
		t.Fatalf("%d mutations, want 6", count(evs, memcached.EventMutation))
	}
	end := evs[len(evs)-1]
	if end.Kind != memcached.EventStreamEnd || end.Reason != memcached.StreamEndOK || end.Checkpoint.Seqno != 6 || end.VBucket != 3 {
		t.Fatalf("last event %+v", end)
	}
	// Run again: nothing is left.
	if err := f.Run(ctx, rec); err != nil {
		t.Fatalf("Run again: %v", err)
	}
}

// TestFeedRemove: Remove ends a stream with StreamEndClosed; Add refuses
// a stream that exists, Remove one that does not.
func TestFeedRemove(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	fillDocs(t, kv, []uint16{1, 2}, 3, "k", map[uint16]map[string]doc{})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "remove"})
	for _, vb := range []uint16{1, 2} {
		if err := f.Add(memcached.StreamSpec{VBucket: vb}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 1}); !errors.Is(err, memcached.ErrFeedStreamExists) {
		t.Fatalf("second Add: %v", err)
	}
	if err := f.Remove(9, 0); !errors.Is(err, memcached.ErrFeedNoStream) {
		t.Fatalf("Remove of no stream: %v", err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	rec.waitFor(t, "the backfills", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 6 })
	if err := f.Remove(1, 0); err != nil {
		t.Fatal(err)
	}
	evs := rec.waitFor(t, "the stream end", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventStreamEnd) == 1 })
	end := evs[len(evs)-1]
	if end.Kind != memcached.EventStreamEnd || end.VBucket != 1 || end.Reason != memcached.StreamEndClosed || end.Checkpoint.Seqno != 3 {
		t.Fatalf("end %+v", end)
	}
	// vb 2 still streams, vb 1 no more.
	for _, vb := range []uint16{1, 2} {
		if _, err := kv.Set(vb, "more", 0, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "vb 2's live change", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 7 })
	if err := f.Remove(2, 0); err != nil {
		t.Fatal(err)
	}
	if err := runErr(t, errc); err != nil {
		t.Fatalf("Run after the last stream ended: %v", err)
	}
	for _, ev := range rec.snapshot() {
		if ev.Kind == memcached.EventMutation && ev.VBucket == 1 && string(ev.Key) == "more" {
			t.Fatal("a change of a removed stream")
		}
	}
}

// TestFeedCheckpointResume stops a feed (its context canceled) in the
// middle of the backfills and starts another from the checkpoints it
// saved: every change arrives once, none is lost.
func TestFeedCheckpointResume(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	vbs := vbRange(8)
	want := map[uint16]map[string]doc{}
	fillDocs(t, kv, vbs, 40, "a", want)

	seen := map[uint16]map[uint64]bool{} // vbucket, seqno
	saved := map[uint16]memcached.Checkpoint{}
	note := func(ev *memcached.Event) {
		switch ev.Kind {
		case memcached.EventMutation, memcached.EventDeletion:
			if seen[ev.VBucket] == nil {
				seen[ev.VBucket] = map[uint64]bool{}
			}
			if seen[ev.VBucket][ev.Seqno] {
				t.Errorf("vb %d seqno %d twice", ev.VBucket, ev.Seqno)
			}
			seen[ev.VBucket][ev.Seqno] = true
		case memcached.EventRollback:
			for s := range seen[ev.VBucket] {
				if s > ev.Seqno {
					delete(seen[ev.VBucket], s)
				}
			}
		}
		saved[ev.VBucket] = ev.Checkpoint
	}

	f1 := newFeedT(t, addr, memcached.FeedOptions{Name: "resume-1", BufferSize: 4096})
	for _, vb := range vbs {
		if err := f1.Add(memcached.StreamSpec{VBucket: vb}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	n := 0
	err := f1.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		note(ev)
		if ev.Kind == memcached.EventMutation {
			if n++; n == 100 {
				cancel()
			}
		}
		return nil
	}))
	if !errors.Is(err, context.Canceled) || n != 100 {
		t.Fatalf("first feed: Run %v after %d mutations", err, n)
	}
	f1.Close()
	fillDocs(t, kv, vbs, 10, "b", want)

	f2 := newFeedT(t, addr, memcached.FeedOptions{Name: "resume-2"})
	for _, vb := range vbs {
		if err := f2.Add(memcached.StreamSpec{VBucket: vb, From: saved[vb]}); err != nil {
			t.Fatal(err)
		}
	}
	total := func() int {
		n := 0
		for _, m := range seen {
			n += len(m)
		}
		return n
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), feedWait)
	defer cancel2()
	err = f2.Run(ctx2, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		note(ev)
		if total() == 8*50 {
			cancel2()
		}
		return nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("second feed: Run %v with %d of %d changes", err, total(), 8*50)
	}
	for _, vb := range vbs {
		for s := uint64(1); s <= 50; s++ {
			if !seen[vb][s] {
				t.Fatalf("vb %d seqno %d lost", vb, s)
			}
		}
	}
}

// TestFeedRollback: a stream request the producer answers with ROLLBACK
// is reported, then requested again from the rollback point, where it
// starts.
func TestFeedRollback(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	want := map[uint16]map[string]doc{}
	fillDocs(t, kv, []uint16{4}, 10, "k", want)

	t.Run("unknown history", func(t *testing.T) {
		f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-1"})
		if err := f.Add(memcached.StreamSpec{VBucket: 4, From: memcached.Checkpoint{VBUUID: 0xbad, Seqno: 5, SnapStart: 5, SnapEnd: 5}, End: 10}); err != nil {
			t.Fatal(err)
		}
		rec := newRec()
		ctx, cancel := context.WithTimeout(context.Background(), feedWait)
		defer cancel()
		if err := f.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		evs := rec.snapshot()
		if evs[0].Kind != memcached.EventRollback || evs[0].Seqno != 0 || evs[0].Checkpoint != (memcached.Checkpoint{}) || evs[0].Reason != 0 {
			t.Fatalf("first event %+v, want a rollback to 0", evs[0])
		}
		if evs[1].Kind != memcached.EventStreamStart {
			t.Fatalf("second event %+v", evs[1])
		}
		checkDocs(t, evs, want)
	})
	t.Run("inside the history", func(t *testing.T) {
		f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-2"})
		// A first stream shows the feed the failover log.
		if err := f.Add(memcached.StreamSpec{VBucket: 4, End: 1}); err != nil {
			t.Fatal(err)
		}
		rec := newRec()
		ctx, cancel := context.WithTimeout(context.Background(), feedWait)
		defer cancel()
		if err := f.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		uuid := rec.snapshot()[0].FailoverLog[0].VBUUID
		// A snapshot that ends beyond what the vbucket has: back to its
		// start.
		rec = newRec()
		if err := f.Add(memcached.StreamSpec{VBucket: 4, From: memcached.Checkpoint{VBUUID: uuid, Seqno: 8, SnapStart: 6, SnapEnd: 15}, End: 10}); err != nil {
			t.Fatal(err)
		}
		if err := f.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		evs := rec.snapshot()
		if evs[0].Kind != memcached.EventRollback || evs[0].Seqno != 6 || evs[0].Checkpoint != (memcached.Checkpoint{VBUUID: uuid, Seqno: 6, SnapStart: 6, SnapEnd: 6}) {
			t.Fatalf("first event %+v, want a rollback to 6 on %#x", evs[0], uuid)
		}
		if evs[1].Kind != memcached.EventStreamStart || evs[1].Checkpoint.Seqno != 6 {
			t.Fatalf("second event %+v", evs[1])
		}
		var seqnos []uint64
		for _, ev := range evs {
			if ev.Kind == memcached.EventMutation {
				seqnos = append(seqnos, ev.Seqno)
			}
		}
		if fmt.Sprint(seqnos) != "[7 8 9 10]" {
			t.Fatalf("seqnos %v after the rollback", seqnos)
		}
	})
	t.Run("handler refuses", func(t *testing.T) {
		f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-3"})
		if err := f.Add(memcached.StreamSpec{VBucket: 4, From: memcached.Checkpoint{VBUUID: 0xbad, Seqno: 5, SnapStart: 5, SnapEnd: 5}}); err != nil {
			t.Fatal(err)
		}
		errNo := errors.New("no rollback")
		err := f.Run(context.Background(), memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
			if ev.Kind == memcached.EventRollback {
				return errNo
			}
			return nil
		}))
		if !errors.Is(err, errNo) {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("inside the history, on a new feed", func(t *testing.T) {
		// A feed resuming from a saved checkpoint has seen no failover
		// log: it asks again on the checkpoint's history, so that the
		// partial rollback does not become one to 0.
		probe := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-4-probe"})
		if err := probe.Add(memcached.StreamSpec{VBucket: 4, End: 1}); err != nil {
			t.Fatal(err)
		}
		rec := newRec()
		ctx, cancel := context.WithTimeout(context.Background(), feedWait)
		defer cancel()
		if err := probe.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		uuid := rec.snapshot()[0].FailoverLog[0].VBUUID
		f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-4"})
		if err := f.Add(memcached.StreamSpec{VBucket: 4, From: memcached.Checkpoint{VBUUID: uuid, Seqno: 8, SnapStart: 6, SnapEnd: 15}, End: 10}); err != nil {
			t.Fatal(err)
		}
		rec = newRec()
		if err := f.Run(ctx, rec); err != nil {
			t.Fatal(err)
		}
		evs := rec.snapshot()
		if n := count(evs, memcached.EventRollback); n != 1 {
			t.Fatalf("%d rollbacks, want 1 (to 6)", n)
		}
		if evs[0].Kind != memcached.EventRollback || evs[0].Seqno != 6 || evs[0].Checkpoint != (memcached.Checkpoint{VBUUID: uuid, Seqno: 6, SnapStart: 6, SnapEnd: 6}) {
			t.Fatalf("first event %+v, want a rollback to 6 on %#x", evs[0], uuid)
		}
		if evs[1].Kind != memcached.EventStreamStart || evs[1].Checkpoint.Seqno != 6 || evs[1].Checkpoint.VBUUID != uuid {
			t.Fatalf("second event %+v", evs[1])
		}
		if n := count(evs, memcached.EventMutation); n != 4 {
			t.Fatalf("%d mutations after the rollback, want 4 (7..10)", n)
		}
	})
}

// TestFeedNotMyVBucket: a refused stream request is an EventStreamEnd
// that says why.
func TestFeedNotMyVBucket(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 16}})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "nmvb"})
	if err := f.Add(memcached.StreamSpec{VBucket: 100}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if err := f.Run(ctx, rec); err != nil {
		t.Fatal(err)
	}
	evs := rec.snapshot()
	if len(evs) != 1 {
		t.Fatalf("events %+v", evs)
	}
	ev := evs[0]
	var se *gomemcached.ServerError
	if ev.Kind != memcached.EventStreamEnd || ev.Reason != memcached.StreamEndRefused || ev.Status != gomemcached.NOT_MY_VBUCKET ||
		!errors.Is(ev.Err, gomemcached.ErrNotMyVBucket) || !errors.As(ev.Err, &se) || ev.VBucket != 100 {
		t.Fatalf("event %+v", ev)
	}
}

// TestFeedHandlerError: a handler's error stops Run, which returns it.
func TestFeedHandlerError(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	fillDocs(t, kv, []uint16{0}, 5, "k", map[uint16]map[string]doc{})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "handler-error"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop here")
	n := 0
	err := f.Run(context.Background(), memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventMutation {
			if n++; n == 3 {
				return errStop
			}
		}
		return nil
	}))
	if !errors.Is(err, errStop) || n != 3 {
		t.Fatalf("Run: %v after %d mutations", err, n)
	}
	// The feed goes on where it stopped.
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	err = f.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventMutation {
			if n++; n == 5 {
				cancel()
			}
		}
		return nil
	}))
	if !errors.Is(err, context.Canceled) || n != 5 {
		t.Fatalf("Run again: %v after %d mutations", err, n)
	}
}

// countingListener counts the bytes the server writes on each
// connection it accepts.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*countingConn
}

type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

func (l *countingListener) last() *countingConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[len(l.conns)-1]
}

// startCounted starts gocache on a countingListener.
func startCounted(t *testing.T, cfg gocache.Config) (*gocache.Server, *countingListener) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gocache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(cl)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), feedWait)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv, cl
}

// TestFeedFlowControl: while the handler blocks, the producer stops once
// BufferSize bytes are unacknowledged; once it returns, everything comes.
func TestFeedFlowControl(t *testing.T) {
	_, ln := startCounted(t, gocache.Config{})
	addr := ln.Addr().String()
	kv := dialT(t, addr)
	const items, size = 1000, 1000
	val := bytes.Repeat([]byte("v"), size)
	for i := range items {
		if _, err := kv.Set(7, fmt.Sprintf("key-%04d", i), 0, 0, val); err != nil {
			t.Fatal(err)
		}
	}
	const window = 64 << 10
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "flow", BufferSize: window})
	conn := ln.last()
	base := conn.written.Load()
	release := make(chan struct{})
	blocked := make(chan struct{})
	var once sync.Once
	rec := newRec()
	rec.hook = func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventSnapshot {
			once.Do(func() {
				close(blocked)
				select {
				case <-release:
				case <-time.After(feedWait):
				}
			})
		}
		return nil
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 7}); err != nil {
		t.Fatal(err)
	}
	_, errc := runFeed(t, f, rec)
	select {
	case <-blocked:
	case <-time.After(feedWait):
		t.Fatal("no snapshot marker")
	}
	// Wait for the producer to stop sending.
	sent := int64(-1)
	for deadline := time.Now().Add(feedWait); ; {
		time.Sleep(200 * time.Millisecond)
		now := conn.written.Load() - base
		if now == sent {
			break
		}
		sent = now
		if time.Now().After(deadline) {
			t.Fatal("the producer does not stop")
		}
	}
	// One message beyond the window at most (a mutation: header, 31
	// bytes of extras, key, value), plus the stream request's answer
	// (header and a failover log entry or two).
	msg := int64(24 + 31 + 8 + size)
	if sent > window+msg+24+32 {
		t.Fatalf("the producer sent %d bytes while the handler blocked, window %d", sent, window)
	}
	if sent < window/2 {
		t.Fatalf("the producer sent only %d bytes of a %d-byte window", sent, window)
	}
	t.Logf("sent %d bytes while blocked, window %d", sent, window)
	close(release)
	rec.waitFor(t, "every mutation", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == items })
}

// serveOne serves the first connection to a loopback listener with serve,
// with feedWait as its deadline, and returns the listener's address; the
// test's end waits for serve to return.
func serveOne(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(feedWait))
		serve(c)
	}()
	return ln.Addr().String()
}

// fakeProducer is a DCP producer that cannot be made real: it answers
// every request with success (a stream request with a failover log of
// one entry) and then runs script on the connection.
func fakeProducer(t *testing.T, script func(c net.Conn, r *gomemcached.Reader, streamOpaque uint32)) string {
	t.Helper()
	return serveOne(t, func(c net.Conn) {
		r := gomemcached.NewReader(c)
		for {
			var req gomemcached.MCRequest
			if err := r.ReadRequest(&req); err != nil {
				return
			}
			res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
			if req.Opcode == gomemcached.UPR_STREAMREQ {
				res.Body = make([]byte, 16)
				binary.BigEndian.PutUint64(res.Body, 0xabc)
				if _, err := res.Transmit(c); err != nil {
					return
				}
				script(c, r, req.Opaque)
				return
			}
			if _, err := res.Transmit(c); err != nil {
				return
			}
		}
	})
}

// TestFeedNoop: the feed answers the producer's NOOPs.
func TestFeedNoop(t *testing.T) {
	answered := make(chan error, 1)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, _ uint32) {
		req := gomemcached.MCRequest{Opcode: gomemcached.UPR_NOOP, Opaque: 77}
		if _, err := req.Transmit(c); err != nil {
			answered <- err
			return
		}
		for {
			var res gomemcached.MCResponse
			if err := r.ReadResponse(&res); err != nil {
				answered <- fmt.Errorf("reading the answer: %w", err)
				return
			}
			if res.Opcode == gomemcached.UPR_NOOP {
				if res.Opaque != 77 || res.Status != gomemcached.SUCCESS {
					answered <- fmt.Errorf("answer %+v", res)
				}
				answered <- nil
				return
			}
		}
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "noop"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	runFeed(t, f, newRec())
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(feedWait):
		t.Fatal("the NOOP was not answered")
	}
}

// TestFeedDead: a producer that goes silent for two noop intervals fails
// the feed with ErrFeedDead.
func TestFeedDead(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, _ uint32) {
		select {
		case <-stall:
		case <-time.After(feedWait):
		}
	})
	const iv = 200 * time.Millisecond
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "dead", NoopInterval: iv})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, errc := runFeed(t, f, newRec())
	err := runErr(t, errc)
	if el := time.Since(start); !errors.Is(err, memcached.ErrFeedDead) || el < 2*iv || el > 2*iv+2*time.Second {
		t.Fatalf("Run: %v after %v", err, el)
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 1}); !errors.Is(err, memcached.ErrFeedDead) {
		t.Fatalf("Add on a dead feed: %v", err)
	}
}

// TestFeedMalformed: a packet the feed cannot decode fails it with an
// error that says so.
func TestFeedMalformed(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"short mutation extras", (&gomemcached.MCRequest{Opcode: gomemcached.UPR_MUTATION, Extras: make([]byte, 4), Key: []byte("k")}).Bytes()},
		{"bad magic", append([]byte{0x42}, make([]byte, 23)...)},
		{"key beyond the body", func() []byte {
			b := (&gomemcached.MCRequest{Opcode: gomemcached.UPR_MUTATION, Extras: make([]byte, 31), Key: []byte("k")}).Bytes()
			binary.BigEndian.PutUint16(b[2:], 500)
			return b
		}()},
		{"huge body", func() []byte {
			b := (&gomemcached.MCRequest{Opcode: gomemcached.UPR_MUTATION}).Bytes()
			binary.BigEndian.PutUint32(b[8:], 0xffffffff)
			return b
		}()},
		{"marker version", (&gomemcached.MCRequest{Opcode: gomemcached.UPR_SNAPSHOT, Extras: []byte{7}, Body: make([]byte, 52)}).Bytes()},
		{"odd failover log", (&gomemcached.MCResponse{Opcode: gomemcached.UPR_STREAMREQ, Opaque: 0, Body: make([]byte, 5)}).Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque uint32) {
				pkt := bytes.Clone(tt.pkt)
				if pkt[0] == 0x81 {
					// An answer to a second stream request.
					var req gomemcached.MCRequest
					if r.ReadRequest(&req) != nil {
						return
					}
					binary.BigEndian.PutUint32(pkt[12:], req.Opaque)
				}
				c.Write(pkt)
				io.Copy(io.Discard, c)
			})
			f := newFeedT(t, addr, memcached.FeedOptions{Name: "malformed"})
			if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
				t.Fatal(err)
			}
			second := false
			_, errc := runFeed(t, f, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
				if ev.Kind == memcached.EventStreamStart && !second {
					second = true
					return f.Add(memcached.StreamSpec{VBucket: 1})
				}
				return nil
			}))
			err := runErr(t, errc)
			if !errors.Is(err, memcached.ErrFeedMalformed) || !errors.Is(err, gomemcached.ErrProtocol) {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// TestFeedCollectionsFilter: a stream filtered to one collection carries
// only its documents, with their collection id.
func TestFeedCollectionsFilter(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Manifest: []byte(feedManifest)})
	copts := memcached.ClientOptions{Features: collectionFeatures}
	kv := dialT(t, addr, copts)
	for i := range 5 {
		if _, err := kv.Set(2, fmt.Sprintf("in-c1-%d", i), 0, 0, []byte("c1"), &memcached.ClientContext{CollId: testCollection}); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Set(2, fmt.Sprintf("in-default-%d", i), 0, 0, []byte("d")); err != nil {
			t.Fatal(err)
		}
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "filter", Collections: true}, copts)
	if err := f.Add(memcached.StreamSpec{VBucket: 2, Filter: fmt.Sprintf(`{"collections":["%x"]}`, testCollection)}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	evs := rec.waitFor(t, "c1's documents", errc, func(evs []memcached.Event) bool {
		return count(evs, memcached.EventMutation) == 5 || count(evs, memcached.EventStreamEnd) > 0
	})
	if evs[0].Kind == memcached.EventStreamEnd {
		t.Fatalf("refused: %+v", evs[0])
	}
	time.Sleep(100 * time.Millisecond)
	for _, ev := range rec.snapshot() {
		if ev.Kind == memcached.EventMutation && (ev.CollectionID != testCollection || !strings.HasPrefix(string(ev.Key), "in-c1-")) {
			t.Fatalf("mutation of collection %#x key %q", ev.CollectionID, ev.Key)
		}
	}
}

// TestFeedSystemEvents: a collections-aware feed sees the manifest's
// collections created, decoded.
func TestFeedSystemEvents(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Manifest: []byte(feedManifest)})
	copts := memcached.ClientOptions{Features: collectionFeatures}
	kv := dialT(t, addr, copts)
	if _, err := kv.Set(2, "doc", 0, 0, []byte("v"), &memcached.ClientContext{CollId: testCollection}); err != nil {
		t.Fatal(err)
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "sysevents", Collections: true}, copts)
	if err := f.Add(memcached.StreamSpec{VBucket: 2}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	evs := rec.waitFor(t, "the document", errc, func(evs []memcached.Event) bool {
		for _, ev := range evs {
			if ev.Kind == memcached.EventMutation && string(ev.Key) == "doc" {
				return true
			}
		}
		return false
	})
	evs = rec.snapshot()
	if count(evs, memcached.EventSystem) == 0 {
		t.Fatal("no system event")
	}
	var c1 *memcached.Event
	for i := range evs {
		ev := &evs[i]
		if ev.Kind == memcached.EventMutation && (ev.CollectionID != testCollection || string(ev.Key) != "doc") {
			t.Fatalf("mutation %+v", ev)
		}
		if ev.Kind == memcached.EventSystem && ev.System.Type == memcached.CollectionCreate && ev.System.CollectionID == testCollection {
			c1 = ev
		}
	}
	if c1 == nil || string(c1.System.Name) != "c1" || c1.System.ScopeID != 0 || c1.Checkpoint.Seqno != c1.Seqno {
		t.Fatalf("c1's creation %+v among %d events", c1, len(evs))
	}

	// Live: a manifest without c1 drops it.
	dropped := `{"uid":"2b","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"things","uid":"9","maxTTL":3600}]}]}`
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if _, err := kv.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.COLLECTIONS_SET_MANIFEST, Body: []byte(dropped)}); err != nil {
		t.Fatalf("COLLECTIONS_SET_MANIFEST: %v", err)
	}
	evs = rec.waitFor(t, "c1's drop", errc, func(evs []memcached.Event) bool {
		ev := evs[len(evs)-1]
		return ev.Kind == memcached.EventSystem && ev.System.Type == memcached.CollectionDrop
	})
	drop := evs[len(evs)-1]
	if drop.System.CollectionID != testCollection || drop.System.ManifestUID != 0x2b || drop.Seqno <= c1.Seqno || drop.Checkpoint.Seqno != drop.Seqno {
		t.Fatalf("c1's drop %+v", drop)
	}
}

// TestFeedStreamIDs: two streams of one vbucket, each with its own
// collections filter, told apart by their ids.
func TestFeedStreamIDs(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Manifest: []byte(feedManifest)})
	copts := memcached.ClientOptions{Features: collectionFeatures}
	kv := dialT(t, addr, copts)
	fillDocs(t, kv, []uint16{6}, 4, "k", map[uint16]map[string]doc{})
	for i := range 3 {
		if _, err := kv.Set(6, fmt.Sprintf("c1-%d", i), 0, 0, []byte("v"), &memcached.ClientContext{CollId: testCollection}); err != nil {
			t.Fatal(err)
		}
	}
	c := dialT(t, addr, copts)
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	f, err := memcached.NewFeed(ctx, c, memcached.FeedOptions{Name: "sids", StreamIDs: true, Collections: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sid, cid := range map[uint16]uint32{1: testCollection, 2: 0} {
		if err := f.Add(memcached.StreamSpec{VBucket: 6, StreamID: sid, Filter: fmt.Sprintf(`{"collections":["%x"]}`, cid)}); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	evs := rec.waitFor(t, "both streams' documents", errc, func(evs []memcached.Event) bool {
		return count(evs, memcached.EventMutation) >= 7 || count(evs, memcached.EventStreamEnd) > 0
	})
	for _, ev := range evs {
		if ev.Kind == memcached.EventStreamEnd && ev.Reason == memcached.StreamEndRefused {
			t.Fatalf("refused: %+v", ev)
		}
	}
	for _, sid := range []uint16{1, 2} {
		if err := f.Remove(6, sid); err != nil {
			t.Fatal(err)
		}
	}
	if err := runErr(t, errc); err != nil {
		t.Fatalf("Run: %v", err)
	}
	per := map[uint16]int{}
	ends := map[uint16]bool{}
	for _, ev := range rec.snapshot() {
		switch ev.Kind {
		case memcached.EventMutation:
			per[ev.StreamID]++
			if want := map[uint16]uint32{1: testCollection, 2: 0}[ev.StreamID]; ev.CollectionID != want || ev.VBucket != 6 {
				t.Fatalf("stream %d: a mutation of collection %#x", ev.StreamID, ev.CollectionID)
			}
		case memcached.EventStreamEnd:
			ends[ev.StreamID] = ev.Reason == memcached.StreamEndClosed
		}
	}
	if per[1] != 3 || per[2] != 4 || len(per) != 2 || !ends[1] || !ends[2] {
		t.Fatalf("mutations per stream id %v, closed %v", per, ends)
	}
}

// TestFeedOSO: a backfill in an out-of-order snapshot arrives between
// OSO begin and end, and the checkpoint after the end covers it.
func TestFeedOSO(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Manifest: []byte(feedManifest)})
	copts := memcached.ClientOptions{Features: collectionFeatures}
	kv := dialT(t, addr, copts)
	for i := range 20 {
		if _, err := kv.Set(2, fmt.Sprintf("z%02d", 20-i), 0, 0, []byte("v"), &memcached.ClientContext{CollId: testCollection}); err != nil {
			t.Fatal(err)
		}
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "oso", OSO: true, Collections: true}, copts)
	if err := f.Add(memcached.StreamSpec{VBucket: 2, Filter: fmt.Sprintf(`{"collections":["%x"]}`, testCollection)}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	evs := rec.waitFor(t, "the backfill", errc, func(evs []memcached.Event) bool {
		return count(evs, memcached.EventMutation) == 20 || count(evs, memcached.EventStreamEnd) > 0
	})
	if evs[0].Kind == memcached.EventStreamEnd {
		t.Fatalf("refused: %+v", evs[0])
	}
	time.Sleep(100 * time.Millisecond)
	evs = rec.snapshot()
	if count(evs, memcached.EventOSOBegin) == 0 {
		t.Fatal("no OSO snapshot")
	}
	in := false
	for _, ev := range evs {
		switch ev.Kind {
		case memcached.EventOSOBegin:
			in = true
		case memcached.EventOSOEnd:
			in = false
			if ev.Checkpoint.Seqno < 20 || ev.Checkpoint.SnapStart != ev.Checkpoint.Seqno {
				t.Fatalf("checkpoint after OSO %+v", ev.Checkpoint)
			}
		case memcached.EventMutation:
			if !in {
				t.Fatalf("a backfilled mutation outside the OSO snapshot: %+v", ev)
			}
		}
	}
}

// producerMsg encodes a producer's message for a fake producer.
func producerMsg(op gomemcached.CommandCode, vb uint16, extras, key, value []byte) []byte {
	return (&gomemcached.MCRequest{Opcode: op, VBucket: vb, Extras: extras, Key: key, Body: value}).Bytes()
}

func mutationExtras(seqno uint64) []byte {
	ex := make([]byte, 31)
	binary.BigEndian.PutUint64(ex, seqno)
	return ex
}

func markerExtras(start, end uint64, flags uint32) []byte {
	ex := make([]byte, 20)
	binary.BigEndian.PutUint64(ex, start)
	binary.BigEndian.PutUint64(ex[8:], end)
	binary.BigEndian.PutUint32(ex[16:], flags)
	return ex
}

// TestFeedOSOCheckpoint: inside an out-of-order snapshot the checkpoint
// stays where the snapshot began; at its end it covers the highest seqno
// (a seqno advanced included). A marker that asks for an answer gets one
// once the whole snapshot is in, not before (snapshot-marker.md). (A fake
// producer: gocache's sends no OSO snapshots.)
func TestFeedOSOCheckpoint(t *testing.T) {
	acked := make(chan error, 1)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque uint32) {
		var stream []byte
		for _, m := range [][]byte{
			producerMsg(gomemcached.DCP_OSO_SNAPSHOT, 0, binary.BigEndian.AppendUint32(nil, 1), nil, nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(3), []byte("c"), nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(1), []byte("a"), nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(2), []byte("b"), nil),
			producerMsg(gomemcached.DCP_SEQNO_ADV, 0, binary.BigEndian.AppendUint64(nil, 5), nil, nil),
			producerMsg(gomemcached.DCP_OSO_SNAPSHOT, 0, binary.BigEndian.AppendUint32(nil, 2), nil, nil),
			producerMsg(gomemcached.UPR_SNAPSHOT, 0, markerExtras(6, 7, 0x01|0x08), nil, nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(6), []byte("d"), nil),
		} {
			stream = append(stream, m...)
		}
		// A NOOP after the first of the snapshot's two seqnos: its answer
		// must come before the marker's.
		noop := gomemcached.MCRequest{Opcode: gomemcached.UPR_NOOP, Opaque: 99}
		c.Write(append(withOpaque(stream, opaque), noop.Bytes()...))
		if err := readReply(r, gomemcached.UPR_NOOP, gomemcached.UPR_SNAPSHOT); err != nil {
			acked <- fmt.Errorf("before the snapshot's end: %w", err)
			return
		}
		c.Write(withOpaque(append(producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(7), []byte("e"), nil),
			producerMsg(gomemcached.UPR_STREAMEND, 0, binary.BigEndian.AppendUint32(nil, 0), nil, nil)...), opaque))
		acked <- readReply(r, gomemcached.UPR_SNAPSHOT, 0)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "oso", OSO: true})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	var cps []string
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	err := f.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		cp := ev.Checkpoint
		cps = append(cps, fmt.Sprintf("%v:%d/%d-%d", ev.Kind, cp.Seqno, cp.SnapStart, cp.SnapEnd))
		if cp.VBUUID != 0xabc {
			t.Errorf("%v: checkpoint on history %#x", ev.Kind, cp.VBUUID)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := "[stream-start:0/0-0 oso-begin:0/0-0 mutation:0/0-0 mutation:0/0-0 mutation:0/0-0 seqno-advanced:0/0-0 " +
		"oso-end:5/5-5 snapshot:5/5-5 mutation:6/6-7 mutation:7/7-7 stream-end:7/7-7]"
	if got := fmt.Sprint(cps); got != want {
		t.Fatalf("checkpoints\n got %s\nwant %s", got, want)
	}
	select {
	case err := <-acked:
		if err != nil {
			t.Fatalf("the marker's answer: %v", err)
		}
	case <-time.After(feedWait):
		t.Fatal("the marker was not answered")
	}
}

// withOpaque sets the opaque of every packet of stream, in place, and
// returns it: a stream's messages carry its request's opaque.
func withOpaque(stream []byte, opaque uint32) []byte {
	for b := stream; len(b) >= gomemcached.HDR_LEN; b = b[gomemcached.HDR_LEN+int(binary.BigEndian.Uint32(b[8:])):] {
		binary.BigEndian.PutUint32(b[12:], opaque)
	}
	return stream
}

// readReply reads what a fake producer's consumer sends until a reply
// (a response) of op, failing on one of not first; it skips requests
// (BUFFER_ACKs).
func readReply(r *gomemcached.Reader, op, not gomemcached.CommandCode) error {
	for {
		var res gomemcached.MCResponse
		if err := r.ReadResponse(&res); err != nil {
			return fmt.Errorf("no %v reply: %w", op, err)
		}
		switch {
		case r.Magic() != 0x81:
		case res.Opcode == op:
			return nil
		case not != 0 && res.Opcode == not:
			return fmt.Errorf("a %v reply before the %v reply", not, op)
		}
	}
}

// TestFeedStreamIDFrames: with stream ids, a stream request carries its
// id in a frame and the producer's messages are routed by theirs. (A
// fake producer, as gocache's may lack stream ids.)
func TestFeedStreamIDFrames(t *testing.T) {
	sids := make(chan uint16, 2)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque1 uint32) {
		// The second stream's request: an alt request with a frame.
		var req gomemcached.MCRequest
		if err := r.ReadRequest(&req); err != nil || req.Opcode != gomemcached.UPR_STREAMREQ {
			return
		}
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: make([]byte, 16)}
		res.Transmit(c)
		var out []byte
		for _, sid := range []uint16{2, 1} {
			m := producerMsg(gomemcached.UPR_MUTATION, 6, mutationExtras(uint64(sid)), []byte("k"), nil)
			withOpaque(m, map[uint16]uint32{1: opaque1, 2: req.Opaque}[sid])
			alt := append([]byte{0x08, m[1], 3, m[3]}, m[4:24]...)
			binary.BigEndian.PutUint32(alt[8:], binary.BigEndian.Uint32(m[8:])+3)
			alt = append(alt, 0x22, 0, byte(sid))
			out = append(append(out, alt...), m[24:]...)
		}
		c.Write(out)
		io.Copy(io.Discard, c)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "sids", StreamIDs: true})
	if err := f.Add(memcached.StreamSpec{VBucket: 6, StreamID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 6, StreamID: 2}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	rec.hook = func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventMutation {
			if ev.Seqno != uint64(ev.StreamID) || ev.Checkpoint.Seqno != ev.Seqno {
				t.Errorf("stream %d: mutation %d, checkpoint %+v", ev.StreamID, ev.Seqno, ev.Checkpoint)
			}
			sids <- ev.StreamID
		}
		return nil
	}
	runFeed(t, f, rec)
	for range 2 {
		select {
		case <-sids:
		case <-time.After(feedWait):
			t.Fatal("a stream's mutation did not come")
		}
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 6, StreamID: 2}); !errors.Is(err, memcached.ErrFeedStreamExists) {
		t.Fatalf("Add of an open stream id: %v", err)
	}
}

// TestFeedAllocs: a feed allocates nothing per event.
func TestFeedAllocs(t *testing.T) {
	const events = 20000
	var stream []byte
	stream = append(stream, producerMsg(gomemcached.UPR_SNAPSHOT, 0, markerExtras(1, events, 1), nil, nil)...)
	for i := range events {
		stream = append(stream, producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(uint64(i+1)), []byte(fmt.Sprintf("key-%06d", i)), bytes.Repeat([]byte("v"), 100))...)
	}
	stream = append(stream, producerMsg(gomemcached.UPR_STREAMEND, 0, binary.BigEndian.AppendUint32(nil, 0), nil, nil)...)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque uint32) {
		c.Write(withOpaque(stream, opaque))
		io.Copy(io.Discard, c)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "allocs"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	err := f.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventMutation {
			n++
		}
		return nil
	}))
	runtime.ReadMemStats(&m1)
	if err != nil || n != events {
		t.Fatalf("Run: %v after %d mutations", err, n)
	}
	// A few for the stream's start and the read buffer, none per event.
	if allocs := m1.Mallocs - m0.Mallocs; allocs > events/100 {
		t.Fatalf("%d allocations for %d events", allocs, events)
	}
}

// TestFeedClose: Close ends Run with ErrFeedClosed; a second Run at the
// same time is refused; a closed feed takes no streams.
func TestFeedClose(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "close"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	rec.waitFor(t, "the stream start", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventStreamStart) == 1 })
	if err := f.Run(context.Background(), rec); !errors.Is(err, memcached.ErrFeedRunning) {
		t.Fatalf("a second Run: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := runErr(t, errc); !errors.Is(err, memcached.ErrFeedClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if err := f.Add(memcached.StreamSpec{VBucket: 1}); !errors.Is(err, memcached.ErrFeedClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestFeedOptions: NewFeed checks its options, and the server refuses a
// bad control.
func TestFeedOptions(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if _, err := memcached.NewFeed(ctx, dialT(t, addr), memcached.FeedOptions{}); err == nil {
		t.Fatal("NewFeed without a name")
	}
	if _, err := memcached.NewFeed(ctx, dialT(t, addr), memcached.FeedOptions{Name: "c", Collections: true}); err == nil {
		t.Fatal("a collections-aware feed on a client without collections")
	}
	_, err := memcached.NewFeed(ctx, dialT(t, addr), memcached.FeedOptions{Name: "p", Priority: "urgent"})
	if !errors.Is(err, gomemcached.ErrInvalidArguments) {
		t.Fatalf("a bad priority: %v", err)
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "ok", Priority: "high", DeleteTimes: true, Xattrs: true, NoValue: true})
	if err := f.Add(memcached.StreamSpec{VBucket: 0, StreamID: 3}); err == nil {
		t.Fatal("a stream id on a feed without stream ids")
	}
}

// TestFeedNoopGocache: on an idle stream gocache sends NOOPs every
// interval and closes a consumer that does not answer within two; the
// feed answers, so it lives on, and the producer's NOOPs keep it from
// thinking the producer dead.
func TestFeedNoopGocache(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 3 noop intervals")
	}
	_, addr := gocachetest.Start(t, gocache.Config{})
	kv := dialT(t, addr)
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "noop-gocache", NoopInterval: time.Second})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	_, errc := runFeed(t, f, rec)
	rec.waitFor(t, "the stream start", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventStreamStart) == 1 })
	select {
	case err := <-errc:
		t.Fatalf("Run ended on an idle stream: %v", err)
	case <-time.After(3 * time.Second):
	}
	if _, err := kv.Set(0, "late", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "a change after the idle time", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 1 })
}

// streamProducer is a fake DCP producer that answers every request with
// success but a stream request, which it hands to onStreamReq (the nth,
// from 1); it never answers BUFFER_ACKs, nor the controls that refuse
// says it does not support.
func streamProducer(t *testing.T, refuse map[string]bool, onStreamReq func(c net.Conn, req *gomemcached.MCRequest, n int)) string {
	t.Helper()
	return serveOne(t, func(c net.Conn) {
		r := gomemcached.NewReader(c)
		n := 0
		for {
			var req gomemcached.MCRequest
			if err := r.ReadRequest(&req); err != nil {
				return
			}
			switch {
			case r.Magic() != 0x80 && r.Magic() != 0x08:
				continue // an answer
			case req.Opcode == gomemcached.UPR_STREAMREQ:
				n++
				onStreamReq(c, &req, n)
				continue
			case req.Opcode == gomemcached.UPR_BUFFERACK:
				continue
			}
			res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
			if req.Opcode == gomemcached.UPR_CONTROL && refuse[string(req.Key)] {
				res.Status = gomemcached.EINVAL
			}
			if _, err := res.Transmit(c); err != nil {
				return
			}
		}
	})
}

// TestFeedRollbackUUID: a feed that has seen no failover log (one
// resuming from a saved checkpoint) asks again after a partial rollback
// on the checkpoint's history, which a producer that follows kv_engine's
// rules takes: a history it does not know would mean a rollback to 0
// (failover-table.cc, needsRollback).
func TestFeedRollbackUUID(t *testing.T) {
	uuids := make(chan uint64, 4)
	addr := streamProducer(t, nil, func(c net.Conn, req *gomemcached.MCRequest, n int) {
		start, uuid := binary.BigEndian.Uint64(req.Extras[8:]), binary.BigEndian.Uint64(req.Extras[24:])
		uuids <- uuid
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch {
		case start != 0 && uuid != 0xabc: // no common history
			res.Status, res.Body = gomemcached.ROLLBACK, binary.BigEndian.AppendUint64(nil, 0)
		case start == 100:
			res.Status, res.Body = gomemcached.ROLLBACK, binary.BigEndian.AppendUint64(nil, 60)
		default:
			res.Body = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 0xabc), 0)
		}
		res.Transmit(c)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollback-uuid"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0, From: memcached.Checkpoint{VBUUID: 0xabc, Seqno: 100, SnapStart: 60, SnapEnd: 120}}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	rec.hook = func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind != memcached.EventRollback {
			cancel()
		}
		return nil
	}
	if err := f.Run(ctx, rec); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	close(uuids)
	var asked []string
	for u := range uuids {
		asked = append(asked, fmt.Sprintf("%#x", u))
	}
	evs := rec.snapshot()
	if len(evs) != 2 || evs[0].Kind != memcached.EventRollback || evs[0].Seqno != 60 ||
		evs[0].Checkpoint != (memcached.Checkpoint{VBUUID: 0xabc, Seqno: 60, SnapStart: 60, SnapEnd: 60}) ||
		evs[1].Kind != memcached.EventStreamStart || evs[1].Checkpoint.Seqno != 60 {
		t.Fatalf("events %+v (requests on %v), want a rollback to 60 on 0xabc and the start there", evs, asked)
	}
	if fmt.Sprint(asked) != "[0xabc 0xabc]" {
		t.Fatalf("requests on histories %v, want [0xabc 0xabc]", asked)
	}
}

// TestFeedTooManyRollbacks: a stream rolled back again and again is
// given up, with an Err that matches both ErrFeedTooManyRollbacks and the
// producer's last answer.
func TestFeedTooManyRollbacks(t *testing.T) {
	addr := streamProducer(t, nil, func(c net.Conn, req *gomemcached.MCRequest, n int) {
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gomemcached.ROLLBACK, Body: binary.BigEndian.AppendUint64(nil, 5)}
		res.Transmit(c)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "rollbacks"})
	if err := f.Add(memcached.StreamSpec{VBucket: 3, From: memcached.Checkpoint{VBUUID: 0xabc, Seqno: 9}}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if err := f.Run(ctx, rec); err != nil {
		t.Fatalf("Run: %v", err)
	}
	evs := rec.snapshot()
	end := evs[len(evs)-1]
	var se *gomemcached.ServerError
	if end.Kind != memcached.EventStreamEnd || end.Reason != memcached.StreamEndRefused || end.Status != gomemcached.ROLLBACK ||
		!errors.Is(end.Err, memcached.ErrFeedTooManyRollbacks) || !errors.Is(end.Err, gomemcached.ErrRollback) ||
		!errors.As(end.Err, &se) || se.Status != gomemcached.ROLLBACK {
		t.Fatalf("last event %+v", end)
	}
	if n := count(evs, memcached.EventRollback); n < 2 {
		t.Fatalf("given up after %d rollbacks", n)
	}
}

// TestFeedStaleStreamEnd: a STREAM_END left over from a closed stream,
// arriving after the vbucket's stream was added again, does not end the
// new one: a stream's messages carry its request's opaque. (The producer
// refuses send_stream_end_on_client_close_stream, so that the feed ends
// the stream at the close's answer, yet sends the STREAM_END, as one
// does that took the control when NewFeed gave up waiting for its
// answer, or that had the end queued as the close came.)
func TestFeedStaleStreamEnd(t *testing.T) {
	var first uint32 // the first stream's opaque
	addr := streamProducer(t, map[string]bool{"send_stream_end_on_client_close_stream": true}, func(c net.Conn, req *gomemcached.MCRequest, n int) {
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 0xabc), 0)}
		res.Transmit(c)
		if n == 1 {
			first = req.Opaque
			return
		}
		// The stale end, then the new stream's data.
		out := withOpaque(producerMsg(gomemcached.UPR_STREAMEND, 0, binary.BigEndian.AppendUint32(nil, 1), nil, nil), first)
		out = append(out, withOpaque(append(producerMsg(gomemcached.UPR_SNAPSHOT, 0, markerExtras(1, 1, 1), nil, nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(1), []byte("k"), nil)...), req.Opaque)...)
		c.Write(out)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "stale-end"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	var kinds []string
	err := f.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		kinds = append(kinds, ev.Kind.String())
		switch ev.Kind {
		case memcached.EventStreamStart:
			if len(kinds) == 1 {
				return f.Remove(0, 0)
			}
		case memcached.EventStreamEnd:
			return f.Add(memcached.StreamSpec{VBucket: 0})
		case memcached.EventMutation:
			cancel()
		}
		return nil
	}))
	if want := "[stream-start stream-end stream-start snapshot mutation]"; !errors.Is(err, context.Canceled) || fmt.Sprint(kinds) != want {
		t.Fatalf("Run: %v after events %v, want %s", err, kinds, want)
	}
}

// TestFeedNewFeedFails: NewFeed fails, and closes the client, when an
// optional control is not answered in time (the server may have taken
// it), not only when one that is required is refused.
func TestFeedNewFeedFails(t *testing.T) {
	addr := serveOne(t, func(c net.Conn) {
		r := gomemcached.NewReader(c)
		for {
			var req gomemcached.MCRequest
			if err := r.ReadRequest(&req); err != nil {
				return
			}
			if string(req.Key) == "send_stream_end_on_client_close_stream" {
				continue // no answer
			}
			res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
			res.Transmit(c)
		}
	})
	c := dialT(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := memcached.NewFeed(ctx, c, memcached.FeedOptions{Name: "unanswered"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NewFeed: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), feedWait)
	defer cancel2()
	if _, err := c.Do(ctx2, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); !errors.Is(err, memcached.ErrClosed) {
		t.Fatalf("the client after NewFeed failed: %v", err)
	}
}

// TestFeedWriteStuck: a producer that floods the feed with NOOPs and
// reads none of its answers neither keeps Run from returning when its
// context ends nor keeps the feed alive past two noop intervals.
func TestFeedWriteStuck(t *testing.T) {
	flood := func(c net.Conn, req *gomemcached.MCRequest, n int) {
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: make([]byte, 16)}
		res.Transmit(c)
		noop := (&gomemcached.MCRequest{Opcode: gomemcached.UPR_NOOP}).Bytes()
		batch := bytes.Repeat(noop, 4096)
		for {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}
	t.Run("the context ends", func(t *testing.T) {
		f := newFeedT(t, streamProducer(t, nil, flood), memcached.FeedOptions{Name: "stuck-cancel"})
		if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- f.Run(ctx, newRec()) }()
		time.Sleep(time.Second) // the answers fill the socket's buffers
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(3 * time.Second):
			f.Close()
			<-errc
			t.Fatal("Run did not return 3 s after its context ended")
		}
	})
	t.Run("the producer reads nothing", func(t *testing.T) {
		const iv = 200 * time.Millisecond
		f := newFeedT(t, streamProducer(t, nil, flood), memcached.FeedOptions{Name: "stuck-dead", NoopInterval: iv})
		if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), feedWait)
		defer cancel()
		if err := f.Run(ctx, newRec()); !errors.Is(err, memcached.ErrFeedDead) {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestFeedTakeoverReplies: on a takeover stream the feed answers
// DCP_SET_VBUCKET_STATE (as kv_engine's consumer does, which the
// producer waits for) and a marker that asks for it at the snapshot's
// end, even when the handler fails on its last event.
func TestFeedTakeoverReplies(t *testing.T) {
	replies := make(chan error, 1)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque uint32) {
		var stream []byte
		for _, m := range [][]byte{
			producerMsg(gomemcached.DCP_SET_VBUCKET_STATE, 0, []byte{3}, nil, nil), // pending
			producerMsg(gomemcached.UPR_SNAPSHOT, 0, markerExtras(1, 2, 0x01|0x08), nil, nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(1), []byte("a"), nil),
			producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(2), []byte("b"), nil),
		} {
			stream = append(stream, m...)
		}
		c.Write(withOpaque(stream, opaque))
		if err := readReply(r, gomemcached.DCP_SET_VBUCKET_STATE, gomemcached.UPR_SNAPSHOT); err != nil {
			replies <- err
			return
		}
		replies <- readReply(r, gomemcached.UPR_SNAPSHOT, 0)
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "takeover"})
	if err := f.Add(memcached.StreamSpec{VBucket: 0, Flags: 0x01}); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop at the snapshot's end")
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	err := f.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		if ev.Kind == memcached.EventMutation && ev.Seqno == 2 {
			return errStop
		}
		return nil
	}))
	if !errors.Is(err, errStop) {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-replies:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(feedWait):
		t.Fatal("no replies")
	}
}

// TestFeedFlowControlUnknown: messages of opcodes the feed does not know
// are acknowledged too: the producer counts every message but a NOOP
// (flow-control.md).
func TestFeedFlowControlUnknown(t *testing.T) {
	const msgs, op = 20, gomemcached.CommandCode(0x6e) // no DCP message the feed knows
	acked := make(chan error, 1)
	addr := fakeProducer(t, func(c net.Conn, r *gomemcached.Reader, opaque uint32) {
		var stream []byte
		for range msgs {
			stream = append(stream, producerMsg(op, 0, make([]byte, 8), nil, nil)...)
		}
		c.Write(withOpaque(stream, opaque))
		total := 0
		for total < len(stream) {
			var req gomemcached.MCRequest
			if err := r.ReadRequest(&req); err != nil {
				acked <- fmt.Errorf("%d of %d bytes acknowledged: %w", total, len(stream), err)
				return
			}
			if r.Magic() == 0x80 && req.Opcode == gomemcached.UPR_BUFFERACK {
				total += int(binary.BigEndian.Uint32(req.Extras))
			}
		}
		if total != len(stream) {
			acked <- fmt.Errorf("%d of %d bytes acknowledged", total, len(stream))
			return
		}
		acked <- nil
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "unknown-acks", BufferSize: 1000})
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	runFeed(t, f, newRec())
	select {
	case err := <-acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(feedWait):
		t.Fatal("not acknowledged")
	}
}

// TestFeedBodyLimit: a feed keeps the body limit of when NewFeed made it:
// gomemcached.MaxBodyLen raised later neither races with the feed's
// reads nor lets a header make it allocate as much. (The producer reads
// without gomemcached.Reader, which reads the limit too.)
func TestFeedBodyLimit(t *testing.T) {
	addr := serveOne(t, func(c net.Conn) {
		hdr := make([]byte, gomemcached.HDR_LEN)
		for {
			if _, err := io.ReadFull(c, hdr); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[8:]))); err != nil {
				return
			}
			op, opaque := gomemcached.CommandCode(hdr[1]), binary.BigEndian.Uint32(hdr[12:])
			if hdr[0] != 0x80 || op == gomemcached.UPR_BUFFERACK {
				continue
			}
			res := gomemcached.MCResponse{Opcode: op, Opaque: opaque}
			if op == gomemcached.UPR_STREAMREQ {
				res.Body = make([]byte, 16)
			}
			c.Write(res.Bytes())
			if op == gomemcached.UPR_STREAMREQ {
				// A mutation's header announcing a body of 512 MiB.
				m := withOpaque(producerMsg(gomemcached.UPR_MUTATION, 0, mutationExtras(1), []byte("k"), nil), opaque)
				binary.BigEndian.PutUint32(m[8:], 512<<20)
				c.Write(m[:gomemcached.HDR_LEN])
			}
		}
	})
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "body-limit"})
	old := gomemcached.MaxBodyLen
	gomemcached.MaxBodyLen = 1 << 30
	t.Cleanup(func() { gomemcached.MaxBodyLen = old })
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if err := f.Run(ctx, newRec()); !errors.Is(err, memcached.ErrFeedMalformed) {
		t.Fatalf("Run: %v", err)
	}
}
