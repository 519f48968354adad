package gocache_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	ourmc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// dcpManifest adds, to the default manifest (uid 0), collection c9 (0x9)
// in the default scope and scope s8 (0x8) holding collection ca (0xa,
// maxTTL 100): per vbucket the events scope s8 created (seqno 1, uid 0),
// c9 created (2, uid 0), ca created (3, uid 2: the last one carries the
// manifest's uid).
const dcpManifest = `{"uid":"2","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"c9","uid":"9"}]},{"name":"s8","uid":"8","collections":[{"name":"ca","uid":"a","maxTTL":100}]}]}`

// dcpManifestDrop9 is dcpManifest without c9.
const dcpManifestDrop9 = `{"uid":"3","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},{"name":"s8","uid":"8","collections":[{"name":"ca","uid":"a","maxTTL":100}]}]}`

// collConn is a raw connection with HELLO Collections (and the features
// given).
func collConn(t *testing.T, addr string, features ...gm.Feature) *dcpConn {
	t.Helper()
	d := dialDCP(t, addr)
	body := binary.BigEndian.AppendUint16(nil, uint16(gm.FeatureCollections))
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	if res := d.call(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("dcp-collections"), Body: body}); len(res.Body) != len(body) {
		t.Fatalf("HELLO: %x, want %x", res.Body, body)
	}
	return d
}

// openCollDCP opens a collections-aware producer connection.
func openCollDCP(t *testing.T, addr, name string, flags uint32, features ...gm.Feature) *dcpConn {
	t.Helper()
	d := collConn(t, addr, features...)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER|flags)
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte(name), Extras: ex}); res.VBucket != 0 {
		t.Fatalf("DCP_OPEN: 0x%x", res.VBucket)
	}
	return d
}

// setManifest applies a collections manifest.
func setManifest(t *testing.T, d *dcpConn, m string) {
	t.Helper()
	if res := d.call(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(m)}); res.VBucket != 0 {
		t.Fatalf("SET_MANIFEST: 0x%x %s", res.VBucket, res.Body)
	}
}

// setIn stores key in collection cid of vbucket vb.
func setIn(t *testing.T, d *dcpConn, vb uint16, cid uint32, key, value string) {
	t.Helper()
	req := gm.MCRequest{Opcode: gm.SET, VBucket: vb, Key: cache.CollectionKey(nil, cid, []byte(key)), Body: []byte(value), Extras: make([]byte, 8)}
	if res := d.call(req); res.VBucket != 0 {
		t.Fatalf("SET %d/%s: 0x%x", cid, key, res.VBucket)
	}
}

// startCollections starts a server of 4 vbuckets with dcpManifest, and
// returns its address and a collections-aware KV connection.
func startCollections(t *testing.T, cfg gocache.Config) (string, *dcpConn) {
	t.Helper()
	if cfg.Cache.VBuckets == 0 {
		cfg.Cache.VBuckets = 4
	}
	_, addr := gocachetest.Start(t, cfg)
	w := collConn(t, addr)
	setManifest(t, w, dcpManifest)
	return addr, w
}

// streamMsgs reads stream messages until one with opcode last, and
// returns them all.
func streamMsgs(t *testing.T, d *dcpConn, last gm.CommandCode) []gm.MCRequest {
	t.Helper()
	var got []gm.MCRequest
	for range 1000 {
		pkt, magic := d.must()
		if magic == gm.RES_MAGIC {
			t.Fatalf("unexpected response %s 0x%x", pkt.Opcode, pkt.VBucket)
		}
		got = append(got, pkt)
		if pkt.Opcode == last {
			return got
		}
	}
	t.Fatal("no end")
	return nil
}

func be64(v uint64) []byte    { return binary.BigEndian.AppendUint64(nil, v) }
func be32(v uint32) []byte    { return binary.BigEndian.AppendUint32(nil, v) }
func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// sysExtras is a system event's extras: seqno(8) event(4) version(1).
func sysExtras(seqno uint64, event uint32, version byte) []byte {
	return append(cat(be64(seqno), be32(event)), version)
}

// wantMsg checks a stream message's opcode, extras, key and value.
func wantMsg(t *testing.T, pkt gm.MCRequest, op gm.CommandCode, extras, key, value []byte) {
	t.Helper()
	if pkt.Opcode != op || !bytes.Equal(pkt.Extras, extras) || !bytes.Equal(pkt.Key, key) || !bytes.Equal(pkt.Body, value) {
		t.Fatalf("got %s extras %x key %q value %x\nwant %s extras %x key %q value %x",
			pkt.Opcode, pkt.Extras, pkt.Key, pkt.Body, op, extras, key, value)
	}
}

// marker1 is a version 1 marker's extras.
func marker1(start, end uint64, typ uint32) []byte { return cat(be64(start), be64(end), be32(typ)) }

// TestDCPSystemEvents: a collections-aware stream gets the manifest's
// system events in seqno order with the documents, in the fixed layouts
// of system_event.md (scope creation uid+scope; collection creation
// uid+scope+cid, version 1 with maxTTL; drop uid+scope+cid without a
// key), in the backfill and live; a connection that is not
// collections-aware never sees them.
func TestDCPSystemEvents(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k1", "v1") // seqno 4
	setIn(t, w, 0, 0, "d1", "v2") // seqno 5
	d := openCollDCP(t, addr, "events", 0)
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	var got []gm.MCRequest
	for range 6 {
		pkt, _ := d.must()
		got = append(got, pkt)
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 5, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(1, 3, 0), []byte("s8"), cat(be64(0), be32(8)))
	wantMsg(t, got[2], gm.DCP_SYSTEM_EVENT, sysExtras(2, 0, 0), []byte("c9"), cat(be64(0), be32(0), be32(9)))
	wantMsg(t, got[3], gm.DCP_SYSTEM_EVENT, sysExtras(3, 0, 1), []byte("ca"), cat(be64(2), be32(8), be32(0xa), be32(100)))
	if got[4].Opcode != gm.UPR_MUTATION || string(got[4].Key) != "\x09k1" || got[5].Opcode != gm.UPR_MUTATION || string(got[5].Key) != "\x00d1" {
		t.Fatalf("documents: %s %q, %s %q", got[4].Opcode, got[4].Key, got[5].Opcode, got[5].Key)
	}
	// Live: c9 dropped.
	setManifest(t, w, dcpManifestDrop9)
	m, _ := d.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(6, 6, 0x05), nil, nil)
	ev, _ := d.must()
	wantMsg(t, ev, gm.DCP_SYSTEM_EVENT, sysExtras(6, 1, 0), nil, cat(be64(3), be32(0), be32(9)))
	// A new stream's backfill has the drop in place of the creation.
	if res := d.call(streamReq(1, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream vb 1: 0x%x", res.VBucket)
	}
	got = got[:0]
	for range 4 {
		pkt, _ := d.must()
		got = append(got, pkt)
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 4, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(1, 3, 0), []byte("s8"), cat(be64(0), be32(8)))
	wantMsg(t, got[2], gm.DCP_SYSTEM_EVENT, sysExtras(3, 0, 1), []byte("ca"), cat(be64(2), be32(8), be32(0xa), be32(100)))
	wantMsg(t, got[3], gm.DCP_SYSTEM_EVENT, sysExtras(4, 1, 0), nil, cat(be64(3), be32(0), be32(9)))

	// Not collections-aware: the default collection only, no events.
	legacy := openDCP(t, addr, "legacy", 0)
	if res := legacy.call(streamReq(0, 0, 0, 6, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("legacy stream: 0x%x", res.VBucket)
	}
	msgs := streamMsgs(t, legacy, gm.UPR_STREAMEND)
	var ops []string
	for _, pkt := range msgs {
		ops = append(ops, fmt.Sprintf("%s:%s", pkt.Opcode, pkt.Key))
	}
	if fmt.Sprint(ops) != "[UPR_SNAPSHOT: UPR_MUTATION:d1 UPR_STREAMEND:]" {
		t.Fatalf("legacy stream: %v", ops)
	}
}

// TestDCPCollectionFilter: a stream of one collection gets its
// documents and events only, a SEQNO_ADVANCED where its disk snapshot
// ends with another's change, and, when the collection is dropped, the
// drop and STREAM_END "filter empty"; unknown collections and scopes,
// bad values and values without collections are refused.
func TestDCPCollectionFilter(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k1", "v1") // 4
	setIn(t, w, 0, 0, "d1", "v2") // 5
	d := openCollDCP(t, addr, "filter", 0)
	for _, tc := range []struct {
		name   string
		value  string
		status gm.Status
		body   string
	}{
		{"UnknownCollection", `{"collections":["77"]}`, gm.UNKNOWN_COLLECTION, `{"manifest_uid":"2"}`},
		{"UnknownScope", `{"scope":"77"}`, gm.UNKNOWN_SCOPE, `{"manifest_uid":"2"}`},
		{"ScopeAndCollections", `{"scope":"8","collections":["a"]}`, gm.EINVAL, ""},
		{"NotJSON", `{"collections":`, gm.EINVAL, ""},
		{"NothingKnown", `{"other":1}`, gm.EINVAL, ""},
		{"CollectionsNotList", `{"collections":"9"}`, gm.EINVAL, ""},
		{"StreamIDWithoutControl", `{"sid":3}`, gm.DCP_STREAMID_INVALID, ""},
		{"StreamIDZero", `{"sid":0}`, gm.DCP_STREAMID_INVALID, ""},
		{"BadPurgeSeqno", `{"purge_seqno":12}`, gm.EINVAL, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := streamReq(2, 0, 0, math.MaxUint64, 0, 0, 0)
			req.Body = []byte(tc.value)
			res := d.call(req)
			if gm.Status(res.VBucket) != tc.status || tc.body != "" && string(res.Body) != tc.body {
				t.Fatalf("status 0x%x body %s, want 0x%x %s", res.VBucket, res.Body, uint16(tc.status), tc.body)
			}
		})
	}
	legacy := openDCP(t, addr, "legacy", 0)
	req := streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)
	req.Body = []byte(`{"collections":["9"]}`)
	if res := legacy.call(req); gm.Status(res.VBucket) != gm.EINVAL {
		t.Fatalf("filter without collections: 0x%x", res.VBucket)
	}

	if res := d.call(req); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x %s", res.VBucket, res.Body)
	}
	var got []gm.MCRequest
	for range 4 {
		pkt, _ := d.must()
		got = append(got, pkt)
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 5, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(2, 0, 0), []byte("c9"), cat(be64(0), be32(0), be32(9)))
	if got[2].Opcode != gm.UPR_MUTATION || string(got[2].Key) != "\x09k1" {
		t.Fatalf("document: %s %q", got[2].Opcode, got[2].Key)
	}
	wantMsg(t, got[3], gm.DCP_SEQNO_ADV, be64(5), nil, nil)
	// Live: another collection's change is not sent; c9's is.
	setIn(t, w, 0, 0xa, "x", "v") // 6
	setIn(t, w, 0, 9, "k2", "v")  // 7
	m, _ := d.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(7, 7, 0x05), nil, nil)
	if mu, _ := d.must(); mu.Opcode != gm.UPR_MUTATION || string(mu.Key) != "\x09k2" {
		t.Fatalf("live: %s %q", mu.Opcode, mu.Key)
	}
	setManifest(t, w, dcpManifestDrop9) // 8
	m, _ = d.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(8, 8, 0x05), nil, nil)
	ev, _ := d.must()
	wantMsg(t, ev, gm.DCP_SYSTEM_EVENT, sysExtras(8, 1, 0), nil, cat(be64(3), be32(0), be32(9)))
	end, _ := d.must()
	wantMsg(t, end, gm.UPR_STREAMEND, be32(7), nil, nil)

	// A scope's stream: its collection ca, and ca's creation.
	req = streamReq(0, 0, 0, 8, 0, 0, 0)
	req.Body = []byte(`{"scope":"8"}`)
	if res := d.call(req); res.VBucket != 0 {
		t.Fatalf("scope stream: 0x%x %s", res.VBucket, res.Body)
	}
	var ops []string
	for _, pkt := range streamMsgs(t, d, gm.UPR_STREAMEND) {
		ops = append(ops, fmt.Sprintf("%s:%q", pkt.Opcode, pkt.Key))
	}
	want := `[UPR_SNAPSHOT:"" DCP_SYSTEM_EVENT:"s8" DCP_SYSTEM_EVENT:"ca" UPR_MUTATION:"\nx" DCP_SEQNO_ADV:"" UPR_STREAMEND:""]`
	if fmt.Sprint(ops) != want {
		t.Fatalf("scope stream: %v, want %s", ops, want)
	}
}

// TestDCPStreamIDs: with enable_stream_id, streams are named by the
// value's sid: two on one vbucket, each message tagged with its
// stream-id frame (magic 0x08, frame 0x22 and the id); a stream id is
// required, unique per vbucket, and names the stream to close.
func TestDCPStreamIDs(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k1", "v1") // 4
	setIn(t, w, 0, 0, "d1", "v2") // 5
	d := openCollDCP(t, addr, "sids", 0)
	if st := d.control("enable_stream_id", "true"); st != 0 {
		t.Fatalf("enable_stream_id: 0x%x", st)
	}
	req := func(value string) gm.MCRequest {
		r := streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)
		r.Body = []byte(value)
		return r
	}
	if res := d.call(req(`{"collections":["9"]}`)); gm.Status(res.VBucket) != gm.DCP_STREAMID_INVALID {
		t.Fatalf("no stream id: 0x%x", res.VBucket)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); gm.Status(res.VBucket) != gm.DCP_STREAMID_INVALID {
		t.Fatalf("no value: 0x%x", res.VBucket)
	}
	// The three streams' answers come between their messages.
	framed := req(`{"collections":["a"]}`)
	framed.FramingExtras = []gm.FrameInfo{gm.NewStreamIDFrame(3)} // the frame says it as well as "sid"
	answers := map[uint32]gm.Status{}
	want := map[uint32]gm.Status{
		d.send(req(`{"collections":["9"],"sid":1}`)): gm.SUCCESS,
		d.send(req(`{"collections":["0"],"sid":2}`)): gm.SUCCESS,
		d.send(req(`{"collections":["0"],"sid":2}`)): gm.KEY_EEXISTS,
		d.send(framed): gm.SUCCESS,
	}
	keys := map[uint16][]string{}
	deadline := time.Now().Add(5 * time.Second)
	for len(answers) < len(want) || len(keys[1]) < 4 || len(keys[2]) < 2 || len(keys[3]) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("messages by stream id: %v, answers %v", keys, answers)
		}
		pkt, magic := d.must()
		if magic == gm.RES_MAGIC {
			answers[pkt.Opaque] = gm.Status(pkt.VBucket)
			continue
		}
		raw, err := pkt.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		// Header: magic 0x08, byte 2 the framing extras' length (3),
		// then the frame: id 2, length 2 (0x22), the stream id.
		if magic != gm.FLEX_MAGIC || raw[0] != gm.FLEX_MAGIC || raw[2] != 3 || raw[24] != 0x22 {
			t.Fatalf("%s: magic 0x%x header %x", pkt.Opcode, magic, raw[:min(len(raw), 27)])
		}
		sid := binary.BigEndian.Uint16(raw[25:])
		keys[sid] = append(keys[sid], fmt.Sprintf("%s:%q", pkt.Opcode, pkt.Key))
	}
	for op, st := range want {
		if answers[op] != st {
			t.Fatalf("answers %v, want %v", answers, want)
		}
	}
	want1 := `[UPR_SNAPSHOT:"" DCP_SYSTEM_EVENT:"c9" UPR_MUTATION:"\tk1" DCP_SEQNO_ADV:""]`
	want2 := `[UPR_SNAPSHOT:"" UPR_MUTATION:"\x00d1"]`
	want3 := `[UPR_SNAPSHOT:"" DCP_SYSTEM_EVENT:"ca" DCP_SEQNO_ADV:""]`
	if fmt.Sprint(keys[1]) != want1 || fmt.Sprint(keys[2]) != want2 || fmt.Sprint(keys[3]) != want3 {
		t.Fatalf("stream 1: %v\nstream 2: %v\nstream 3: %v", keys[1], keys[2], keys[3])
	}
	// Closes: a stream id is required, and must name a stream.
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM}); gm.Status(res.VBucket) != gm.DCP_STREAMID_INVALID {
		t.Fatalf("close without id: 0x%x", res.VBucket)
	}
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, FramingExtras: []gm.FrameInfo{gm.NewStreamIDFrame(9)}}); gm.Status(res.VBucket) != gm.DCP_STREAMID_INVALID {
		t.Fatalf("close of an unknown id: 0x%x", res.VBucket)
	}
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, FramingExtras: []gm.FrameInfo{gm.NewStreamIDFrame(1)}}); res.VBucket != 0 {
		t.Fatalf("close 1: 0x%x", res.VBucket)
	}
	// Stream 2 goes on: a default-collection change comes tagged 2.
	setIn(t, w, 0, 0, "d2", "v") // 6
	for range 10 {
		pkt, _ := d.must()
		raw, _ := pkt.AppendTo(nil)
		if pkt.Opcode == gm.UPR_MUTATION {
			if sid := binary.BigEndian.Uint16(raw[25:]); sid != 2 || string(pkt.Key) != "\x00d2" {
				t.Fatalf("after close: sid %d key %q", sid, pkt.Key)
			}
			break
		}
	}
	// A stream id on a connection without enable_stream_id.
	plain := openCollDCP(t, addr, "plain", 0)
	if res := plain.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, FramingExtras: []gm.FrameInfo{gm.NewStreamIDFrame(1)}}); gm.Status(res.VBucket) != gm.DCP_STREAMID_INVALID {
		t.Fatalf("close with id, not enabled: 0x%x", res.VBucket)
	}
}

// TestDCPOSO: with enable_out_of_order_snapshots=true_with_seqno_advanced
// the first backfill of one collection is an OSO snapshot: begin, the
// collection's creation and documents in key order, SEQNO_ADVANCED to
// the backfill's end, end; then memory snapshots in seqno order.
func TestDCPOSO(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	for _, k := range []string{"m", "b", "z", "a"} {
		setIn(t, w, 0, 9, k, "v") // 4..7
	}
	setIn(t, w, 0, 0, "d", "v") // 8
	d := openCollDCP(t, addr, "oso", 0)
	if st := d.control("enable_out_of_order_snapshots", "true_with_seqno_advanced"); st != 0 {
		t.Fatalf("control: 0x%x", st)
	}
	req := streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)
	req.Body = []byte(`{"collections":["9"]}`)
	if res := d.call(req); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	var ops []string
	for range 8 {
		pkt, _ := d.must()
		switch pkt.Opcode {
		case gm.DCP_OSO_SNAPSHOT:
			ops = append(ops, fmt.Sprintf("OSO:%x", pkt.Extras))
		case gm.DCP_SEQNO_ADV:
			ops = append(ops, fmt.Sprintf("ADV:%d", binary.BigEndian.Uint64(pkt.Extras)))
		default:
			ops = append(ops, fmt.Sprintf("%s:%q", pkt.Opcode, pkt.Key))
		}
	}
	want := `[OSO:00000001 DCP_SYSTEM_EVENT:"c9" UPR_MUTATION:"\ta" UPR_MUTATION:"\tb" UPR_MUTATION:"\tm" UPR_MUTATION:"\tz" ADV:8 OSO:00000002]`
	if fmt.Sprint(ops) != want {
		t.Fatalf("got %v\nwant %s", ops, want)
	}
	setIn(t, w, 0, 9, "live", "v") // 9
	m, _ := d.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(9, 9, 0x05), nil, nil)
	// Plain "true": no SEQNO_ADVANCED; two collections: in order.
	d2 := openCollDCP(t, addr, "oso2", 0)
	d2.control("enable_out_of_order_snapshots", "true")
	req.Body = []byte(`{"collections":["9"]}`)
	if res := d2.call(req); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	for i := range 8 { // begin, creation, a b live m z, end
		pkt, _ := d2.must()
		if i == 7 && (pkt.Opcode != gm.DCP_OSO_SNAPSHOT || binary.BigEndian.Uint32(pkt.Extras) != 2) {
			t.Fatalf("message %d: %s %x, want the OSO end", i, pkt.Opcode, pkt.Extras)
		}
	}
	req.Body = []byte(`{"collections":["9","0"]}`)
	req.VBucket = 0
	d3 := openCollDCP(t, addr, "oso3", 0)
	d3.control("enable_out_of_order_snapshots", "true")
	if res := d3.call(req); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	if pkt, _ := d3.must(); pkt.Opcode != gm.UPR_SNAPSHOT {
		t.Fatalf("two collections: %s, want a snapshot marker", pkt.Opcode)
	}
}

// TestDCPMarkerV22: max_marker_version=2.2 needs collections; disk
// markers then carry extras [2] and the 52-byte value with the purge
// seqno; memory markers stay version 1.
func TestDCPMarkerV22(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{Cache: cache.Config{VBuckets: 4, MaxTombstones: 1, Shards: 1}})
	setIn(t, w, 0, 0, "a", "v") // 4
	setIn(t, w, 0, 0, "b", "v") // 5
	for _, k := range []string{"a", "b"} {
		if res := w.call(gm.MCRequest{Opcode: gm.DELETE, Key: cache.CollectionKey(nil, 0, []byte(k))}); res.VBucket != 0 {
			t.Fatalf("delete: 0x%x", res.VBucket)
		}
	} // 6, 7: a's tombstone (6) purged past the bound of one
	legacy := openDCP(t, addr, "legacy", 0)
	if st := legacy.control("max_marker_version", "2.2"); gm.Status(st) != gm.NOT_SUPPORTED {
		t.Fatalf("2.2 without collections: 0x%x", st)
	}
	d := openCollDCP(t, addr, "v22", 0)
	if st := d.control("max_marker_version", "2.2"); st != 0 {
		t.Fatalf("2.2: 0x%x", st)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	m, _ := d.must()
	// start 0, end 7, type disk|checkpoint, max visible 7 (the end: no
	// prepares), high completed 0, purge 6, high prepared 0.
	wantMsg(t, m, gm.UPR_SNAPSHOT, []byte{2}, nil, cat(be64(0), be64(7), be32(6), be64(7), be64(0), be64(6), be64(0)))
	for range 4 { // 3 events, b's deletion
		d.must()
	}
	setIn(t, w, 0, 0, "c", "v")
	m, _ = d.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(8, 8, 0x05), nil, nil)
}

// TestDCPPurgeRollback: a stream request from below the purge seqno is
// rolled back to 0, unless it ignores purged tombstones, names the purge
// seqno it saw, or starts at 0.
func TestDCPPurgeRollback(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{Cache: cache.Config{VBuckets: 4, MaxTombstones: 1, Shards: 1}})
	for _, k := range []string{"a", "b", "c"} {
		setIn(t, w, 0, 0, k, "v") // 4, 5, 6
	}
	for _, k := range []string{"a", "b"} {
		w.call(gm.MCRequest{Opcode: gm.DELETE, Key: cache.CollectionKey(nil, 0, []byte(k))}) // 7, 8: 7 purged
	}
	d := openCollDCP(t, addr, "purge", 0)
	uuid := binary.BigEndian.Uint64(d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG}).Body)
	for _, tc := range []struct {
		name   string
		req    gm.MCRequest
		value  string
		status gm.Status
	}{
		{"BelowPurge", streamReq(0, 0, 5, math.MaxUint64, uuid, 5, 5), "", gm.ROLLBACK},
		{"IgnorePurged", streamReq(0, 0x80, 5, math.MaxUint64, uuid, 5, 5), "", gm.SUCCESS},
		{"SawPurge", streamReq(0, 0, 5, math.MaxUint64, uuid, 5, 5), `{"purge_seqno":"7"}`, gm.SUCCESS},
		{"AtPurge", streamReq(0, 0, 7, math.MaxUint64, uuid, 7, 7), "", gm.SUCCESS},
		{"FromZero", streamReq(0, 0, 0, math.MaxUint64, uuid, 0, 0), "", gm.SUCCESS},
		// Collection c9 has no change after 2: a stream of it from 5
		// misses nothing.
		{"CollectionComplete", streamReq(0, 0, 5, math.MaxUint64, uuid, 5, 5), `{"collections":["9"]}`, gm.SUCCESS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Body = []byte(tc.value)
			res := d.call(tc.req)
			if gm.Status(res.VBucket) != tc.status {
				t.Fatalf("0x%x %x, want 0x%x", res.VBucket, res.Body, uint16(tc.status))
			}
			switch tc.status {
			case gm.ROLLBACK:
				if !bytes.Equal(res.Body, be64(0)) {
					t.Fatalf("rollback to %x, want 0", res.Body)
				}
			case gm.SUCCESS:
				if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM}); res.VBucket != 0 {
					t.Fatalf("close: 0x%x", res.VBucket)
				}
			}
		})
	}
}

// TestDCPStreamFlags: the flags of stream-request.md: unknown ones and
// the retired no-value flag refused, takeover and cache transfer not
// supported, to-latest of a filtered stream ending at its collections'
// high seqno.
func TestDCPStreamFlags(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k", "v") // 4
	setIn(t, w, 0, 0, "d", "v") // 5
	d := openCollDCP(t, addr, "flags", 0)
	for _, tc := range []struct {
		flags  uint32
		status gm.Status
	}{
		{0x08, gm.EINVAL}, {0x200, gm.EINVAL}, {0x01, gm.NOT_SUPPORTED}, {0x100, gm.NOT_SUPPORTED},
	} {
		if res := d.call(streamReq(0, tc.flags, 0, math.MaxUint64, 0, 0, 0)); gm.Status(res.VBucket) != tc.status {
			t.Errorf("flags 0x%x: 0x%x, want 0x%x", tc.flags, res.VBucket, uint16(tc.status))
		}
	}
	req := streamReq(0, 0x04|0x10, 0, math.MaxUint64, 0, 0, 0) // to latest, active only
	req.Body = []byte(`{"collections":["9"]}`)
	if res := d.call(req); res.VBucket != 0 {
		t.Fatalf("to latest: 0x%x", res.VBucket)
	}
	var ops []string
	for _, pkt := range streamMsgs(t, d, gm.UPR_STREAMEND) {
		ops = append(ops, pkt.Opcode.String())
	}
	// Ends at c9's high seqno, 4: the marker says so.
	if fmt.Sprint(ops) != "[UPR_SNAPSHOT DCP_SYSTEM_EVENT UPR_MUTATION UPR_STREAMEND]" {
		t.Fatalf("to latest: %v", ops)
	}
}

// TestDCPControlKeys: every key of kv_engine's DcpProducer::control, on a
// collections-aware connection that negotiated Snappy.
func TestDCPControlKeys(t *testing.T) {
	addr, _ := startCollections(t, gocache.Config{})
	d := openCollDCP(t, addr, "controls", gm.DCP_OPEN_INCLUDE_DELETE_TIMES, gm.FeatureSnappy)
	for _, tc := range []struct {
		key, value string
		status     gm.Status
	}{
		{"backfill_order", "round-robin", gm.SUCCESS},
		{"backfill_order", "sequential", gm.SUCCESS},
		{"backfill_order", "random", gm.EINVAL},
		{"connection_buffer_size", "0", gm.SUCCESS},
		{"connection_buffer_size", "-1", gm.EINVAL},
		{"stream_buffer_size", "1024", gm.NOT_SUPPORTED},
		{"enable_noop", "false", gm.SUCCESS},
		{"force_value_compression", "true", gm.SUCCESS},
		{"supports_cursor_dropping", "true", gm.SUCCESS},
		{"supports_cursor_dropping_vulcan", "false", gm.SUCCESS},
		{"supports_hifi_MFU", "true", gm.SUCCESS},
		{"set_noop_interval", "1", gm.SUCCESS},
		{"set_noop_interval", "soon", gm.EINVAL},
		{"set_priority", "low", gm.SUCCESS},
		{"set_priority", "none", gm.EINVAL},
		{"send_stream_end_on_client_close_stream", "true", gm.SUCCESS},
		{"enable_expiry_opcode", "true", gm.SUCCESS},
		{"enable_stream_id", "false", gm.EINVAL},
		{"enable_stream_id", "true", gm.SUCCESS},
		{"consumer_name", "", gm.EINVAL},
		{"consumer_name", "replica", gm.SUCCESS},
		{"enable_out_of_order_snapshots", "false", gm.EINVAL},
		{"enable_out_of_order_snapshots", "true", gm.SUCCESS},
		{"enable_out_of_order_snapshots", "true_with_seqno_advanced", gm.SUCCESS},
		{"include_deleted_user_xattrs", "true", gm.EINVAL}, // not opened with the flag
		{"v7_dcp_status_codes", "true", gm.SUCCESS},
		{"v7_dcp_status_codes", "false", gm.EINVAL},
		{"flatbuffers_system_events", "true", gm.SUCCESS},
		{"flatbuffers_system_events", "false", gm.EINVAL},
		{"change_streams", "true", gm.NOT_SUPPORTED},
		{"enable_sync_writes", "true", gm.NOT_SUPPORTED},
		{"max_marker_version", "2.2", gm.SUCCESS},
		{"max_marker_version", "2.0", gm.EINVAL},
		{"cache_transfer", "true", gm.NOT_SUPPORTED},
		{"no_such_key", "true", gm.EINVAL},
	} {
		if got := gm.Status(d.control(tc.key, tc.value)); got != tc.status {
			t.Errorf("%s=%s: 0x%x, want 0x%x", tc.key, tc.value, uint16(got), uint16(tc.status))
		}
	}
	// Without Snappy, force_value_compression is refused.
	plain := openCollDCP(t, addr, "nosnappy", 0)
	if st := plain.control("force_value_compression", "true"); gm.Status(st) != gm.EINVAL {
		t.Fatalf("force_value_compression without snappy: 0x%x", st)
	}
}

// TestDCPCollectionsReferenceFeed: the reference client's UprFeed with
// stream ids, FlatBuffers system events and OSO, its CollectionsFilter
// naming collection 9 and stream id 5: it decodes the creation's
// FlatBuffers value (manifest uid, scope, collection, name) and sees each
// message's stream id.
func TestDCPCollectionsReferenceFeed(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k1", "v1") // 4
	mc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if _, err := mc.EnableFeatures(ref.Features{ref.FeatureCollections}); err != nil {
		t.Fatal(err)
	}
	feed, err := mc.NewUprFeed()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	if err, got := feed.UprOpenWithFeatures("ref-collections", 0, 1<<20, ref.UprFeatures{EnableStreamId: true, EnableFlatbuffersSysEvents: true, EnableOso: true}); err != nil || !got.EnableStreamId || !got.EnableOso {
		t.Fatalf("open: %v %+v", err, got)
	}
	if err := feed.StartFeed(); err != nil {
		t.Fatal(err)
	}
	filter := &ref.CollectionsFilter{UseStreamId: true, StreamId: 5, CollectionsList: []uint32{9}}
	if err := feed.UprRequestCollectionsStream(0, 1, 0, 0, 0, math.MaxUint64, 0, 0, filter); err != nil {
		t.Fatal(err)
	}
	ch := feed.GetUprEventCh()
	if e := event(t, ch); e.Opcode != refmc.UPR_STREAMREQ || e.Status != refmc.SUCCESS {
		t.Fatalf("stream request: %+v", e)
	}
	var ops []string
	for len(ops) < 4 {
		e := event(t, ch)
		if e.StreamId == nil || *e.StreamId != 5 {
			t.Fatalf("%s: stream id %v", e.Opcode, e.StreamId)
		}
		ops = append(ops, fmt.Sprintf("%#x", uint8(e.Opcode)))
		if e.IsSystemEvent() {
			name, _ := e.GetSystemEventName()
			uid, err1 := e.GetManifestId()
			cid, err2 := e.GetCollectionId()
			sid, err3 := e.GetScopeId()
			if e.SysEventVersion != 2 || e.SystemEvent != ref.CollectionCreate || name != "c9" || uid != 0 || cid != 9 || sid != 0 || err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("system event: version %d type %d name %q uid %d cid %d scope %d %v %v %v", e.SysEventVersion, e.SystemEvent, name, uid, cid, sid, err1, err2, err3)
			}
		}
		if e.Opcode == refmc.UPR_MUTATION && (string(e.Key) != "k1" || e.CollectionId != 9) {
			t.Fatalf("mutation: %q in %d", e.Key, e.CollectionId)
		}
	}
	// OSO begin, system event, mutation, OSO end (the reference names no 0x65).
	if fmt.Sprint(ops) != "[0x65 0x5f 0x57 0x65]" {
		t.Fatalf("events: %v", ops)
	}
}

// TestDCPCollectionsOurFeed: our client's UprFeed, with FlatBuffers
// system events and a stream id filter on collection a (maxTTL 100):
// the creation decodes with its maxTTL, and every event carries the id.
func TestDCPCollectionsOurFeed(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 0xa, "x", "v") // 4
	mc, err := ourmc.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if _, err := mc.EnableFeatures(ourmc.Features{ourmc.FeatureCollections}); err != nil {
		t.Fatal(err)
	}
	feed, err := mc.NewUprFeed()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	if err, _ := feed.UprOpenWithFeatures("our-collections", 0, 1<<20, ourmc.UprFeatures{EnableStreamId: true, EnableFlatbuffersSysEvents: true}); err != nil {
		t.Fatal(err)
	}
	if err := feed.StartFeed(); err != nil {
		t.Fatal(err)
	}
	filter := &ourmc.CollectionsFilter{UseStreamId: true, StreamId: 7, CollectionsList: []uint32{0xa}}
	if err := feed.UprRequestCollectionsStream(0, 1, 0, 0, 0, math.MaxUint64, 0, 0, filter); err != nil {
		t.Fatal(err)
	}
	ch := feed.GetUprEventCh()
	var ops []string
	for len(ops) < 4 {
		var e *ourmc.UprEvent
		select {
		case e = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no event within 5s after %v", ops)
		}
		if e == nil {
			t.Fatalf("feed closed after %v: %v", ops, feed.GetError())
		}
		ops = append(ops, e.Opcode.String())
		if e.Opcode == gm.UPR_STREAMREQ {
			continue
		}
		if e.StreamId == nil || *e.StreamId != 7 {
			t.Fatalf("%s: stream id %v", e.Opcode, e.StreamId)
		}
		if e.IsSystemEvent() {
			ttl, err := e.GetMaxTTL()
			cid, _ := e.GetCollectionId()
			scope, _ := e.GetScopeId()
			uid, _ := e.GetManifestId()
			if err != nil || ttl != 100 || cid != 0xa || scope != 8 || uid != 2 {
				t.Fatalf("creation: ttl %d (%v) cid %d scope %d uid %d", ttl, err, cid, scope, uid)
			}
		}
	}
	if fmt.Sprint(ops) != "[UPR_STREAMREQ UPR_SNAPSHOT DCP_SYSTEM_EVENT UPR_MUTATION]" {
		t.Fatalf("events: %v", ops)
	}
}

// TestDCPModifyAndNewVBucket: a collection's new maxTTL is a modify event
// (5) with flatbuffers_system_events, and without it a SEQNO_ADVANCED in
// its place; a drop retires the modification; a vbucket created active
// gets the manifest's events.
func TestDCPModifyAndNewVBucket(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	fb := openCollDCP(t, addr, "fb", 0)
	if st := fb.control("flatbuffers_system_events", "true"); st != 0 {
		t.Fatalf("flatbuffers_system_events: 0x%x", st)
	}
	legacy := openCollDCP(t, addr, "fixed", 0)
	for _, d := range []*dcpConn{fb, legacy} {
		if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
			t.Fatalf("stream: 0x%x", res.VBucket)
		}
		for range 4 { // marker, 3 events
			d.must()
		}
	}
	setManifest(t, w, `{"uid":"3","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"c9","uid":"9"}]},{"name":"s8","uid":"8","collections":[{"name":"ca","uid":"a","maxTTL":200}]}]}`)
	m, _ := fb.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(4, 4, 0x05), nil, nil)
	ev, _ := fb.must()
	if ev.Opcode != gm.DCP_SYSTEM_EVENT || !bytes.Equal(ev.Extras, sysExtras(4, 5, 2)) || string(ev.Key) != "ca" || !bytes.Contains(ev.Body, []byte("ca")) {
		t.Fatalf("modify: %s extras %x key %q value %x", ev.Opcode, ev.Extras, ev.Key, ev.Body)
	}
	m, _ = legacy.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(4, 4, 0x05), nil, nil)
	adv, _ := legacy.must()
	wantMsg(t, adv, gm.DCP_SEQNO_ADV, be64(4), nil, nil)

	// ca dropped: its modification is retired (5), then the drop (6).
	setManifest(t, w, `{"uid":"4","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"c9","uid":"9"}]},{"name":"s8","uid":"8","collections":[]}]}`)
	m, _ = fb.must()
	wantMsg(t, m, gm.UPR_SNAPSHOT, marker1(6, 6, 0x05), nil, nil)
	if ev, _ = fb.must(); ev.Opcode != gm.DCP_SYSTEM_EVENT || !bytes.Equal(ev.Extras, sysExtras(6, 1, 2)) || len(ev.Key) != 0 {
		t.Fatalf("drop: %s extras %x key %q", ev.Opcode, ev.Extras, ev.Key)
	}
	if res := fb.call(streamReq(1, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream vb 1: 0x%x", res.VBucket)
	}
	var ops []string
	for range 4 {
		pkt, _ := fb.must()
		ops = append(ops, fmt.Sprintf("%s:%x", pkt.Opcode, pkt.Extras))
	}
	want := fmt.Sprintf("[UPR_SNAPSHOT:%x DCP_SYSTEM_EVENT:%x DCP_SYSTEM_EVENT:%x DCP_SYSTEM_EVENT:%x]",
		marker1(0, 6, 0x06), sysExtras(1, 3, 2), sysExtras(2, 0, 2), sysExtras(6, 1, 2))
	if fmt.Sprint(ops) != want {
		t.Fatalf("backfill after the drop:\n%v\nwant %s", ops, want)
	}

	// vbucket 3 deleted and created again: scope s8 and c9 created anew.
	if res := w.call(gm.MCRequest{Opcode: gm.DEL_VBUCKET, VBucket: 3}); res.VBucket != 0 {
		t.Fatalf("DEL_VBUCKET: 0x%x", res.VBucket)
	}
	if res := w.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 3, Extras: []byte{1}}); res.VBucket != 0 {
		t.Fatalf("SET_VBUCKET: 0x%x", res.VBucket)
	}
	if res := legacy.call(streamReq(3, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream vb 3: 0x%x", res.VBucket)
	}
	got := make([]gm.MCRequest, 3)
	for i := range got {
		got[i], _ = legacy.must()
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 2, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(1, 3, 0), []byte("s8"), cat(be64(0), be32(8)))
	wantMsg(t, got[2], gm.DCP_SYSTEM_EVENT, sysExtras(2, 0, 0), []byte("c9"), cat(be64(4), be32(0), be32(9)))
}

// TestDCPSkipDeletesInInitialBackfill: DCP_OPEN's 0x200 leaves the
// deletions out of the backfill of a stream from 0 (a SEQNO_ADVANCED
// covering the last), and only there: live deletions come.
func TestDCPSkipDeletesInInitialBackfill(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 0, "a", "v")                                                                                          // 4
	setIn(t, w, 0, 0, "b", "v")                                                                                          // 5
	if res := w.call(gm.MCRequest{Opcode: gm.DELETE, Key: cache.CollectionKey(nil, 0, []byte("a"))}); res.VBucket != 0 { // 6
		t.Fatalf("delete: 0x%x", res.VBucket)
	}
	d := openCollDCP(t, addr, "skip", 0x200)
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	var ops []string
	for range 6 {
		pkt, _ := d.must()
		ops = append(ops, fmt.Sprintf("%s:%q", pkt.Opcode, pkt.Key))
	}
	want := `[UPR_SNAPSHOT:"" DCP_SYSTEM_EVENT:"s8" DCP_SYSTEM_EVENT:"c9" DCP_SYSTEM_EVENT:"ca" UPR_MUTATION:"\x00b" DCP_SEQNO_ADV:""]`
	if fmt.Sprint(ops) != want {
		t.Fatalf("backfill: %v\nwant %s", ops, want)
	}
	w.call(gm.MCRequest{Opcode: gm.DELETE, Key: cache.CollectionKey(nil, 0, []byte("b"))}) // 7
	d.must()                                                                               // marker
	if del, _ := d.must(); del.Opcode != gm.UPR_DELETION || string(del.Key) != "\x00b" {
		t.Fatalf("live deletion: %s %q", del.Opcode, del.Key)
	}
}

// TestDCPFlush: a flush purges everything (a stream from before it rolls
// back to 0) but the collections, whose events stay, with their seqnos.
func TestDCPFlush(t *testing.T) {
	addr, w := startCollections(t, gocache.Config{})
	setIn(t, w, 0, 9, "k", "v") // 4
	if res := w.call(gm.MCRequest{Opcode: gm.FLUSH}); res.VBucket != 0 {
		t.Fatalf("FLUSH: 0x%x", res.VBucket)
	}
	d := openCollDCP(t, addr, "flush", 0)
	uuid := binary.BigEndian.Uint64(d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG}).Body)
	if res := d.call(streamReq(0, 0, 4, math.MaxUint64, uuid, 4, 4)); gm.Status(res.VBucket) != gm.ROLLBACK || !bytes.Equal(res.Body, be64(0)) {
		t.Fatalf("stream from before the flush: 0x%x %x", res.VBucket, res.Body)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	got := make([]gm.MCRequest, 4)
	for i := range got {
		got[i], _ = d.must()
	}
	wantMsg(t, got[0], gm.UPR_SNAPSHOT, marker1(0, 4, 0x06), nil, nil)
	wantMsg(t, got[1], gm.DCP_SYSTEM_EVENT, sysExtras(1, 3, 0), []byte("s8"), cat(be64(0), be32(8)))
	wantMsg(t, got[2], gm.DCP_SYSTEM_EVENT, sysExtras(2, 0, 0), []byte("c9"), cat(be64(0), be32(0), be32(9)))
	wantMsg(t, got[3], gm.DCP_SYSTEM_EVENT, sysExtras(3, 0, 1), []byte("ca"), cat(be64(2), be32(8), be32(0xa), be32(100)))
}
