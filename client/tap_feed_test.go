package memcached

// End-to-end tests of the TAP feed against gocache's producer, in
// process, and of its decoding of what gocache does not send (a
// producer's engine-specific data).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	refc "github.com/couchbase/gomemcached/client"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// tapWait bounds each wait for an event.
const tapWait = 5 * time.Second

// tapGocache starts gocache with vbs vbuckets and returns a client for
// documents and one for the feed.
func tapGocache(t *testing.T, vbs int) (kv, feed *Client) {
	t.Helper()
	cfg := gocache.Config{}
	cfg.Cache.VBuckets = vbs
	_, addr := gocachetest.Start(t, cfg)
	return dialT(t, addr), dialT(t, addr)
}

// tapNext returns the feed's next event; ok is false once C is closed.
func tapNext(t *testing.T, feed *TapFeed) (TapEvent, bool) {
	t.Helper()
	select {
	case e, ok := <-feed.C:
		return e, ok
	case <-time.After(tapWait):
		t.Fatal("no tap event within 5s")
	}
	return TapEvent{}, false
}

// tapAll returns the feed's events until C is closed (at most max).
func tapAll(t *testing.T, feed *TapFeed, max int) []TapEvent {
	t.Helper()
	var evs []TapEvent
	for range max {
		e, ok := tapNext(t, feed)
		if !ok {
			return evs
		}
		evs = append(evs, e)
	}
	t.Fatalf("more than %d events", max)
	return nil
}

type tapDoc struct {
	vb    uint16
	value []byte
	flags uint32
	cas   uint64
}

// tapWrite stores n documents over vbs vbuckets, values of every byte.
func tapWrite(t *testing.T, kv *Client, n, vbs int) map[string]tapDoc {
	t.Helper()
	want := map[string]tapDoc{}
	for i := range n {
		k := fmt.Sprintf("tap-%d", i)
		v := make([]byte, i*41)
		for j := range v {
			v[j] = byte(3*i + j)
		}
		flags := uint32(i) * 0x10203
		vb := uint16(i % vbs)
		res, err := kv.Set(vb, k, int(flags), 0, v)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = tapDoc{vb, v, flags, res.Cas}
	}
	return want
}

// checkMutation checks e against the document written.
func checkMutation(t *testing.T, e TapEvent, want map[string]tapDoc) {
	t.Helper()
	d, ok := want[string(e.Key)]
	if !ok || e.Opcode != TapMutation || e.VBucket != d.vb || !bytes.Equal(e.Value, d.value) || e.Flags != d.flags || e.Cas != d.cas {
		t.Fatalf("%s vb %d cas %d: want vb %d flags %x cas %d (known %v)", e, e.VBucket, e.Cas, d.vb, d.flags, d.cas, ok)
	}
}

// TestTapFeedDump: a dump has every document once, byte for byte, within
// its vbucket's backfill, then the feed ends without error and closes the
// client.
func TestTapFeedDump(t *testing.T) {
	kv, fc := tapGocache(t, 4)
	want := tapWrite(t, kv, 10, 4)
	feed, err := fc.StartTapFeed(TapArguments{Dump: true})
	if err != nil {
		t.Fatal(err)
	}
	if fc.IsHealthy() {
		t.Fatal("a feed's client is healthy: a pool would lend it")
	}
	in := map[uint16]bool{}
	got := map[string]bool{}
	for _, e := range tapAll(t, feed, 100) {
		switch e.Opcode {
		case TapBeginBackfill:
			in[e.VBucket] = true
		case TapEndBackfill:
			if !in[e.VBucket] {
				t.Fatalf("%s outside a backfill", e)
			}
			in[e.VBucket] = false
		default:
			checkMutation(t, e, want)
			if !in[e.VBucket] || got[string(e.Key)] {
				t.Fatalf("%s outside its backfill, or again", e)
			}
			got[string(e.Key)] = true
		}
	}
	if len(got) != len(want) || len(in) != 4 || feed.Error != nil {
		t.Fatalf("%d of %d keys, %d vbuckets, error %v", len(got), len(want), len(in), feed.Error)
	}
	if _, err := fc.Get(0, "tap-0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("the feed's client after the end: %v, want ErrClosed", err)
	}
}

// tapSync writes a key until the feed shows it.
func tapSync(t *testing.T, kv *Client, feed *TapFeed) {
	t.Helper()
	for range 50 {
		if _, err := kv.Set(0, "sync", 0, 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		select {
		case e, ok := <-feed.C:
			if !ok {
				t.Fatalf("feed ended: %v", feed.Error)
			}
			if e.Opcode == TapMutation && string(e.Key) == "sync" {
				return
			}
			t.Fatalf("before sync: %s", e)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the feed never followed changes")
}

// TestTapFeedLive: only new changes (the default arguments), in order,
// with acks asked for and given; Close ends the feed at once.
func TestTapFeedLive(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprintf("ack=%v", ack), func(t *testing.T) {
			kv, fc := tapGocache(t, 2)
			tapWrite(t, kv, 4, 2)
			args := DefaultTapArguments()
			args.SupportAck = ack
			feed, err := fc.StartTapFeed(args)
			if err != nil {
				t.Fatal(err)
			}
			tapSync(t, kv, feed)
			want := map[string]tapDoc{}
			var keys []string
			for i := range 1500 { // past the ack interval
				k := fmt.Sprintf("live-%d", i)
				v := []byte(strings.Repeat("v", i%50))
				res, err := kv.Set(uint16(i%2), k, i, 0, v)
				if err != nil {
					t.Fatal(err)
				}
				want[k] = tapDoc{uint16(i % 2), v, uint32(i), res.Cas}
				keys = append(keys, k)
			}
			if _, err := kv.Del(1, "live-1"); err != nil {
				t.Fatal(err)
			}
			// In order within each vbucket; the deletion after vbucket
			// 1's mutations.
			next := map[uint16]int{0: 0, 1: 1}
			deleted := false
			for range len(keys) + 1 {
				e, ok := tapNext(t, feed)
				if !ok {
					t.Fatalf("ended: %v", feed.Error)
				}
				if e.Opcode == TapDeletion {
					if string(e.Key) != "live-1" || e.VBucket != 1 || e.Cas == 0 || next[1] < len(keys) || deleted {
						t.Fatalf("got %s cas %d after %d of vbucket 1's mutations", e, e.Cas, next[1]/2)
					}
					deleted = true
					continue
				}
				checkMutation(t, e, want)
				if next[e.VBucket] >= len(keys) || string(e.Key) != keys[next[e.VBucket]] {
					t.Fatalf("got %s, out of order in vb %d", e, e.VBucket)
				}
				next[e.VBucket] += 2
			}
			if !deleted {
				t.Fatal("no deletion")
			}
			feed.Close()
			feed.Close()
			if _, ok := tapNext(t, feed); ok {
				t.Fatal("an event after Close")
			}
			if feed.Error != nil {
				t.Fatalf("error after Close: %v", feed.Error)
			}
		})
	}
}

// TestTapFeedVBuckets: a feed of the listed vbuckets only.
func TestTapFeedVBuckets(t *testing.T) {
	kv, fc := tapGocache(t, 4)
	want := tapWrite(t, kv, 16, 4)
	feed, err := fc.StartTapFeed(TapArguments{Dump: true, VBuckets: []uint16{1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tapAll(t, feed, 100) {
		if e.VBucket != 1 && e.VBucket != 3 {
			t.Fatalf("%s of vbucket %d", e, e.VBucket)
		}
		if e.Opcode == TapMutation {
			checkMutation(t, e, want)
			n++
		}
	}
	if n != 8 || feed.Error != nil {
		t.Fatalf("%d keys, want 8; error %v", n, feed.Error)
	}
}

// TestTapFeedCheckpointsAcks: with checkpoints and acks, each vbucket's
// backfill is one checkpoint; the dump ends, which it does only if the
// feed acknowledges what the producer waits for.
func TestTapFeedCheckpointsAcks(t *testing.T) {
	kv, fc := tapGocache(t, 2)
	want := tapWrite(t, kv, 6, 2)
	feed, err := fc.StartTapFeed(TapArguments{Dump: true, SupportAck: true, Checkpoint: true, KeysOnly: false})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range tapAll(t, feed, 100) {
		ops = append(ops, fmt.Sprintf("%s/%d", e.Opcode, e.VBucket))
		if e.Opcode == TapMutation {
			checkMutation(t, e, want)
		}
	}
	wantOps := "[BeginBackfill/0 TapCheckpointStart/0 Mutation/0 Mutation/0 Mutation/0 TapCheckpointEnd/0 EndBackfill/0 " +
		"BeginBackfill/1 TapCheckpointStart/1 Mutation/1 Mutation/1 Mutation/1 TapCheckpointEnd/1 EndBackfill/1]"
	if fmt.Sprint(ops) != wantOps || feed.Error != nil {
		t.Fatalf("events %v\nwant %s; error %v", ops, wantOps, feed.Error)
	}
}

// TestTapFeedKeysOnly: mutations without values.
func TestTapFeedKeysOnly(t *testing.T) {
	kv, fc := tapGocache(t, 1)
	want := tapWrite(t, kv, 3, 1)
	feed, err := fc.StartTapFeed(TapArguments{Dump: true, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tapAll(t, feed, 20) {
		if e.Opcode == TapMutation {
			if d := want[string(e.Key)]; len(e.Value) != 0 || e.Flags != d.flags {
				t.Fatalf("%s: want no value, flags %x", e, d.flags)
			}
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d keys", n)
	}
}

// TestTapFeedTakeover: a takeover of vbucket 1 sends its documents and
// ends; the vbucket is then dead at the producer.
func TestTapFeedTakeover(t *testing.T) {
	kv, fc := tapGocache(t, 4)
	want := tapWrite(t, kv, 12, 4)
	feed, err := fc.StartTapFeed(TapArguments{Takeover: true, VBuckets: []uint16{1}, SupportAck: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tapAll(t, feed, 100) {
		if e.VBucket != 1 {
			t.Fatalf("%s of vbucket %d", e, e.VBucket)
		}
		if e.Opcode == TapMutation {
			checkMutation(t, e, want)
			n++
		}
	}
	if n != 3 || feed.Error != nil {
		t.Fatalf("%d keys, error %v", n, feed.Error)
	}
	if _, err := kv.Get(1, "tap-1"); !errors.Is(err, gomemcached.ErrNotMyVBucket) {
		t.Fatalf("vbucket taken over: %v, want NOT_MY_VBUCKET", err)
	}
	if _, err := kv.Get(2, "tap-2"); err != nil {
		t.Fatalf("another vbucket: %v", err)
	}
}

// TestTapFeedRefused: a connect the producer refuses ends the feed with
// an error that carries its response.
func TestTapFeedRefused(t *testing.T) {
	_, fc := tapGocache(t, 4)
	feed, err := fc.StartTapFeed(TapArguments{VBuckets: []uint16{4}})
	if err != nil {
		t.Fatal(err)
	}
	if evs := tapAll(t, feed, 10); len(evs) != 0 {
		t.Fatalf("events %v", evs)
	}
	var res *gomemcached.MCResponse
	if !errors.Is(feed.Error, gomemcached.ErrInvalidArguments) || !errors.As(feed.Error, &res) ||
		res.Opcode != gomemcached.TAP_CONNECT || !strings.Contains(feed.Error.Error(), "tap connection failed") {
		t.Fatalf("error %v", feed.Error)
	}
}

// TestTapRequestEngineData: a producer's engine-specific data (ep-engine
// sent a revision seqno with each mutation), which the wire puts between
// the extras and the key, is read as the end of the extras, the key and
// value after it.
func TestTapRequestEngineData(t *testing.T) {
	ex := make([]byte, 16)
	binary.BigEndian.PutUint16(ex[0:], 8) // engine-specific length
	binary.BigEndian.PutUint16(ex[2:], gomemcached.TAP_ACK)
	ex[4] = 0xff
	binary.BigEndian.PutUint32(ex[8:], 0xdeadbeef) // item flags
	binary.BigEndian.PutUint32(ex[12:], 77)        // expiry
	var wire []byte
	wire = append(wire, gomemcached.REQ_MAGIC, byte(gomemcached.TAP_MUTATION), 0, 3, 16, 0, 0, 9)
	wire = binary.BigEndian.AppendUint32(wire, 16+8+3+5) // body
	wire = binary.BigEndian.AppendUint32(wire, 42)       // opaque
	wire = binary.BigEndian.AppendUint64(wire, 1234)     // cas
	wire = append(wire, ex...)
	wire = append(wire, 1, 2, 3, 4, 5, 6, 7, 8) // engine-specific
	wire = append(wire, "key"...)
	wire = append(wire, "value"...)
	var res gomemcached.MCResponse
	if _, err := res.Receive(bytes.NewReader(wire), nil); err != nil {
		t.Fatal(err)
	}
	rq, err := tapRequest(rawPacket{res: &res, magic: wire[0], size: len(wire)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rq.Extras) != 24 || !bytes.Equal(rq.Extras[16:], []byte{1, 2, 3, 4, 5, 6, 7, 8}) || string(rq.Key) != "key" ||
		string(rq.Body) != "value" || rq.VBucket != 9 || rq.Opaque != 42 {
		t.Fatalf("extras %x key %q body %q vb %d opaque %d", rq.Extras, rq.Key, rq.Body, rq.VBucket, rq.Opaque)
	}
	e, ok := makeTapEvent(rq)
	if !ok || e.Opcode != TapMutation || e.Flags != 0xdeadbeef || e.Expiry != 77 || e.Cas != 1234 || string(e.Value) != "value" {
		t.Fatalf("event %s (%v)", e, ok)
	}
	// Engine data longer than the body: an error, not a panic.
	binary.BigEndian.PutUint16(res.Extras, 9)
	res.Body = res.Body[:8]
	if _, err := tapRequest(rawPacket{res: &res, magic: wire[0]}); err == nil {
		t.Fatal("engine data past the body accepted")
	}
}

// TestTapStrings: events and opcodes print as the reference's.
func TestTapStrings(t *testing.T) {
	for op := TapBeginBackfill; op <= tapEndStream+1; op++ {
		if got, want := op.String(), refc.TapOpcode(op).String(); got != want {
			t.Errorf("opcode %d: %q, reference %q", op, got, want)
		}
	}
	for _, e := range []TapEvent{
		{Opcode: TapMutation, VBucket: 3, Flags: 0xab, Expiry: 9, Key: []byte("k\x00"), Value: []byte("vv"), Cas: 7},
		{Opcode: TapDeletion, Key: []byte("d")},
		{Opcode: TapCheckpointStart, VBucket: 12},
		{Opcode: TapBeginBackfill, VBucket: 1},
	} {
		r := refc.TapEvent{Opcode: refc.TapOpcode(e.Opcode), VBucket: e.VBucket, Flags: e.Flags, Expiry: e.Expiry,
			Key: e.Key, Value: e.Value, Cas: e.Cas}
		if e.String() != r.String() {
			t.Errorf("%q, reference %q", e.String(), r.String())
		}
	}
	args := TapArguments{Backfill: 5, Dump: true, VBuckets: []uint16{1, 2}, Takeover: true, SupportAck: true,
		KeysOnly: true, Checkpoint: true, RegisteredClient: true}
	// The wire of TAP.md's complex example, flags aside.
	if f := binary.BigEndian.Uint32(args.flags()); f != 0xff {
		t.Errorf("flags %x", f)
	}
	if b := args.bytes(); !bytes.Equal(b, []byte{0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 1, 0, 2}) {
		t.Errorf("body %x", b)
	}
	if d := DefaultTapArguments(); d.Backfill != TapNoBackfill || len(d.flags()) != 4 || binary.BigEndian.Uint32(d.flags()) != 1 {
		t.Errorf("defaults %+v", d)
	}
}

// TestTapRecvHook: the hook sees every message the feed receives, and
// the end.
func TestTapRecvHook(t *testing.T) {
	kv, fc := tapGocache(t, 1)
	tapWrite(t, kv, 3, 1)
	var ops []gomemcached.CommandCode
	var ended error
	TapRecvHook = func(rq *gomemcached.MCRequest, n int, err error) {
		if err != nil {
			ended = err
			return
		}
		if n < gomemcached.HDR_LEN {
			t.Errorf("%s of %d bytes", rq.Opcode, n)
		}
		ops = append(ops, rq.Opcode)
	}
	defer func() { TapRecvHook = nil }()
	feed, err := fc.StartTapFeed(TapArguments{Dump: true})
	if err != nil {
		t.Fatal(err)
	}
	tapAll(t, feed, 10)
	// Read after C is closed: the goroutine wrote them before.
	want := "[TAP_OPAQUE TAP_MUTATION TAP_MUTATION TAP_MUTATION TAP_OPAQUE TAP_OPAQUE]"
	if fmt.Sprint(ops) != want || ended != nil {
		t.Fatalf("hook saw %v (end %v), want %s", ops, ended, want)
	}
}
