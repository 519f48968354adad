package memcached

// OBSERVE, OBSERVE_SEQNO and GET_ALL_VB_SEQNOS: golden request bytes,
// decoding of answers, and the methods against gocache. Sources: kv_engine's
// docs/BinaryProtocol.md §0x92 (OBSERVE's request), its
// daemon/protocol/mcbp/observe_context.cc (the answer: vb, key length, key,
// state, CAS per key; the persistence hint in the header's CAS),
// engines/ep/src/ep_engine.cc observe_seqno (OBSERVE_SEQNO's answer,
// formats 0 and 1) and docs/dcp/documentation/commands/get_seqno.md.

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// observeAnswer answers an OBSERVE by echoing each key with state st and
// CAS cas, and persistence/replication hints of 3 and 4 ms.
func observeAnswer(st ObservedStatus, cas uint64) func(*gomemcached.MCRequest) []*gomemcached.MCResponse {
	return func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		var body []byte
		for b := req.Body; len(b) >= 4; {
			n := int(binary.BigEndian.Uint16(b[2:4]))
			body = append(body, b[:4+n]...)
			body = append(body, byte(st))
			body = binary.BigEndian.AppendUint64(body, cas)
			b = b[4+n:]
		}
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Body: body, Cas: 3<<32 | 4}}
	}
}

func TestObserveWire(t *testing.T) {
	c, f := newWireFake(t, nil, observeAnswer(ObservedPersisted, 0x1234))
	r, err := c.Observe(0x2d0, "mykey")
	want := ObserveResult{Status: ObservedPersisted, Cas: 0x1234, PersistenceTime: 3 * time.Millisecond, ReplicationTime: 4 * time.Millisecond}
	if err != nil || r != want {
		t.Errorf("Observe: %+v, %v; want %+v", r, err, want)
	}
	wantWire(t, "Observe", f.last(t, false), vec(t,
		"80 92 0000",       // OBSERVE, "MUST NOT have key"
		"00 00",            // "MUST NOT have extra", raw
		"02d0",             // vbucket (the reference sets it in the header too)
		"00000009",         // total body: the value
		"00000000",         // opaque
		"0000000000000000", // CAS
		"02d0",             // value: vbucket id
		"0005",             // key length
		lit("mykey"),       // key
	))

	// With collections, the key carries its collection id (observe_context.cc
	// reads a DocKey with the id when the connection negotiated them).
	c, f = newWireFake(t, Features{FeatureCollections}, observeAnswer(ObservedNotPersisted, 7))
	r, err = c.Observe(1, "k")
	if err != nil || r.Status != ObservedNotPersisted || r.Cas != 7 {
		t.Errorf("Observe with collections: %+v, %v", r, err)
	}
	wantWire(t, "Observe with collections", f.last(t, false), vec(t,
		"80 92 0000 00 00 0001 00000006 00000000 0000000000000000",
		"0001", // vbucket
		"0002", // key length: collection id + key
		"00",   // the default collection
		lit("k"),
	))
}

func TestObserveAnswers(t *testing.T) {
	// Two keys, as a multi-key OBSERVE answers.
	body := vec(t,
		"0003", "0002", lit("ab"), "81", "00000000000000ff", // vb 3, "ab", logically deleted, CAS 0xff
		"0004", "0001", lit("c"), "80", "0000000000000000", // vb 4, "c", not found
	)
	keys, err := DecodeObserve(nil, body)
	if err != nil || len(keys) != 2 ||
		keys[0].VB != 3 || string(keys[0].Key) != "ab" || keys[0].Status != ObservedLogicallyDeleted || keys[0].Cas != 0xff ||
		keys[1].VB != 4 || string(keys[1].Key) != "c" || keys[1].Status != ObservedNotFound || keys[1].Cas != 0 {
		t.Errorf("DecodeObserve: %+v, %v", keys, err)
	}
	for n := 1; n < len(body); n++ {
		if n == 15 {
			continue // a whole first entry
		}
		if _, err := DecodeObserve(nil, body[:n]); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrBadResponse) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	p, r := ObserveTimes(&gomemcached.MCResponse{Cas: 250<<32 | 12})
	if p != 250*time.Millisecond || r != 12*time.Millisecond {
		t.Errorf("ObserveTimes: %v, %v", p, r)
	}

	// Answers Observe refuses: empty, cut short, about another key.
	answers := []func(*gomemcached.MCRequest) []*gomemcached.MCResponse{
		answerWith(gomemcached.MCResponse{}),
		answerWith(gomemcached.MCResponse{Body: vec(t, "0000 0001", lit("k"), "01")}),
		answerWith(gomemcached.MCResponse{Body: vec(t, "0000 0001", lit("x"), "01 0000000000000001")}),
		answerWith(gomemcached.MCResponse{Body: vec(t, "0009 0001", lit("k"), "01 0000000000000001")}),
	}
	for i, a := range answers {
		c, _ := newWireFake(t, nil, a)
		if _, err := c.Observe(0, "k"); !errors.Is(err, ErrBadResponse) {
			t.Errorf("answer %d: %v", i, err)
		}
		alive(t, c)
	}
	c, _ := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Status: gomemcached.NOT_MY_VBUCKET}))
	if _, err := c.Observe(0, "k"); !errors.Is(err, gomemcached.ErrNotMyVBucket) {
		t.Errorf("failed status: %v", err)
	}
}

func TestCheckPersistence(t *testing.T) {
	cases := []struct {
		r                      ObserveResult
		cas                    uint64
		deletion               bool
		persisted, overwritten bool
	}{
		{ObserveResult{Status: ObservedPersisted, Cas: 5}, 5, false, true, false},
		{ObserveResult{Status: ObservedNotPersisted, Cas: 5}, 5, false, false, false},
		{ObserveResult{Status: ObservedPersisted, Cas: 6}, 5, false, false, true},
		{ObserveResult{Status: ObservedNotFound}, 5, true, true, false},
		{ObserveResult{Status: ObservedLogicallyDeleted, Cas: 5}, 5, true, false, false},
		{ObserveResult{Status: ObservedLogicallyDeleted, Cas: 9}, 5, true, false, true},
		{ObserveResult{Status: ObservedNotFound}, 5, false, false, true},
	}
	for _, tc := range cases {
		p, o := tc.r.CheckPersistence(tc.cas, tc.deletion)
		if p != tc.persisted || o != tc.overwritten {
			t.Errorf("%+v.CheckPersistence(%d, %v) = %v, %v", tc.r, tc.cas, tc.deletion, p, o)
		}
	}
}

func TestObserveSeqWire(t *testing.T) {
	format0 := vec(t,
		"00",               // format 0: the vbucket UUID is current
		"0005",             // vbucket
		"0000000000abcdef", // vbucket UUID
		"0000000000000010", // last persisted seqno
		"0000000000000020", // current seqno
	)
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Body: format0}))
	r, err := c.ObserveSeq(5, 0xabcdef)
	want := ObserveSeqResult{VbId: 5, Vbuuid: 0xabcdef, LastPersistedSeqNo: 0x10, CurrentSeqNo: 0x20}
	if err != nil || *r != want {
		t.Errorf("ObserveSeq: %+v, %v", r, err)
	}
	wantWire(t, "ObserveSeq", f.last(t, false), vec(t,
		"80 91 0000",       // OBSERVE_SEQNO, no key
		"00 00 0005",       // no extras, raw, vbucket 5
		"00000008",         // total body
		"00000000",         // opaque
		"0000000000000000", // CAS
		"0000000000abcdef", // value: the vbucket UUID
	))
	// Format 1 (ep_engine.cc: the UUID sent is an older branch): the
	// current UUID, then the old one and the last seqno of its branch.
	format1 := vec(t, "01 0005", "00000000000000ff", "0000000000000010", "0000000000000020",
		"0000000000abcdef", "000000000000000c")
	r, err = DecodeObserveSeq(format1)
	want = ObserveSeqResult{Failover: 1, VbId: 5, Vbuuid: 0xff, LastPersistedSeqNo: 0x10, CurrentSeqNo: 0x20,
		OldVbuuid: 0xabcdef, LastSeqNo: 0xc}
	if err != nil || *r != want {
		t.Errorf("format 1: %+v, %v", r, err)
	}
	for _, bad := range [][]byte{format0[:26], format1[:42], nil} {
		if _, err := DecodeObserveSeq(bad); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d bytes: %v", len(bad), err)
		}
	}
}

// The request vectors of get_seqno.md, and its response.
func TestGetAllVbSeqnosWire(t *testing.T) {
	answer := vec(t,
		"000a", "0000000000005432", // vb 10, seqno 21554
		"000d", "0000000001343214", // vb 13, seqno 20197908
		"007f", "0000000000000004", // vb 127, seqno 4
		"02d0", "0000000000006524", // vb 720, seqno 25892
	)
	want := map[uint16]uint64{10: 21554, 13: 20197908, 127: 4, 720: 25892}
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Body: answer}))
	stale := map[uint16]uint64{10: 1, 999: 5}
	m, err := c.GetAllVbSeqnos(stale)
	if err != nil || len(m) != 4 || m[10] != 21554 || m[720] != 25892 || m[999] != 0 || len(stale) != 4 {
		t.Errorf("GetAllVbSeqnos: %v, %v (the map given must end up holding exactly the answer)", m, err)
	}
	for vb, s := range want {
		if m[vb] != s {
			t.Errorf("vb %d: %d, want %d", vb, m[vb], s)
		}
	}
	wantWire(t, "all alive vbuckets", f.last(t, false), vec(t,
		"80 48 0000", // GET_ALL_VB_SEQNOS, no key
		"00 00 0000", // no extras: every alive vbucket
		"00000000 00000000 0000000000000000",
	))
	replica := VbReplica
	if _, err := c.GetAllVbSeqnos(nil, &ClientContext{VbState: &replica}); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "replica vbuckets", f.last(t, false), vec(t,
		"80 48 0000",
		"04 00 0000", // extras: the state
		"00000004 00000000 0000000000000000",
		"00000002", // vb state: replica
	))
	// Without collections, a context's collection is not sent.
	if _, err := c.GetAllVbSeqnos(nil, &ClientContext{CollId: 0xcafef00d}); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "no state, no collections", f.last(t, false), vec(t, "80 48 0000 00 00 0000 00000000 00000000 0000000000000000"))

	c, f = newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Body: answer[:10]}))
	if m, err := c.GetAllVbSeqnos(nil, &ClientContext{CollId: 0xcafef00d}); err != nil || len(m) != 1 || m[10] != 21554 {
		t.Fatalf("%v, %v", m, err)
	}
	wantWire(t, "a collection, any alive state", f.last(t, false), vec(t,
		"80 48 0000",
		"08 00 0000", // extras: state and collection
		"00000008 00000000 0000000000000000",
		"00000000", // vb state: alive
		"cafef00d", // collection id
	))
	if _, err := c.GetAllVbSeqnos(nil, &ClientContext{CollId: 0xcafef00d, VbState: &replica}); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "a collection, replica", f.last(t, false), vec(t,
		"80 48 0000 08 00 0000 00000008 00000000 0000000000000000",
		"00000002", "cafef00d",
	))
	if _, err := c.GetAllVbSeqnos(nil); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "no context, collections", f.last(t, false), vec(t, "80 48 0000 00 00 0000 00000000 00000000 0000000000000000"))

	list, err := DecodeVbSeqnos(nil, answer)
	if err != nil || len(list) != 4 || list[3] != (VbSeqno{VB: 720, Seqno: 25892}) {
		t.Errorf("DecodeVbSeqnos: %v, %v", list, err)
	}
	if _, err := DecodeVbSeqnos(nil, answer[:15]); !errors.Is(err, ErrBadResponse) {
		t.Errorf("15 bytes: %v", err)
	}
	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{Body: answer[:15]}))
	keep := map[uint16]uint64{1: 1}
	if m, err := c.GetAllVbSeqnos(keep); !errors.Is(err, ErrBadResponse) || len(m) != 1 || m[1] != 1 {
		t.Errorf("malformed answer: %v, %v (the map must be left alone)", m, err)
	}
}

// seqnoOf returns the vbucket UUID and seqno of a mutation's answer, which
// has them with FeatureMutationToken.
func seqnoOf(t *testing.T, res *gomemcached.MCResponse) (uint64, uint64) {
	t.Helper()
	if len(res.Extras) != 16 {
		t.Fatalf("a mutation answered with %d bytes of extras, want the 16 of its token", len(res.Extras))
	}
	return binary.BigEndian.Uint64(res.Extras[:8]), binary.BigEndian.Uint64(res.Extras[8:])
}

func TestObserveGocache(t *testing.T) {
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "observe"
	set := ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	r, err := c.Observe(0, k)
	failUnknown(t, err, "OBSERVE")
	if err != nil || r.Cas != set.Cas || (r.Status != ObservedNotPersisted && r.Status != ObservedPersisted) {
		t.Errorf("Observe of a live key: %+v, %v (CAS %#x)", r, err, set.Cas)
	}
	if _, over := r.CheckPersistence(set.Cas, false); over {
		t.Error("CheckPersistence: overwritten")
	}
	r, err = c.Observe(0, k+"absent")
	if err != nil || r.Status != ObservedNotFound {
		t.Errorf("Observe of a missing key: %+v, %v", r, err)
	}
	ok(t)(c.Del(0, k))
	r, err = c.Observe(0, k)
	if err != nil || (r.Status != ObservedLogicallyDeleted && r.Status != ObservedNotFound) {
		t.Errorf("Observe of a deleted key: %+v, %v", r, err)
	}
}

func TestObserveSeqGocache(t *testing.T) {
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "observeseq"
	if !c.IsFeatureEnabled(FeatureMutationToken) {
		t.Fatal("gocache did not turn mutation tokens on")
	}
	uuid, seqno := seqnoOf(t, ok(t)(c.Set(3, k, 0, 0, []byte("v"))))
	r, err := c.ObserveSeq(3, uuid)
	failUnknown(t, err, "OBSERVE_SEQNO")
	if err != nil || r.Failover != 0 || r.VbId != 3 || r.Vbuuid != uuid || r.CurrentSeqNo < seqno || r.LastPersistedSeqNo > r.CurrentSeqNo {
		t.Errorf("ObserveSeq: %+v, %v (token %#x/%d)", r, err, uuid, seqno)
	}
	_, err = c.ObserveSeq(3, uuid+1)
	if !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("an unknown vbucket UUID: %v", err)
	}
}

func TestGetAllVbSeqnosGocache(t *testing.T) {
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "seqnos"
	_, seqno := seqnoOf(t, ok(t)(c.Set(5, k, 0, 0, []byte("v"))))
	m, err := c.GetAllVbSeqnos(nil)
	failUnknown(t, err, "GET_ALL_VB_SEQNOS")
	if err != nil || len(m) == 0 || m[5] < seqno {
		t.Fatalf("GetAllVbSeqnos: %d vbuckets, vb 5 at %d, %v (the set's seqno %d)", len(m), m[5], err, seqno)
	}
	active := VbActive
	ma, err := c.GetAllVbSeqnos(nil, &ClientContext{VbState: &active})
	if err != nil || len(ma) != len(m) || ma[5] != m[5] {
		t.Errorf("active vbuckets: %d, %v", len(ma), err)
	}
	replica := VbReplica
	if mr, err := c.GetAllVbSeqnos(nil, &ClientContext{VbState: &replica}); err != nil || len(mr) != 0 {
		t.Errorf("replica vbuckets: %v, %v", mr, err)
	}
	// Per collection: a write to c1 moves c1's seqno, not the default's.
	_, s1 := seqnoOf(t, ok(t)(c.Set(5, k, 0, 0, []byte("v"), &ClientContext{CollId: testCollection})))
	mc, err := c.GetAllVbSeqnos(nil, &ClientContext{CollId: testCollection})
	if err != nil || mc[5] != s1 {
		t.Errorf("collection c1: vb 5 at %d, %v; want %d", mc[5], err, s1)
	}
	md, err := c.GetAllVbSeqnos(nil, &ClientContext{CollId: 0})
	if err != nil || md[5] != seqno {
		t.Errorf("default collection: vb 5 at %d, %v; want %d", md[5], err, seqno)
	}
}
