package memcached

// Unit tests of the decoding of DCP messages into UprEvents, from wire
// vectors written here field by field (the layouts of the root package's
// dcp_golden_test.go, kv_engine's docs/dcp/documentation/commands/*.md).
// Each vector goes the way a packet goes in a feed: read by a
// gomemcached.Reader as the client's reader reads it, then packetRequest
// and newUprEvent.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"testing"

	refc "github.com/couchbase/gomemcached/client"

	"github.com/f8e615c8/gomemcached"
)

func u16b(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32b(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64b(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func join(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// dcpPacket encodes a packet: magic, opcode, then frames, extras, key,
// value with their lengths in the header, vbucket (or status), opaque, CAS.
func dcpPacket(magic byte, op gomemcached.CommandCode, datatype uint8, vb uint16, opaque uint32, cas uint64,
	frames, extras, key, value []byte) []byte {
	h := []byte{magic, byte(op)}
	if magic == gomemcached.FLEX_MAGIC || magic == gomemcached.FLEX_RES_MAGIC {
		h = append(h, byte(len(frames)), byte(len(key))) // frames length, key length
	} else {
		h = append(h, u16b(uint16(len(key)))...) // key length
	}
	h = append(h, byte(len(extras)), datatype)                                  // extras length, datatype
	h = append(h, u16b(vb)...)                                                  // vbucket or status
	h = append(h, u32b(uint32(len(frames)+len(extras)+len(key)+len(value)))...) // body length
	h = append(h, u32b(opaque)...)                                              // opaque
	h = append(h, u64b(cas)...)                                                 // CAS
	return join(h, frames, extras, key, value)
}

// decodeVector reads wire as the client's reader does and returns the
// packet as the feed sees it.
func decodeVector(t *testing.T, wire []byte) (rawPacket, *gomemcached.MCRequest) {
	t.Helper()
	rd := gomemcached.NewReader(bytes.NewReader(wire))
	var res gomemcached.MCResponse
	if err := rd.ReadResponse(&res); err != nil {
		t.Fatalf("ReadResponse: %v", err)
	}
	p := rawPacket{res: ownResponse(&res), magic: rd.Magic(), size: res.Size()}
	if p.size != len(wire) {
		t.Fatalf("size %d, wire %d", p.size, len(wire))
	}
	rq, err := packetRequest(p)
	if err != nil {
		t.Fatalf("packetRequest: %v", err)
	}
	return p, rq
}

// The values of the vectors, every byte set so that a field read at the
// wrong offset shows.
const (
	tSeqno  = 0x1122334455667788
	tRev    = 0x0102030405060709
	tCAS    = 0x8877665544332211
	tOpaque = 0xbeef03ff // application 0xbeef, vbucket 0x03ff
)

func TestUprEventDecode(t *testing.T) {
	stream := &UprStream{Vbucket: 0x3ff, Vbuuid: 0xa1b2c3d4e5f65768, StreamType: NonCollectionStream}
	collStream := &UprStream{Vbucket: 0x3ff, Vbuuid: 1, StreamType: CollectionsNonStreamId}
	sidStream := &UprStream{Vbucket: 0x3ff, Vbuuid: 1, StreamType: CollectionsStreamId}
	req := byte(gomemcached.REQ_MAGIC)
	tests := []struct {
		name   string
		stream *UprStream
		wire   []byte
		want   UprEvent // Opcode, VBucket, Opaque, VBuuid, SystemEvent, CollectionId filled in by the test
	}{
		{"mutation with nmeta", stream, dcpPacket(req, gomemcached.UPR_MUTATION, gomemcached.DatatypeFlagJSON, 0x3ff, tOpaque, tCAS, nil,
			join(u64b(tSeqno), // by seqno
				u64b(tRev),       // rev seqno
				u32b(0xfeedface), // flags
				u32b(0x7fffffff), // expiration
				u32b(0x01020304), // lock time
				u16b(3),          // nmeta: 3 bytes of metadata end the value
				[]byte{0x02}),    // nru
			[]byte("user:1"), // key
			join([]byte(`{"a":1}`), []byte{0xe1, 0xe2, 0xe3})), // value, then the metadata
			UprEvent{DataType: 1, Key: []byte("user:1"), Value: []byte(`{"a":1}`), ExtMeta: []byte{0xe1, 0xe2, 0xe3},
				Cas: tCAS, Seqno: tSeqno, RevSeqno: tRev, Flags: 0xfeedface, Expiry: 0x7fffffff, LockTime: 0x01020304,
				MetadataSize: 3, ValueLen: 7}},
		{"mutation in a collection", collStream, dcpPacket(req, gomemcached.UPR_MUTATION, 0, 0x3ff, tOpaque, tCAS, nil,
			join(u64b(tSeqno), u64b(tRev), u32b(0), u32b(0), u32b(0), u16b(0), []byte{0}), // seqnos, flags, exp, lock, nmeta 0, nru
			join([]byte{0x80, 0x01}, []byte("k")),                                         // key: collection 0x80 in LEB128, then "k"
			[]byte("v")),
			UprEvent{Key: []byte("k"), Value: []byte("v"), Cas: tCAS, Seqno: tSeqno, RevSeqno: tRev, ValueLen: 1, CollectionId: 0x80}},
		{"mutation with a stream id", sidStream, dcpPacket(gomemcached.FLEX_MAGIC, gomemcached.UPR_MUTATION, 0, 0x3ff, tOpaque, tCAS,
			[]byte{0x22, 0x00, 0x07}, // frame: id 2 (stream id), length 2, stream 7
			join(u64b(tSeqno), u64b(tRev), u32b(0), u32b(0), u32b(0), u16b(0), []byte{0}),
			[]byte{0x08, 'k'}, // collection 8, "k"
			nil),
			UprEvent{Key: []byte("k"), Cas: tCAS, Seqno: tSeqno, RevSeqno: tRev, CollectionId: 8, StreamId: ptr16(7)}},
		{"deletion v1", stream, dcpPacket(req, gomemcached.UPR_DELETION, 0, 0x3ff, tOpaque, tCAS, nil,
			join(u64b(tSeqno), // by seqno
				u64b(tRev), // rev seqno
				u16b(2)),   // nmeta
			[]byte("gone"), []byte{0xaa, 0xbb}), // key, no value, 2 bytes of metadata
			UprEvent{Key: []byte("gone"), ExtMeta: []byte{0xaa, 0xbb}, Cas: tCAS, Seqno: tSeqno, RevSeqno: tRev, MetadataSize: 2}},
		{"deletion v2", stream, dcpPacket(req, gomemcached.UPR_DELETION, gomemcached.DatatypeFlagXattrs, 0x3ff, tOpaque, tCAS, nil,
			join(u64b(tSeqno), // by seqno
				u64b(tRev),       // rev seqno
				u32b(0x65a1b2c3), // delete time
				[]byte{0}),       // unused
			[]byte("gone"), []byte{0, 0, 0, 0}), // key, an empty xattr blob
			UprEvent{DataType: 4, Key: []byte("gone"), Value: []byte{0, 0, 0, 0}, ValueLen: 4, Cas: tCAS, Seqno: tSeqno,
				RevSeqno: tRev, Expiry: 0x65a1b2c3}},
		{"expiration", stream, dcpPacket(req, gomemcached.UPR_EXPIRATION, 0, 0x3ff, tOpaque, tCAS, nil,
			join(u64b(tSeqno), u64b(tRev), u32b(0x65a1b2c3)), // seqnos, delete time
			[]byte("old"), nil),
			UprEvent{Key: []byte("old"), Cas: tCAS, Seqno: tSeqno, RevSeqno: tRev, Expiry: 0x65a1b2c3}},
		{"expiration, extras short", stream, dcpPacket(req, gomemcached.UPR_EXPIRATION, 0, 0x3ff, tOpaque, 0, nil,
			u64b(tSeqno), // 8 bytes: the reference panics reading 20
			[]byte("old"), nil),
			UprEvent{Key: []byte("old")}},
		{"snapshot marker v1", stream, dcpPacket(req, gomemcached.UPR_SNAPSHOT, 0, 0x3ff, tOpaque, 0, nil,
			join(u64b(tSeqno), // start
				u64b(tSeqno+9), // end
				u32b(0x05)),    // type: memory | checkpoint
			nil, nil),
			UprEvent{SnapstartSeq: tSeqno, SnapendSeq: tSeqno + 9, SnapshotType: 5}},
		{"snapshot marker v2.0", stream, dcpPacket(req, gomemcached.UPR_SNAPSHOT, 0, 0x3ff, tOpaque, 0, nil,
			[]byte{0}, // version 0: the value holds the marker
			nil,
			join(u64b(tSeqno), // start
				u64b(tSeqno+9), // end
				u32b(0x02),     // type: disk
				u64b(tSeqno+9), // max visible
				u64b(tSeqno))), // high completed
			UprEvent{SnapstartSeq: tSeqno, SnapendSeq: tSeqno + 9, SnapshotType: 2, ValueLen: 36,
				Value: join(u64b(tSeqno), u64b(tSeqno+9), u32b(0x02), u64b(tSeqno+9), u64b(tSeqno))}},
		{"system event: collection created, v0", stream, dcpPacket(req, gomemcached.DCP_SYSTEM_EVENT, 0, 0x3ff, tOpaque, 0, nil,
			join(u64b(tSeqno), // by seqno
				u32b(0),    // event: collection create
				[]byte{0}), // version 0
			[]byte("orders"),                    // the collection's name
			join(u64b(0x2a), u32b(8), u32b(9))), // manifest uid, scope, collection
			UprEvent{Key: []byte("orders"), Seqno: tSeqno, SystemEvent: CollectionCreate, ValueLen: 16,
				Value: join(u64b(0x2a), u32b(8), u32b(9))}},
		{"seqno advanced", stream, dcpPacket(req, gomemcached.DCP_SEQNO_ADV, 0, 0x3ff, tOpaque, 0, nil,
			u64b(tSeqno), nil, nil), // the seqno
			UprEvent{Seqno: tSeqno}},
		{"OSO snapshot start", stream, dcpPacket(req, gomemcached.DCP_OSO_SNAPSHOT, 0, 0x3ff, tOpaque, 0, nil,
			u32b(1), nil, nil), // flags: start
			UprEvent{Flags: 1}},
		{"stream end, too slow", stream, dcpPacket(req, gomemcached.UPR_STREAMEND, 0, 0x3ff, tOpaque, 0, nil,
			u32b(4), nil, nil), // reason 4: slow
			UprEvent{Flags: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, rq := decodeVector(t, tt.wire)
			got := newUprEvent(rq, tt.stream, p.size)
			want := tt.want
			want.Opcode = gomemcached.CommandCode(tt.wire[1])
			want.VBucket, want.Opaque, want.VBuuid = tt.stream.Vbucket, 0xbeef, tt.stream.Vbuuid
			if want.Opcode != gomemcached.DCP_SYSTEM_EVENT {
				want.SystemEvent = InvalidSysEvent
			}
			if want.CollectionId == 0 {
				want.CollectionId = math.MaxUint32
			}
			want.AckSize = uint32(len(tt.wire)) // every one of these is flow-controlled
			if d := diffEvent(got, &want); d != "" {
				t.Errorf("decoded %s", d)
			}
		})
	}
}

func ptr16(v uint16) *uint16 { return &v }

// diffEvent describes how got differs from want, "" if it does not.
func diffEvent(got, want *UprEvent) string {
	norm := func(e *UprEvent) UprEvent {
		c := *e
		for _, b := range []*[]byte{&c.Key, &c.Value, &c.ExtMeta, &c.OldValue} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		return c
	}
	g, w := norm(got), norm(want)
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if !bytes.Equal(gj, wj) {
		return "\n got " + string(gj) + "\nwant " + string(wj)
	}
	return ""
}

// TestUprEventBadNmeta: an nmeta larger than the value is an error, not
// a panic or a value cut short.
func TestUprEventBadNmeta(t *testing.T) {
	wire := dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_MUTATION, 0, 1, 1, 0, nil,
		join(u64b(1), u64b(1), u32b(0), u32b(0), u32b(0), u16b(9), []byte{0}), // nmeta 9
		[]byte("k"), []byte("v")) // a value of 1 byte
	rd := gomemcached.NewReader(bytes.NewReader(wire))
	var res gomemcached.MCResponse
	if err := rd.ReadResponse(&res); err != nil {
		t.Fatal(err)
	}
	if _, err := packetRequest(rawPacket{res: &res, magic: rd.Magic(), size: len(wire)}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err %v", err)
	}
}

// flatCollection builds a FlatBuffers Collection table (events.fbs):
// uid, scopeId, collectionId, ttlValid absent, maxTtl.
func flatCollection(uid uint64, scope, cid, ttl uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 20) // root: the table at 20
	// vtable at 4: its size (4 + 2*5 slots), the table's size, then the
	// slots' offsets in the table: uid 4, scopeId 12, collectionId 16,
	// ttlValid absent, maxTtl 20.
	b = le.AppendUint16(b, 14)
	b = le.AppendUint16(b, 24)
	for _, off := range []uint16{4, 12, 16, 0, 20} {
		b = le.AppendUint16(b, off)
	}
	b = append(b, 0, 0)           // padding to 20
	b = le.AppendUint32(b, 16)    // table: soffset to the vtable, 20-16 = 4
	b = le.AppendUint64(b, uid)   // +4
	b = le.AppendUint32(b, scope) // +12
	b = le.AppendUint32(b, cid)   // +16
	b = le.AppendUint32(b, ttl)   // +20
	return b
}

func TestSystemEventAccessors(t *testing.T) {
	v0coll := join(u64b(0x2a), u32b(8), u32b(9))           // manifest, scope, collection
	v1coll := join(u64b(0x2b), u32b(8), u32b(9), u32b(60)) // ..., max TTL
	v0scope := join(u64b(0x2c), u32b(8))                   // manifest, scope
	fb := flatCollection(0x11223344, 8, 9, 3600)
	tests := []struct {
		name    string
		ev      UprEvent
		uid     uint64
		scope   uint32
		cid     uint32
		ttl     uint32
		errs    [4]error // of GetManifestId, GetScopeId, GetCollectionId, GetMaxTTL
		compare bool     // also against the reference's accessors
	}{
		{"collection create v0", UprEvent{SystemEvent: CollectionCreate, Value: v0coll}, 0x2a, 8, 9, 0,
			[4]error{nil, nil, nil, ErrorNoMaxTTL}, true},
		{"collection create v1", UprEvent{SystemEvent: CollectionCreate, SysEventVersion: 1, Value: v1coll}, 0x2b, 8, 9, 60,
			[4]error{}, true},
		{"collection drop v0", UprEvent{SystemEvent: CollectionDrop, Value: v0coll}, 0x2a, 8, 9, 0,
			[4]error{nil, nil, nil, ErrorInvalidOp}, true},
		{"collection drop v1", UprEvent{SystemEvent: CollectionDrop, SysEventVersion: 1, Value: v0coll}, 0, 0, 0, 0,
			[4]error{ErrorInvalidVersion, ErrorInvalidVersion, ErrorInvalidVersion, ErrorInvalidOp}, true},
		{"scope create v0", UprEvent{SystemEvent: ScopeCreate, Value: v0scope}, 0x2c, 8, 0, 0,
			[4]error{nil, nil, ErrorInvalidOp, ErrorInvalidOp}, true},
		{"scope drop short", UprEvent{SystemEvent: ScopeDrop, Value: u64b(1)}, 1, 0, 0, 0,
			[4]error{nil, ErrorValueTooShort, ErrorInvalidOp, ErrorInvalidOp}, true},
		{"collection changed v0", UprEvent{SystemEvent: CollectionChanged, Value: v1coll}, 0, 0, 0, 0,
			[4]error{ErrorInvalidOp, ErrorInvalidOp, ErrorInvalidOp, ErrorInvalidOp}, true},
		{"collection create v2", UprEvent{SystemEvent: CollectionCreate, SysEventVersion: 2, Value: fb}, 0x11223344, 8, 9, 3600,
			[4]error{}, true},
		{"collection changed v2", UprEvent{SystemEvent: CollectionChanged, SysEventVersion: 2, Value: fb}, 0x11223344, 8, 9, 3600,
			[4]error{}, true},
		{"scope drop v2", UprEvent{SystemEvent: ScopeDrop, SysEventVersion: 2, Value: fb}, 0x11223344, 8, 0, 0,
			[4]error{nil, nil, ErrorInvalidOp, ErrorInvalidOp}, true},
		// Malformed FlatBuffers: the reference's readers panic.
		{"v2 truncated", UprEvent{SystemEvent: CollectionCreate, SysEventVersion: 2, Value: fb[:22]}, 0, 0, 0, 0,
			[4]error{ErrorValueTooShort, ErrorValueTooShort, ErrorValueTooShort, ErrorValueTooShort}, false},
		{"v2 root out of range", UprEvent{SystemEvent: CollectionCreate, SysEventVersion: 2, Value: []byte{0xff, 0xff, 0, 0}}, 0, 0, 0, 0,
			[4]error{ErrorValueTooShort, ErrorValueTooShort, ErrorValueTooShort, ErrorValueTooShort}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			ev.Opcode = gomemcached.DCP_SYSTEM_EVENT
			ev.ValueLen = len(ev.Value)
			uid, e0 := ev.GetManifestId()
			scope, e1 := ev.GetScopeId()
			cid, e2 := ev.GetCollectionId()
			ttl, e3 := ev.GetMaxTTL()
			if errs := [4]error{e0, e1, e2, e3}; errs != tt.errs {
				t.Errorf("errors %v, want %v", errs, tt.errs)
			}
			if uid != tt.uid || scope != tt.scope || cid != tt.cid || ttl != tt.ttl {
				t.Errorf("uid %#x scope %d cid %d ttl %d", uid, scope, cid, ttl)
			}
			if !tt.compare {
				return
			}
			ref := refc.UprEvent{SystemEvent: refc.SystemEventType(ev.SystemEvent), SysEventVersion: ev.SysEventVersion,
				Value: ev.Value, ValueLen: ev.ValueLen}
			ruid, _ := ref.GetManifestId()
			rscope, _ := ref.GetScopeId()
			rcid, _ := ref.GetCollectionId()
			rttl, _ := ref.GetMaxTTL()
			if ruid != uid || rscope != scope || rcid != cid || rttl != ttl {
				t.Errorf("reference: uid %#x scope %d cid %d ttl %d", ruid, rscope, rcid, rttl)
			}
		})
	}
}

func TestUprEventMethods(t *testing.T) {
	ev := &UprEvent{Opcode: gomemcached.UPR_MUTATION, DataType: SnappyDataType, CollectionId: math.MaxUint32,
		Key: []byte("k"), FailoverLog: &FailoverLog{{1, 2}}, StreamId: ptr16(3)}
	if !ev.IsSnappyDataType() || ev.IsCollectionType() || ev.String() != "UPR_MUTATION" {
		t.Errorf("snappy %v collection %v name %q", ev.IsSnappyDataType(), ev.IsCollectionType(), ev.String())
	}
	c := ev.Clone()
	c.Key[0], (*c.FailoverLog)[0][0], *c.StreamId = 'x', 9, 9
	if ev.Key[0] != 'k' || (*ev.FailoverLog)[0][0] != 1 || *ev.StreamId != 3 {
		t.Error("Clone shares memory")
	}
	if (&UprEvent{Opcode: 0xee}).String() != "#238" {
		t.Error("unnamed opcode")
	}
	for flags, want := range map[uint32]bool{1: true, 2: false} {
		if b, err := (&UprEvent{Opcode: gomemcached.DCP_OSO_SNAPSHOT, Flags: flags}).GetOsoBegin(); err != nil || b != want {
			t.Errorf("OSO flags %d: %v %v", flags, b, err)
		}
	}
	if _, err := (&UprEvent{Opcode: gomemcached.DCP_OSO_SNAPSHOT, Flags: 3}).GetOsoBegin(); err != ErrorInvalidOp {
		t.Errorf("OSO flags 3: %v", err)
	}
	if name, err := (&UprEvent{SystemEvent: ScopeCreate, Key: []byte("s")}).GetSystemEventName(); name != "s" || err != nil {
		t.Errorf("name %q %v", name, err)
	}
	var empty *FailoverLog
	if _, _, err := empty.Latest(); err != ErrorInvalidLog {
		t.Errorf("Latest of nil: %v", err)
	}
	if u, s, err := (&FailoverLog{{7, 8}, {5, 6}}).Latest(); u != 7 || s != 8 || err != nil {
		t.Errorf("Latest: %d %d %v", u, s, err)
	}
	for _, tt := range []struct {
		in      []byte
		n, want uint32
		used    int
	}{
		{[]byte{0x00}, 1, 0, 1},
		{[]byte{0x80, 0x01, 'k'}, 3, 0x80, 2},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 5, 0xffffffff, 5},
		{[]byte{0x80, 0x80}, 9, 0, 2}, // cachedLen past the end: stops at the end
	} {
		v, used := Uleb128(tt.in).ToUint32(int(tt.n))
		if v != tt.want || used != tt.used {
			t.Errorf("ToUint32(% x): %#x %d", tt.in, v, used)
		}
	}
}

// TestCollectionsFilterBody compares the filters' JSON with the
// reference's, and checks the one case where they differ on purpose.
func TestCollectionsFilterBody(t *testing.T) {
	for _, f := range []CollectionsFilter{
		{CollectionsList: []uint32{8, 0x1f}},
		{UseManifestUid: true, ManifestUid: 0x2a},
		{UseManifestUid: true, ManifestUid: 0x2a, CollectionsList: []uint32{9}},
		{UseStreamId: true, StreamId: 3, CollectionsList: []uint32{9}},
		{UseStreamId: true, StreamId: 3, ScopeId: 8},
		{UseStreamId: true, UseManifestUid: true},
		{CollectionsList: []uint32{8}, ScopeId: 8},
	} {
		got, err := f.ToStreamReqBody()
		rf := refc.CollectionsFilter(f)
		want, rerr := rf.ToStreamReqBody()
		if !bytes.Equal(got, want) || (err == nil) != (rerr == nil) {
			t.Errorf("%+v: %s %v, reference %s %v", f, got, err, want, rerr)
		}
	}
	// A scope without a stream id: kv_engine takes it.
	if got, err := (&CollectionsFilter{ScopeId: 8}).ToStreamReqBody(); string(got) != `{"scope":"8"}` || err != nil {
		t.Errorf("scope filter: %s %v", got, err)
	}
	if _, err := (&CollectionsFilter{}).ToStreamReqBody(); err == nil {
		t.Error("empty filter accepted")
	}
}

// FuzzUprEvent feeds arbitrary packets to the feed's decoding, as each
// stream type and as a system event's value: nothing may panic.
func FuzzUprEvent(f *testing.F) {
	f.Add(dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_MUTATION, 0, 1, 1, 1, nil,
		join(u64b(1), u64b(1), u32b(0), u32b(0), u32b(0), u16b(2), []byte{0}), []byte{0x80, 0x01, 'k'}, []byte("vmm")))
	f.Add(dcpPacket(gomemcached.FLEX_MAGIC, gomemcached.UPR_DELETION, 0, 1, 1, 1, []byte{0x22, 0, 7},
		join(u64b(1), u64b(1), u16b(0)), []byte{0xff}, nil))
	f.Add(dcpPacket(gomemcached.REQ_MAGIC, gomemcached.DCP_SYSTEM_EVENT, 0, 1, 1, 0, nil,
		join(u64b(1), u32b(0), []byte{2}), []byte("c"), flatCollection(1, 2, 3, 4)))
	f.Add(dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_SNAPSHOT, 0, 1, 1, 0, nil, []byte{0}, nil, make([]byte, 20)))
	f.Fuzz(func(t *testing.T, wire []byte) {
		rd := gomemcached.NewReader(bytes.NewReader(wire))
		var res gomemcached.MCResponse
		if rd.ReadResponse(&res) != nil {
			return
		}
		p := rawPacket{res: ownResponse(&res), magic: rd.Magic(), size: res.Size()}
		rq, err := packetRequest(p)
		if err != nil {
			return
		}
		for _, st := range []DcpStreamType{NonCollectionStream, CollectionsNonStreamId, CollectionsStreamId} {
			ev := newUprEvent(rq, &UprStream{StreamType: st}, p.size)
			ev.GetManifestId()
			ev.GetScopeId()
			ev.GetCollectionId()
			ev.GetMaxTTL()
			ev.GetOsoBegin()
			for v := range uint8(3) {
				e := *ev
				e.SysEventVersion = v
				for se := CollectionCreate; se <= CollectionChanged; se++ {
					e.SystemEvent = se
					e.GetManifestId()
					e.GetScopeId()
					e.GetCollectionId()
					e.GetMaxTTL()
				}
			}
		}
	})
}
