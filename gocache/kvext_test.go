package gocache_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	ref "github.com/couchbase/gomemcached/client"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// The Couchbase KV extensions, end to end over raw packets: vbucket
// states, seqnos, observe, metadata, random keys and collections. Where
// no Couchbase Server runs here, the layouts are pinned field by field
// from kv_engine's documents (named at each test).

// testManifest has a scope "app" (0x8) with collections "users" (0x8)
// and "orders" (0x9, max TTL 60), beside the default collection.
const testManifest = `{"uid":"2","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]},
 {"name":"app","uid":"8","collections":[{"name":"users","uid":"8"},{"name":"orders","uid":"9","maxTTL":60}]}]}`

func cacheVBuckets(n int) cache.Config { return cache.Config{VBuckets: n} }

func kvServer(t *testing.T, cfg gocache.Config) string {
	t.Helper()
	_, addr := gocachetest.Start(t, cfg)
	return addr
}

// ckey is key in collection cid, as a collections connection sends it.
func ckey(cid uint32, key string) []byte { return append(gm.AppendCollectionID(nil, cid), key...) }

func withExtras(op gm.CommandCode, vb uint16, key []byte, extras []byte) gm.MCRequest {
	return gm.MCRequest{Opcode: op, VBucket: vb, Key: key, Extras: extras}
}

func TestVBucketStates(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cacheVBuckets(8)})
	c := dialRaw(t, addr)
	c.hello(0x07) // XERROR
	// GET_VBUCKET: the state in 4 bytes of value (BinaryProtocol.md 0x3e).
	res := c.do(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: 3})
	if res.Status != gm.SUCCESS || !bytes.Equal(res.Body, []byte{0, 0, 0, 1}) {
		t.Fatalf("GET_VBUCKET of a new vbucket: %v %x", res.Status, res.Body)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: 8}); res.Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("GET_VBUCKET past the count: %v", res.Status)
	}
	c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 3, Key: []byte("k"), Extras: make([]byte, 8), Body: []byte("v")})
	// SET_VBUCKET to replica: one byte of extras (BinaryProtocol.md 0x3d).
	if res := c.do(withExtras(gm.SET_VBUCKET, 3, nil, []byte{2})); res.Status != gm.SUCCESS {
		t.Fatalf("SET_VBUCKET replica: %v", res.Status)
	}
	for _, req := range []gm.MCRequest{
		{Opcode: gm.GET, VBucket: 3, Key: []byte("k")},
		{Opcode: gm.SET, VBucket: 3, Key: []byte("k"), Extras: make([]byte, 8)},
		{Opcode: gm.DELETE, VBucket: 3, Key: []byte("k")},
		{Opcode: gm.GET, VBucket: 9, Key: []byte("k")},
	} {
		if res := c.do(req); res.Status != gm.NOT_MY_VBUCKET {
			t.Fatalf("%v to vbucket %d: %v, want NOT_MY_VBUCKET", req.Opcode, req.VBucket, res.Status)
		}
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: 3}); !bytes.Equal(res.Body, []byte{0, 0, 0, 2}) {
		t.Fatalf("state after SET_VBUCKET: %x", res.Body)
	}
	if res := c.do(withExtras(gm.SET_VBUCKET, 3, nil, []byte{5})); res.Status != gm.EINVAL {
		t.Fatalf("SET_VBUCKET 5: %v", res.Status)
	}
	// Promoted again, the data is still there, under a new history.
	c.do(withExtras(gm.SET_VBUCKET, 3, nil, []byte{1}))
	if res := c.do(gm.MCRequest{Opcode: gm.GET, VBucket: 3, Key: []byte("k")}); res.Status != gm.SUCCESS {
		t.Fatalf("GET after promotion: %v", res.Status)
	}
	// DEL_VBUCKET: gone, with its items; SET_VBUCKET creates it empty.
	if res := c.do(gm.MCRequest{Opcode: gm.DEL_VBUCKET, VBucket: 3}); res.Status != gm.SUCCESS {
		t.Fatalf("DEL_VBUCKET: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_VBUCKET, VBucket: 3}); res.Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("GET_VBUCKET of a deleted vbucket: %v", res.Status)
	}
	c.do(withExtras(gm.SET_VBUCKET, 3, nil, []byte{1}))
	if res := c.do(gm.MCRequest{Opcode: gm.GET, VBucket: 3, Key: []byte("k")}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("GET in a recreated vbucket: %v", res.Status)
	}
}

func TestAllVBSeqnos(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cacheVBuckets(4), Manifest: []byte(testManifest)})
	c := dialRaw(t, addr)
	c.hello(0x07, 0x12) // XERROR, Collections
	for i, vb := range []uint16{0, 2, 2, 3, 3, 3} {
		key := ckey(0, fmt.Sprint("k", i))
		if vb == 3 && i == 5 {
			key = ckey(8, "user") // one change in collection 8
		}
		if res := c.do(gm.MCRequest{Opcode: gm.SET, VBucket: vb, Key: key, Extras: make([]byte, 8)}); res.Status != gm.SUCCESS {
			t.Fatal(res.Status)
		}
	}
	c.do(withExtras(gm.SET_VBUCKET, 1, nil, []byte{2}))
	entries := func(body []byte) string {
		var s []string
		for ; len(body) >= 10; body = body[10:] {
			s = append(s, fmt.Sprintf("%d:%d", binary.BigEndian.Uint16(body), binary.BigEndian.Uint64(body[2:])))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		extras []byte
		want   string
	}{
		// Every vbucket starts with the manifest's three system events
		// (scope app, collections users and orders: seqnos 1-3).
		{nil, "0:4 1:3 2:5 3:6"},                       // alive: active, replica, pending
		{u32(1), "0:4 2:5 3:6"},                        // active
		{u32(2), "1:3"},                                // replica
		{append(u32(0), u32(8)...), "0:2 1:2 2:2 3:6"}, // collection 8's seqnos: its creation's, its change
		{append(u32(1), u32(0)...), "0:4 2:5 3:5"},     // the default collection's
	} {
		res := c.do(gm.MCRequest{Opcode: gm.GET_ALL_VB_SEQNOS, Extras: tc.extras})
		if res.Status != gm.SUCCESS || entries(res.Body) != tc.want {
			t.Errorf("extras %x: %v %q, want %q", tc.extras, res.Status, entries(res.Body), tc.want)
		}
	}
	res := c.do(gm.MCRequest{Opcode: gm.GET_ALL_VB_SEQNOS, Extras: append(u32(0), u32(0x77)...)})
	if res.Status != gm.UNKNOWN_COLLECTION || string(res.Body) != `{"manifest_uid":"2"}` {
		t.Fatalf("unknown collection: %v %s", res.Status, res.Body)
	}
	// The reference client reads the same.
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := rc.GetAllVbSeqnos(nil)
	if err != nil || len(got) != 4 || got[3] != 6 || got[1] != 3 {
		t.Fatalf("reference GetAllVbSeqnos: %v %v", got, err)
	}
}

func TestObserve(t *testing.T) {
	addr := kvServer(t, gocache.Config{})
	c := dialRaw(t, addr)
	set := c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 5, Key: []byte("live"), Extras: make([]byte, 8), Body: []byte("v")})
	c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 5, Key: []byte("gone"), Extras: make([]byte, 8)})
	c.do(gm.MCRequest{Opcode: gm.DELETE, VBucket: 5, Key: []byte("gone")})
	// 1000 keys in one packet: [vb(2) keylen(2) key] each (SPEC: OBSERVE).
	var body []byte
	for i := range 1000 {
		key := []byte(fmt.Sprint("missing", i))
		switch i {
		case 10:
			key = []byte("live")
		case 20:
			key = []byte("gone")
		}
		body = binary.BigEndian.AppendUint16(body, 5)
		body = binary.BigEndian.AppendUint16(body, uint16(len(key)))
		body = append(body, key...)
	}
	res := c.do(gm.MCRequest{Opcode: gm.OBSERVE, Body: body})
	if res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	states := map[string][2]uint64{}
	for b := res.Body; len(b) > 0; {
		n := int(binary.BigEndian.Uint16(b[2:]))
		key := string(b[4 : 4+n])
		states[key] = [2]uint64{uint64(b[4+n]), binary.BigEndian.Uint64(b[5+n:])}
		b = b[13+n:]
	}
	if len(states) != 1000 {
		t.Fatalf("%d keys answered", len(states))
	}
	if s := states["live"]; s[0] != 0x00 || s[1] != set.Cas {
		t.Errorf("live key: state %#x cas %d, want 0x00 (not persisted) and %d", s[0], s[1], set.Cas)
	}
	if s := states["gone"]; s[0] != 0x81 {
		t.Errorf("deleted key: state %#x, want 0x81 (logically deleted)", s[0])
	}
	if s := states["missing7"]; s[0] != 0x80 || s[1] != 0 {
		t.Errorf("missing key: %v", s)
	}
	// Malformed: a key length past the body.
	bad := c.do(gm.MCRequest{Opcode: gm.OBSERVE, Body: []byte{0, 5, 0, 9, 'a'}})
	if bad.Status != gm.EINVAL {
		t.Errorf("truncated observe: %v", bad.Status)
	}
	// The reference client: Observe and CheckPersistence. Nothing is ever
	// persisted by gocache; a deletion whose tombstone is kept is not yet
	// "persisted" either.
	c = dialRaw(t, addr)
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ob, err := rc.Observe(5, "live")
	if err != nil || ob.Status != ref.ObservedNotPersisted || ob.Cas != set.Cas {
		t.Fatalf("reference Observe: %+v %v", ob, err)
	}
	if persisted, overwritten := ob.CheckPersistence(set.Cas, false); persisted || overwritten {
		t.Errorf("CheckPersistence: persisted %v overwritten %v", persisted, overwritten)
	}
	ob, err = rc.Observe(5, "gone")
	if err != nil || ob.Status != ref.ObservedLogicallyDeleted {
		t.Fatalf("reference Observe of a deleted key: %+v %v", ob, err)
	}
}

func TestObserveSeqno(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cacheVBuckets(4)})
	c := dialRaw(t, addr)
	c.hello(0x04) // MutationSeqno
	res := c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 2, Key: []byte("k"), Extras: make([]byte, 8)})
	uuid := binary.BigEndian.Uint64(res.Extras)
	// Format 0 (27 bytes): format, vb, vbuuid, persisted (0: nothing is
	// persisted), current.
	ob := c.do(gm.MCRequest{Opcode: gm.OBSERVE_SEQNO, VBucket: 2, Body: binary.BigEndian.AppendUint64(nil, uuid)})
	want := []byte{0, 0, 2}
	want = binary.BigEndian.AppendUint64(want, uuid)
	want = binary.BigEndian.AppendUint64(want, 0)
	want = binary.BigEndian.AppendUint64(want, 1)
	if ob.Status != gm.SUCCESS || !bytes.Equal(ob.Body, want) {
		t.Fatalf("format 0: %v %x, want %x", ob.Status, ob.Body, want)
	}
	// After a failover (replica, then active again) the old uuid gets
	// format 1 (43 bytes): ... old uuid, the seqno its history ended at.
	c.do(withExtras(gm.SET_VBUCKET, 2, nil, []byte{2}))
	c.do(withExtras(gm.SET_VBUCKET, 2, nil, []byte{1}))
	res = c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 2, Key: []byte("k"), Extras: make([]byte, 8)})
	newUUID := binary.BigEndian.Uint64(res.Extras)
	if newUUID == uuid {
		t.Fatal("promotion kept the vbucket uuid")
	}
	ob = c.do(gm.MCRequest{Opcode: gm.OBSERVE_SEQNO, VBucket: 2, Body: binary.BigEndian.AppendUint64(nil, uuid)})
	want = []byte{1, 0, 2}
	want = binary.BigEndian.AppendUint64(want, newUUID)
	want = binary.BigEndian.AppendUint64(want, 0)
	want = binary.BigEndian.AppendUint64(want, 2)
	want = binary.BigEndian.AppendUint64(want, uuid)
	want = binary.BigEndian.AppendUint64(want, 1)
	if ob.Status != gm.SUCCESS || !bytes.Equal(ob.Body, want) {
		t.Fatalf("format 1: %v %x, want %x", ob.Status, ob.Body, want)
	}
	if ob := c.do(gm.MCRequest{Opcode: gm.OBSERVE_SEQNO, VBucket: 2, Body: make([]byte, 8)}); ob.Status != gm.KEY_ENOENT {
		t.Fatalf("unknown uuid: %v", ob.Status)
	}
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := rc.ObserveSeq(2, uuid)
	if err != nil || r.Failover != 1 || r.Vbuuid != newUUID || r.CurrentSeqNo != 2 || r.OldVbuuid != uuid || r.LastSeqNo != 1 {
		t.Fatalf("reference ObserveSeq: %+v %v", r, err)
	}
}

const metaSkipConflicts = 0x08

func TestGetMetaAndWithMeta(t *testing.T) {
	addr := kvServer(t, gocache.Config{})
	c := dialRaw(t, addr)
	c.hello(0x07) // XERROR
	st := c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Extras: []byte{0, 0, 0, 7, 0, 0, 0, 0}, Body: []byte("v")})
	// GET_META v2 (get_meta.md): deleted(4) flags(4) exptime(4) seqno(8)
	// datatype(1); the revision is the "seqno".
	res := c.do(withExtras(gm.GET_META, 0, []byte("k"), []byte{2}))
	want := []byte{0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	if res.Status != gm.SUCCESS || res.Cas != st.Cas || !bytes.Equal(res.Extras, want) {
		t.Fatalf("GET_META v2: %v cas %d extras %x, want cas %d %x", res.Status, res.Cas, res.Extras, st.Cas, want)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte("k")}); len(res.Extras) != 20 {
		t.Fatalf("GET_META v1 extras %x", res.Extras)
	}
	// A deleted key is answered, deleted, while its tombstone lasts.
	del := c.do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte("k")})
	res = c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte("k")})
	if res.Status != gm.SUCCESS || binary.BigEndian.Uint32(res.Extras) != 1 || binary.BigEndian.Uint64(res.Extras[12:]) != 2 || res.Cas == 0 {
		t.Fatalf("GET_META of a deleted key: %v %x (delete %v)", res.Status, res.Extras, del.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte("never")}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("GET_META of a missing key: %v", res.Status)
	}
	// GETQ_META is silent on a miss: the NOOP's answer comes first.
	c.send(gm.MCRequest{Opcode: gm.GETQ_META, Key: []byte("never"), Opaque: 1}, gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})
	if r := c.read(); r.Opaque != 2 {
		t.Fatalf("GETQ_META answered a miss: %v", r.Status)
	}

	// SET_WITH_META (set_with_meta.md): flags(4) exp(4) rev(8) cas(8)
	// [options(4)] [nmeta(2)].
	withMeta := func(op gm.CommandCode, key string, flags, exp uint32, rev, cas uint64, opts uint32, value string) gm.MCResponse {
		ex := binary.BigEndian.AppendUint32(nil, flags)
		ex = binary.BigEndian.AppendUint32(ex, exp)
		ex = binary.BigEndian.AppendUint64(ex, rev)
		ex = binary.BigEndian.AppendUint64(ex, cas)
		if opts != 0 {
			ex = binary.BigEndian.AppendUint32(ex, opts)
		}
		return c.do(gm.MCRequest{Opcode: op, Key: []byte(key), Extras: ex, Body: []byte(value)})
	}
	res = withMeta(gm.SET_WITH_META, "m", 3, 0, 10, 1000, 0, "first")
	if res.Status != gm.SUCCESS || res.Cas != 1000 {
		t.Fatalf("SET_WITH_META: %v cas %d", res.Status, res.Cas)
	}
	meta := c.do(withExtras(gm.GET_META, 0, []byte("m"), []byte{2}))
	if binary.BigEndian.Uint64(meta.Extras[12:]) != 10 || meta.Cas != 1000 || binary.BigEndian.Uint32(meta.Extras[4:]) != 3 {
		t.Fatalf("meta kept: %x cas %d", meta.Extras, meta.Cas)
	}
	for _, tc := range []struct {
		name     string
		rev, cas uint64
		flags    uint32
		opts     uint32
		want     gm.Status
	}{
		{"lower rev loses", 9, 5000, 3, 0, gm.KEY_EEXISTS},
		{"same rev, lower cas loses", 10, 999, 3, 0, gm.KEY_EEXISTS},
		{"identical loses", 10, 1000, 3, 0, gm.KEY_EEXISTS},
		{"same rev and cas, greater flags win", 10, 1000, 4, 0, gm.SUCCESS},
		{"higher rev wins", 11, 1, 0, 0, gm.SUCCESS},
		{"force wins whatever", 1, 2, 0, 0x08, gm.SUCCESS},
		{"force-accept is for LWW buckets", 20, 3000, 0, 0x02, gm.EINVAL},
		{"regenerate CAS needs skip", 20, 3000, 0, 0x04, gm.EINVAL},
		{"CAS 0 is invalid", 30, 0, 0, 0, gm.CAS_VALUE_INVALID},
		{"rev 0 loses to rev 1", 0, 1 << 40, 0, 0, gm.KEY_EEXISTS},
	} {
		if res := withMeta(gm.SET_WITH_META, "m", tc.flags, 0, tc.rev, tc.cas, tc.opts, "v"); res.Status != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, res.Status, tc.want)
		}
	}
	if res := withMeta(gm.ADD_WITH_META, "m", 0, 0, 50, 50, 0, "v"); res.Status != gm.KEY_EEXISTS {
		t.Errorf("ADD_WITH_META over a live key: %v", res.Status)
	}
	if res := withMeta(gm.ADD_WITH_META, "fresh", 0, 0, 1, 77, 0, "v"); res.Status != gm.SUCCESS || res.Cas != 77 {
		t.Errorf("ADD_WITH_META: %v %d", res.Status, res.Cas)
	}
	// DEL_WITH_META: a deletion that loses, then one that wins.
	if res := withMeta(gm.DELETE_WITH_META, "fresh", 0, 0, 1, 76, 0, ""); res.Status != gm.KEY_EEXISTS {
		t.Errorf("losing DEL_WITH_META: %v", res.Status)
	}
	if res := withMeta(gm.DELETE_WITH_META, "fresh", 0, 0, 2, 78, 0, ""); res.Status != gm.SUCCESS || res.Cas != 78 {
		t.Errorf("DEL_WITH_META: %v %d", res.Status, res.Cas)
	}
	if res := c.do(get("fresh")); res.Status != gm.KEY_ENOENT {
		t.Errorf("GET after DEL_WITH_META: %v", res.Status)
	}
	meta = c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte("fresh")})
	if binary.BigEndian.Uint32(meta.Extras) != 1 || binary.BigEndian.Uint64(meta.Extras[12:]) != 2 || meta.Cas != 78 {
		t.Errorf("GET_META after DEL_WITH_META: %x cas %d", meta.Extras, meta.Cas)
	}
	// A SET_WITH_META over the tombstone must beat it.
	if res := withMeta(gm.SET_WITH_META, "fresh", 0, 0, 2, 77, 0, "v"); res.Status != gm.KEY_EEXISTS {
		t.Errorf("SET_WITH_META behind a tombstone: %v", res.Status)
	}
	// Extended metadata ends the value, with its length last in the
	// extras (26 bytes: after the CAS; 30: after the options); it is not
	// stored.
	for _, n := range []int{26, 30} {
		ex := make([]byte, n)
		binary.BigEndian.PutUint64(ex[8:], 500)
		binary.BigEndian.PutUint64(ex[16:], 500)
		if n == 30 {
			binary.BigEndian.PutUint32(ex[24:], metaSkipConflicts)
		}
		binary.BigEndian.PutUint16(ex[n-2:], 3)
		key := fmt.Sprint("ext", n)
		res := c.do(gm.MCRequest{Opcode: gm.SET_WITH_META, Key: []byte(key), Extras: ex, Body: []byte("value\x01\x00\x00")})
		if res.Status != gm.SUCCESS {
			t.Fatalf("extras %d with metadata: %v %s", n, res.Status, res.Body)
		}
		if got := c.do(get(key)); string(got.Body) != "value" {
			t.Fatalf("extras %d: stored %q", n, got.Body)
		}
	}
	// The header CAS, when given, must match the live item.
	ex := make([]byte, 24)
	binary.BigEndian.PutUint64(ex[8:], 100)
	binary.BigEndian.PutUint64(ex[16:], 100)
	if res := c.do(gm.MCRequest{Opcode: gm.SET_WITH_META, Key: []byte("nothere"), Extras: ex, Cas: 5}); res.Status != gm.KEY_ENOENT {
		t.Errorf("SET_WITH_META with a CAS on a missing key: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.SET_WITH_META, Key: []byte("m"), Extras: make([]byte, 25)}); res.Status != gm.EINVAL {
		t.Errorf("extras of 25 bytes: %v", res.Status)
	}
	// The reference client's GetMeta.
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if r, err := rc.GetMeta(0, "m"); err != nil || len(r.Extras) != 20 || binary.BigEndian.Uint64(r.Extras[12:]) != 11 && binary.BigEndian.Uint64(r.Extras[12:]) != 1 {
		t.Fatalf("reference GetMeta: %v %v", r, err)
	}
}

func TestRandomKey(t *testing.T) {
	addr := kvServer(t, gocache.Config{Manifest: []byte(testManifest)})
	c := dialRaw(t, addr)
	c.hello(0x07, 0x12)
	if res := c.do(gm.MCRequest{Opcode: gm.GET_RANDOM_KEY}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("random key of an empty bucket: %v", res.Status)
	}
	c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 7, Key: ckey(8, "alice"), Extras: []byte{0, 0, 0, 9, 0, 0, 0, 0}, Body: []byte("A")})
	if res := c.do(gm.MCRequest{Opcode: gm.GET_RANDOM_KEY}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("random key of an empty default collection: %v", res.Status)
	}
	res := c.do(gm.MCRequest{Opcode: gm.GET_RANDOM_KEY, Extras: u32(8)})
	if res.Status != gm.SUCCESS || !bytes.Equal(res.Key, ckey(8, "alice")) || string(res.Body) != "A" || !bytes.Equal(res.Extras, []byte{0, 0, 0, 9}) {
		t.Fatalf("random key of collection 8: %v %q %q %x", res.Status, res.Key, res.Body, res.Extras)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_RANDOM_KEY, Extras: u32(0x55)}); res.Status != gm.UNKNOWN_COLLECTION {
		t.Fatalf("random key of an unknown collection: %v", res.Status)
	}
	// Every key is picked at some point.
	for i := range 20 {
		c.do(gm.MCRequest{Opcode: gm.SET, VBucket: uint16(i), Key: ckey(0, fmt.Sprint("k", i)), Extras: make([]byte, 8)})
	}
	seen := map[string]bool{}
	for range 2000 {
		res := c.do(gm.MCRequest{Opcode: gm.GET_RANDOM_KEY})
		seen[string(res.Key)] = true
	}
	if len(seen) < 10 {
		t.Errorf("2000 random keys picked only %d of 20", len(seen))
	}
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if r, err := rc.GetRandomDoc(); err != nil || !strings.HasPrefix(string(r.Key), "k") {
		t.Fatalf("reference GetRandomDoc: %v %v", r, err)
	}
}

func TestCollections(t *testing.T) {
	addr := kvServer(t, gocache.Config{Manifest: []byte(testManifest)})
	c := dialRaw(t, addr)
	c.hello(0x07, 0x12)
	// The same name in three collections is three keys.
	for cid, v := range map[uint32]string{0: "default", 8: "users", 9: "orders"} {
		if res := c.do(gm.MCRequest{Opcode: gm.SET, Key: ckey(cid, "k"), Extras: make([]byte, 8), Body: []byte(v)}); res.Status != gm.SUCCESS {
			t.Fatalf("SET in %d: %v", cid, res.Status)
		}
	}
	for cid, v := range map[uint32]string{0: "default", 8: "users", 9: "orders"} {
		if res := c.do(gm.MCRequest{Opcode: gm.GET, Key: ckey(cid, "k")}); string(res.Body) != v {
			t.Fatalf("GET in %d: %v %q", cid, res.Status, res.Body)
		}
	}
	// "orders" has a max TTL of 60 s: a store with no expiry gets it.
	if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: ckey(9, "k")}); binary.BigEndian.Uint32(res.Extras[8:]) == 0 {
		t.Fatalf("max TTL not applied: %x", res.Extras)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: ckey(8, "k")}); binary.BigEndian.Uint32(res.Extras[8:]) != 0 {
		t.Fatalf("expiry without a max TTL: %x", res.Extras)
	}
	// A connection without Collections is in the default collection.
	plain := dialRaw(t, addr)
	if res := plain.do(get("k")); string(res.Body) != "default" {
		t.Fatalf("plain GET: %q", res.Body)
	}
	// Unknown collection: 0x88 with the manifest uid (Collections.md).
	res := c.do(gm.MCRequest{Opcode: gm.GET, Key: ckey(0x20, "k")})
	if res.Status != gm.UNKNOWN_COLLECTION || string(res.Body) != `{"manifest_uid":"2"}` {
		t.Fatalf("unknown collection: %v %s", res.Status, res.Body)
	}
	// A prefix that is not canonical LEB128, or runs past the key: EINVAL,
	// and the connection is closed.
	for _, key := range [][]byte{{0x80, 0x00, 'k'}, {0x88}, {0x08}} {
		bad := dialRaw(t, addr)
		bad.hello(0x07, 0x12)
		if res := bad.do(gm.MCRequest{Opcode: gm.GET, Key: key}); res.Status != gm.EINVAL || !bad.ended() {
			t.Errorf("key %x: %v", key, res.Status)
		}
	}
	// GET_CID: extras manifest uid(8) + cid(4).
	res = c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_GET_CID, Key: []byte("app.orders")})
	if res.Status != gm.SUCCESS || !bytes.Equal(res.Extras, []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9}) {
		t.Fatalf("GET_CID: %v %x", res.Status, res.Extras)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_GET_CID, Key: []byte("app.nope")}); res.Status != gm.UNKNOWN_COLLECTION {
		t.Fatalf("GET_CID of an unknown collection: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_GET_CID, Key: []byte("nope.x")}); res.Status != gm.UNKNOWN_SCOPE {
		t.Fatalf("GET_CID in an unknown scope: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_GET_SCOPE_ID, Key: []byte("app")}); !bytes.Equal(res.Extras[8:], []byte{0, 0, 0, 8}) {
		t.Fatalf("GET_SCOPE_ID: %v %x", res.Status, res.Extras)
	}
	// The manifest, and a new one that drops "orders".
	res = c.do(gm.MCRequest{Opcode: gm.GET_COLLECTIONS_MANIFEST})
	var m struct {
		UID    string `json:"uid"`
		Scopes []struct {
			Name        string `json:"name"`
			Collections []struct {
				Name string `json:"name"`
				UID  string `json:"uid"`
			} `json:"collections"`
		} `json:"scopes"`
	}
	if err := json.Unmarshal(res.Body, &m); err != nil || m.UID != "2" || len(m.Scopes) != 2 || len(m.Scopes[1].Collections) != 2 {
		t.Fatalf("manifest %s: %v", res.Body, err)
	}
	next := strings.Replace(strings.Replace(testManifest, `"uid":"2"`, `"uid":"3"`, 1), `,{"name":"orders","uid":"9","maxTTL":60}`, "", 1)
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(next)}); res.Status != gm.SUCCESS {
		t.Fatalf("SET_MANIFEST: %v %s", res.Status, res.Body)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET, Key: ckey(9, "k")}); res.Status != gm.UNKNOWN_COLLECTION || string(res.Body) != `{"manifest_uid":"3"}` {
		t.Fatalf("GET in a dropped collection: %v %s", res.Status, res.Body)
	}
	// Bringing it back (a new manifest) does not bring its items back.
	again := strings.Replace(testManifest, `"uid":"2"`, `"uid":"4"`, 1)
	c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(again)})
	if res := c.do(gm.MCRequest{Opcode: gm.GET, Key: ckey(9, "k")}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("GET in a re-created collection: %v %q", res.Status, res.Body)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(testManifest)}); res.Status != gm.COLLECTIONS_MANIFEST_AHEAD {
		t.Fatalf("an older manifest: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(`{"uid":"9","scopes":[{"name":"_default","uid":"0","collections":[{"name":"x","uid":"3"}]}]}`)}); res.Status != gm.CANNOT_APPLY_COLLECTIONS_MANIFEST {
		t.Fatalf("a manifest with a reserved id: %v", res.Status)
	}
	// The reference client's collection methods.
	rc, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.EnableFeatures(ref.Features{ref.FeatureCollections, ref.FeatureXerror}); err != nil {
		t.Fatal(err)
	}
	if r, err := rc.CollectionsGetCID("app", "users"); err != nil || binary.BigEndian.Uint32(r.Extras[8:]) != 8 {
		t.Fatalf("reference CollectionsGetCID: %v %v", r, err)
	}
	if r, err := rc.GetCollectionsManifest(); err != nil || !bytes.Contains(r.Body, []byte(`"users"`)) {
		t.Fatalf("reference GetCollectionsManifest: %v %v", r, err)
	}
	if _, err := rc.Set(0, "rk", 0, 0, []byte("x"), &ref.ClientContext{CollId: 8}); err != nil {
		t.Fatal(err)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET, Key: ckey(8, "rk")}); string(res.Body) != "x" {
		t.Fatalf("reference client's store in collection 8: %v %q", res.Status, res.Body)
	}
}

func TestTombstoneBound(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cache.Config{Shards: 4, TombstoneTTL: time.Hour, MaxTombstones: 4}})
	c := dialRaw(t, addr)
	for i := range 50 {
		k := fmt.Sprint("k", i)
		c.do(set(k, "v"))
		c.do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte(k)})
	}
	// Four shards, a bound of one: four tombstones at most are left.
	kept := 0
	for i := range 50 {
		if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte(fmt.Sprint("k", i))}); res.Status == gm.SUCCESS {
			kept++
		}
	}
	if kept == 0 || kept > 4 {
		t.Fatalf("%d of 50 tombstones kept with a bound of 1 per shard", kept)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_META, Key: []byte("k49")}); res.Status != gm.SUCCESS {
		t.Fatalf("the newest tombstone was dropped: %v", res.Status)
	}
}

// TestDocVectors sends requests byte for byte as kv_engine's documents
// show them and compares the whole answer, field by field.
func TestDocVectors(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cacheVBuckets(4)})
	c := dialRaw(t, addr)
	// Store "mykey" in vbucket 3 with flags 1: its CAS is what the answers
	// must carry.
	st := c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 3, Key: []byte("mykey"), Extras: []byte{0, 0, 0, 1, 0, 0, 0, 0}, Body: []byte("v")})
	roundTrip := func(name string, req []byte, want []byte) {
		t.Helper()
		if _, err := c.nc.Write(req); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c.nc, got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", name, got, want)
		}
	}
	cas := binary.BigEndian.AppendUint64(nil, st.Cas)

	// engines/ep/docs/protocol/get_meta.md, "Get Meta Binary Request".
	roundTrip("GET_META v2", []byte{
		0x80, 0xa0, 0x00, 0x05, // magic, GET_META, key length 5
		0x01, 0x00, 0x00, 0x03, // extras 1, datatype, vbucket 3
		0x00, 0x00, 0x00, 0x06, // body 6
		0x00, 0x00, 0x00, 0x00, // opaque
		0, 0, 0, 0, 0, 0, 0, 0, // cas
		0x02,                    // ReqExtMeta: version 2, with the datatype
		'm', 'y', 'k', 'e', 'y', // key
	}, slices.Concat([]byte{
		0x81, 0xa0, 0x00, 0x00, // magic, GET_META, no key
		0x15, 0x00, 0x00, 0x00, // extras 21, datatype, status SUCCESS
		0x00, 0x00, 0x00, 0x15, // body 21
		0x00, 0x00, 0x00, 0x00, // opaque
	}, cas, []byte{
		0x00, 0x00, 0x00, 0x00, // deleted: no
		0x00, 0x00, 0x00, 0x01, // flags 1
		0x00, 0x00, 0x00, 0x00, // exptime: never
		0, 0, 0, 0, 0, 0, 0, 1, // seqno: the revision, 1
		0x00, // datatype: raw
	}))

	// docs/dcp/documentation/commands/get_seqno.md: all alive vbuckets,
	// answered as [vb(2) seqno(8)] sorted by vbucket (here 4 of them, the
	// one write in vbucket 3).
	roundTrip("GET_ALL_VB_SEQNOS", []byte{
		0x80, 0x48, 0x00, 0x00, // magic, GET_ALL_VB_SEQNOS
		0x00, 0x00, 0x00, 0x00, // no extras
		0x00, 0x00, 0x00, 0x00, // no body
		0xde, 0xad, 0xbe, 0xef, // opaque
		0, 0, 0, 0, 0, 0, 0, 0,
	}, []byte{
		0x81, 0x48, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x28, // 4 × 10 bytes
		0xde, 0xad, 0xbe, 0xef,
		0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, // vb 0, seqno 0
		0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1, // vb 3, seqno 1
	})

	// engines/ep/docs/protocol/set_with_meta.md's example asks for
	// FORCE_ACCEPT_WITH_META_OPS (options 0x02), which only
	// last-write-wins buckets take; a revision bucket refuses it with
	// EINVAL ("Invalid arguments"), as kv_engine's validateWithMetaOptions.
	roundTrip("SET_WITH_META force-accept", []byte{
		0x80, 0xa2, 0x00, 0x05, // magic, SET_WITH_META, key length 5
		0x1e, 0x00, 0x00, 0x03, // extras 30, datatype, vbucket 3
		0x00, 0x00, 0x00, 0x2a, // body 30 + 5 + 7
		0x00, 0x00, 0x00, 0x00,
		0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0x00, 0x07, // flags 7
		0x00, 0x00, 0x00, 0x0a, // expiration 10
		0, 0, 0, 0, 0, 0, 0, 0x14, // rev seqno 20
		0, 0, 0, 0, 0, 0, 0, 0x1e, // cas 30
		0x00, 0x00, 0x00, 0x02, // options: FORCE_ACCEPT_WITH_META_OPS
		0x00, 0x00, // meta length 0
		'm', 'y', 'k', 'e', 'y',
		'm', 'y', 'v', 'a', 'l', 'u', 'e',
	}, []byte{
		0x81, 0xa2, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x04, // status EINVAL
		0x00, 0x00, 0x00, 0x11, // body: the message
		0x00, 0x00, 0x00, 0x00,
		0, 0, 0, 0, 0, 0, 0, 0,
		'I', 'n', 'v', 'a', 'l', 'i', 'd', ' ', 'a', 'r', 'g', 'u', 'm', 'e', 'n', 't', 's',
	})
}

// xattrValue is a value with extended attributes (kv_engine's
// docs/ExtendedAttributes.md): the section's length (4), then each pair's
// length (4) and key NUL value NUL, then the body.
func xattrValue(key, value, body string) []byte {
	pair := key + "\x00" + value + "\x00"
	v := binary.BigEndian.AppendUint32(nil, uint32(4+len(pair)))
	v = binary.BigEndian.AppendUint32(v, uint32(len(pair)))
	return append(append(v, pair...), body...)
}

// TestXattrDocuments checks the plain commands on a document with
// extended attributes, as kv_engine answers them: reads give the body
// only, stores replace the body and keep the xattrs, APPEND, PREPEND and
// INCR work on the body.
func TestXattrDocuments(t *testing.T) {
	addr := kvServer(t, gocache.Config{})
	c := dialRaw(t, addr)
	c.hello(0x06, 0x07) // XATTR, XERROR
	xattr := func(key string) string {
		t.Helper()
		path := "meta"
		ex := binary.BigEndian.AppendUint16(nil, uint16(len(path)))
		res := c.do(gm.MCRequest{Opcode: gm.SUBDOC_GET, Key: []byte(key), Extras: append(ex, 0x04), Body: []byte(path)})
		if res.Status != gm.SUCCESS {
			t.Fatalf("xattr of %s: %v", key, res.Status)
		}
		return string(res.Body)
	}
	res := c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("d"), Extras: make([]byte, 8), DataType: gm.DatatypeFlagXattrs,
		Body: xattrValue("meta", `{"a":1}`, "body")})
	if res.Status != gm.SUCCESS {
		t.Fatalf("SET with xattrs: %v", res.Status)
	}
	if res := c.do(get("d")); string(res.Body) != "body" || res.DataType != 0 {
		t.Fatalf("GET: %q datatype %d", res.Body, res.DataType)
	}
	c.do(gm.MCRequest{Opcode: gm.APPEND, Key: []byte("d"), Body: []byte("+end")})
	c.do(gm.MCRequest{Opcode: gm.PREPEND, Key: []byte("d"), Body: []byte("start+")})
	if res := c.do(get("d")); string(res.Body) != "start+body+end" {
		t.Fatalf("after APPEND and PREPEND: %q", res.Body)
	}
	c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("d"), Extras: make([]byte, 8), Body: []byte("41")})
	if v := xattr("d"); v != `{"a":1}` {
		t.Fatalf("xattr after a SET of the body: %s", v)
	}
	inc := c.do(gm.MCRequest{Opcode: gm.INCREMENT, Key: []byte("d"), Extras: deltaExt(1, 0, 0)})
	if inc.Status != gm.SUCCESS || binary.BigEndian.Uint64(inc.Body) != 42 {
		t.Fatalf("INCR of the body: %v %x", inc.Status, inc.Body)
	}
	if res := c.do(get("d")); string(res.Body) != "42" || xattr("d") != `{"a":1}` {
		t.Fatalf("after INCR: %q", res.Body)
	}
	// Malformed sections are refused, as are xattrs from a client that
	// did not negotiate them.
	bad := xattrValue("meta", `{"a":1}`, "")
	bad[3] = 200
	if res := c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("e"), Extras: make([]byte, 8), DataType: gm.DatatypeFlagXattrs, Body: bad}); res.Status != gm.EINVAL {
		t.Fatalf("SET with a bad xattr section: %v", res.Status)
	}
	plain := dialRaw(t, addr)
	if res := plain.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("e"), Extras: make([]byte, 8), DataType: gm.DatatypeFlagXattrs, Body: xattrValue("m", "1", "")}); res.Status != gm.EINVAL {
		t.Fatalf("SET with xattrs without XATTR: %v", res.Status)
	}
}

// TestDeleteKeepsSystemXattrs: a deleted document keeps its system xattrs
// (keys starting with _) and loses the rest, as kv_engine's deletions do;
// a sub-document read of a deleted document finds them.
func TestDeleteKeepsSystemXattrs(t *testing.T) {
	addr := kvServer(t, gocache.Config{})
	c := dialRaw(t, addr)
	c.hello(0x06, 0x07)
	pair := func(k, v string) []byte {
		p := k + "\x00" + v + "\x00"
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...)
	}
	section := append(pair("_sys", `{"r":1}`), pair("user", `2`)...)
	value := append(binary.BigEndian.AppendUint32(nil, uint32(len(section))), section...)
	value = append(value, "body"...)
	c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("d"), Extras: make([]byte, 8), DataType: gm.DatatypeFlagXattrs, Body: value})
	c.do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte("d")})
	lookup := func(path string) gm.MCResponse {
		ex := binary.BigEndian.AppendUint16(nil, uint16(len(path)))
		ex = append(ex, 0x04, 0x04) // path flag XATTR, doc flag ACCESS_DELETED
		return c.do(gm.MCRequest{Opcode: gm.SUBDOC_GET, Key: []byte("d"), Extras: ex, Body: []byte(path)})
	}
	if res := lookup("_sys"); res.Status != gm.SUBDOC_SUCCESS_DELETED || string(res.Body) != `{"r":1}` {
		t.Fatalf("system xattr of the deleted document: %v %q", res.Status, res.Body)
	}
	if res := lookup("user"); res.Status == gm.SUBDOC_SUCCESS_DELETED || res.Status == gm.SUCCESS {
		t.Fatalf("user xattr kept by the deletion: %v %q", res.Status, res.Body)
	}
	if res := c.do(get("d")); res.Status != gm.KEY_ENOENT {
		t.Fatalf("GET of the deleted document: %v", res.Status)
	}
}

// TestMemcachedClientsUnchanged pins what the Couchbase side must not
// change for memcached's clients: any vbucket id is taken (memcached
// ignores the field), `bytes` drops on a delete even though a tombstone is
// kept, and with -M a full cache takes new items once its keys are
// deleted.
func TestMemcachedClientsUnchanged(t *testing.T) {
	addr := kvServer(t, gocache.Config{Cache: cache.Config{MaxBytes: 1 << 20, NoEvict: true}})
	c := dialRaw(t, addr)
	if res := c.do(gm.MCRequest{Opcode: gm.SET, VBucket: 2000, Key: []byte("k"), Extras: make([]byte, 8), Body: []byte("v")}); res.Status != gm.SUCCESS {
		t.Fatalf("SET to vbucket 2000: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET, VBucket: 0xffff, Key: []byte("zz")}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("GET from vbucket 0xffff: %v", res.Status)
	}
	value := make([]byte, 1000)
	n := 0
	for ; n < 5000; n++ {
		res := c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte(fmt.Sprintf("key%05d", n)), Extras: make([]byte, 8), Body: value})
		if res.Status == gm.ENOMEM {
			break
		}
	}
	if n == 5000 {
		t.Fatal("1 MiB never filled")
	}
	for i := range n {
		c.do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte(fmt.Sprintf("key%05d", i))})
	}
	c.do(gm.MCRequest{Opcode: gm.DELETE, VBucket: 2000, Key: []byte("k")})
	if st := stats(t, addr, ""); st["bytes"] != "0" || st["curr_items"] != "0" {
		t.Fatalf("after deleting everything: bytes %s, items %s", st["bytes"], st["curr_items"])
	}
	for i := range n {
		if res := c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte(fmt.Sprintf("new%05d", i)), Extras: make([]byte, 8), Body: value}); res.Status != gm.SUCCESS {
			t.Fatalf("store %d of %d after deleting everything: %v", i, n, res.Status)
		}
	}
}

// TestXattrEdges: APPEND with an xattr section is EINVAL, as kv_engine's
// validator; DEL_WITH_META keeps the xattrs of its value and nothing of a
// body; without XERROR, CAS_VALUE_INVALID is answered KEY_EEXISTS and an
// unknown collection EINVAL, on an open connection, as kv_engine remaps
// them.
func TestXattrEdges(t *testing.T) {
	addr := kvServer(t, gocache.Config{Manifest: []byte(testManifest)})
	c := dialRaw(t, addr)
	c.hello(0x06, 0x07)
	c.do(set("a", "body"))
	if res := c.do(gm.MCRequest{Opcode: gm.APPEND, Key: []byte("a"), DataType: gm.DatatypeFlagXattrs, Body: xattrValue("m", "1", "x")}); res.Status != gm.EINVAL {
		t.Fatalf("APPEND with xattrs: %v", res.Status)
	}
	c = dialRaw(t, addr)
	c.hello(0x06, 0x07)
	ex := make([]byte, 24)
	binary.BigEndian.PutUint64(ex[8:], 5)
	binary.BigEndian.PutUint64(ex[16:], 5)
	res := c.do(gm.MCRequest{Opcode: gm.DELETE_WITH_META, Key: []byte("d"), Extras: ex, DataType: gm.DatatypeFlagXattrs,
		Body: xattrValue("_sys", `{"x":1}`, "a body")})
	if res.Status != gm.SUCCESS {
		t.Fatalf("DEL_WITH_META: %v", res.Status)
	}
	path := "_sys"
	lx := append(binary.BigEndian.AppendUint16(nil, uint16(len(path))), 0x04, 0x04)
	if res := c.do(gm.MCRequest{Opcode: gm.SUBDOC_GET, Key: []byte("d"), Extras: lx, Body: []byte(path)}); res.Status != gm.SUBDOC_SUCCESS_DELETED || string(res.Body) != `{"x":1}` {
		t.Fatalf("xattr of the deleted document: %v %q", res.Status, res.Body)
	}
	doc := append(binary.BigEndian.AppendUint16(nil, 0), 0x00, 0x04) // whole document, ACCESS_DELETED
	if res := c.do(gm.MCRequest{Opcode: gm.SUBDOC_MULTI_LOOKUP, Key: []byte("d"), Extras: doc[3:],
		Body: []byte{byte(gm.GET), 0, 0, 0}}); res.Status != gm.SUBDOC_SUCCESS_DELETED && res.Status != gm.SUBDOC_MULTI_PATH_FAILURE_DELETED {
		t.Fatalf("body of the deleted document: %v %q", res.Status, res.Body)
	} else if bytes.Contains(res.Body, []byte("a body")) {
		t.Fatalf("the deleted document kept its body: %q", res.Body)
	}
	plain := dialRaw(t, addr)
	if res := plain.do(gm.MCRequest{Opcode: gm.SET_WITH_META, Key: []byte("z"), Extras: make([]byte, 24)}); res.Status != gm.KEY_EEXISTS {
		t.Fatalf("CAS_VALUE_INVALID without XERROR: %v", res.Status)
	}
	if res := plain.do(gm.MCRequest{Opcode: gm.COLLECTIONS_GET_CID, Key: []byte("app.nope")}); res.Status != gm.EINVAL {
		t.Fatalf("unknown collection without XERROR or Collections: %v", res.Status)
	}
	if res := plain.do(gm.MCRequest{Opcode: gm.NOOP}); res.Status != gm.SUCCESS {
		t.Fatal("connection closed after a remapped status")
	}
}
