package memcached

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/f8e615c8/gomemcached"
)

// feedPkt encodes a producer's message.
func feedPkt(op gomemcached.CommandCode, vb uint16, extras, key, value []byte) []byte {
	return (&gomemcached.MCRequest{Opcode: op, VBucket: vb, Opaque: 0x1210, Cas: 0xca5, Extras: extras, Key: key, Body: value}).Bytes()
}

// be joins big-endian fields: uint64, uint32, uint16 and uint8 values.
func be(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case uint64:
			b = binary.BigEndian.AppendUint64(b, v)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case uint16:
			b = binary.BigEndian.AppendUint16(b, v)
		case uint8:
			b = append(b, v)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

// fbCollection builds a version 2 collection event value (events.fbs's
// Collection table).
func fbCollection(uid uint64, scope, cid uint32, ttl uint32, ttlValid bool, name string) []byte {
	bld := flatbuffers.NewBuilder(0)
	n := bld.CreateString(name)
	bld.StartObject(6)
	bld.PrependUint64Slot(0, uid, 0)
	bld.PrependUint32Slot(1, scope, 0)
	bld.PrependUint32Slot(2, cid, 0)
	bld.PrependBoolSlot(3, ttlValid, false)
	bld.PrependUint32Slot(4, ttl, 0)
	bld.PrependUOffsetTSlot(5, n, 0)
	bld.Finish(bld.EndObject())
	return bld.FinishedBytes()
}

// fbScope builds a version 2 scope event value (events.fbs's Scope or
// DroppedScope table).
func fbScope(uid uint64, scope uint32, name string) []byte {
	bld := flatbuffers.NewBuilder(0)
	var n flatbuffers.UOffsetT
	if name != "" {
		n = bld.CreateString(name)
	}
	bld.StartObject(3)
	bld.PrependUint64Slot(0, uid, 0)
	bld.PrependUint32Slot(1, scope, 0)
	if name != "" {
		bld.PrependUOffsetTSlot(2, n, 0)
	}
	bld.Finish(bld.EndObject())
	return bld.FinishedBytes()
}

// withStreamID makes pkt an alt request with a stream id frame.
func withStreamID(pkt []byte, sid uint16) []byte {
	out := append([]byte(nil), pkt[:24]...)
	out[0] = magicAltReq
	out[2], out[3] = 3, pkt[3] // frames, key length (short)
	binary.BigEndian.PutUint32(out[8:], binary.BigEndian.Uint32(pkt[8:])+3)
	out = append(out, 0x22, byte(sid>>8), byte(sid))
	return append(out, pkt[24:]...)
}

// feedGolden are producer messages and what they decode to.
var feedGolden = []struct {
	name        string
	pkt         []byte
	collections bool
	want        Event
}{
	{"mutation", feedPkt(gomemcached.UPR_MUTATION, 5, be(uint64(9), uint64(2), uint32(0x77), uint32(1000), uint32(3), uint16(0), uint8(0)), []byte("key"), []byte("value")),
		false, Event{Kind: EventMutation, VBucket: 5, Seqno: 9, RevSeqno: 2, CAS: 0xca5, Flags: 0x77, Expiry: 1000, LockTime: 3, Key: []byte("key"), Value: []byte("value"), Size: 24 + 31 + 3 + 5}},
	{"mutation in a collection", feedPkt(gomemcached.UPR_MUTATION, 5, be(uint64(9), uint64(2), uint32(0), uint32(0), uint32(0), uint16(0), uint8(0)), []byte("\x88\x01doc"), nil),
		true, Event{Kind: EventMutation, VBucket: 5, Seqno: 9, RevSeqno: 2, CAS: 0xca5, CollectionID: 0x88, Key: []byte("doc"), Size: 24 + 31 + 5}},
	{"deletion v1", feedPkt(gomemcached.UPR_DELETION, 1, be(uint64(4), uint64(3), uint16(0)), []byte("k"), nil),
		false, Event{Kind: EventDeletion, VBucket: 1, Seqno: 4, RevSeqno: 3, CAS: 0xca5, Key: []byte("k"), Size: 24 + 18 + 1}},
	{"deletion v2", feedPkt(gomemcached.UPR_DELETION, 1, be(uint64(4), uint64(3), uint32(1700000000), uint8(0)), []byte("k"), nil),
		false, Event{Kind: EventDeletion, VBucket: 1, Seqno: 4, RevSeqno: 3, CAS: 0xca5, Expiry: 1700000000, Key: []byte("k"), Size: 24 + 21 + 1}},
	{"expiration", feedPkt(gomemcached.UPR_EXPIRATION, 1, be(uint64(4), uint64(3), uint32(1700000001)), []byte("k"), nil),
		false, Event{Kind: EventExpiration, VBucket: 1, Seqno: 4, RevSeqno: 3, CAS: 0xca5, Expiry: 1700000001, Key: []byte("k"), Size: 24 + 20 + 1}},
	{"marker v1", feedPkt(gomemcached.UPR_SNAPSHOT, 2, be(uint64(0), uint64(8), uint32(1)), nil, nil),
		false, Event{Kind: EventSnapshot, VBucket: 2, CAS: 0xca5, SnapStart: 0, SnapEnd: 8, SnapFlags: 1, Size: 44}},
	// The v2.0 example of snapshot-marker.md: start 1, end 8, disk, max
	// visible 8, high completed 7.
	{"marker v2.0", feedPkt(gomemcached.UPR_SNAPSHOT, 0, []byte{0}, nil, be(uint64(1), uint64(8), uint32(2), uint64(8), uint64(7))),
		false, Event{Kind: EventSnapshot, CAS: 0xca5, SnapStart: 1, SnapEnd: 8, SnapFlags: 2, MaxVisibleSeqno: 8, Size: 24 + 37}},
	// Version 2.2: start 3, end 9, memory|ack, max visible 8, high
	// completed 0, purge 2, high prepared 0.
	{"marker v2.2", feedPkt(gomemcached.UPR_SNAPSHOT, 0, []byte{2}, nil, be(uint64(3), uint64(9), uint32(0x9), uint64(8), uint64(0), uint64(2), uint64(0))),
		false, Event{Kind: EventSnapshot, CAS: 0xca5, SnapStart: 3, SnapEnd: 9, SnapFlags: 9, MaxVisibleSeqno: 8, PurgeSeqno: 2, Size: 24 + 53}},
	// The collection creation example of system_event.md (version 1).
	{"system event v1", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 0x210, be(uint64(4), uint32(0), uint8(1)), []byte("mycollection"), be(uint64(2), uint32(0), uint32(8), uint32(72000))),
		true, Event{Kind: EventSystem, VBucket: 0x210, Seqno: 4, CAS: 0xca5, Key: []byte("mycollection"), Value: be(uint64(2), uint32(0), uint32(8), uint32(72000)),
			System: SystemEventInfo{Type: CollectionCreate, Version: 1, ManifestUID: 2, CollectionID: 8, Name: []byte("mycollection"), MaxTTL: 72000, HasMaxTTL: true}, Size: 69}},
	{"system event v0 drop", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 3, be(uint64(6), uint32(1), uint8(0)), nil, be(uint64(3), uint32(8), uint32(9))),
		true, Event{Kind: EventSystem, VBucket: 3, Seqno: 6, CAS: 0xca5, Value: be(uint64(3), uint32(8), uint32(9)),
			System: SystemEventInfo{Type: CollectionDrop, ManifestUID: 3, ScopeID: 8, CollectionID: 9}, Size: 24 + 13 + 16}},
	{"system event v2 collection", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 3, be(uint64(7), uint32(0), uint8(2)), []byte("things"), fbCollection(0x2a, 8, 9, 3600, true, "things")),
		true, Event{Kind: EventSystem, VBucket: 3, Seqno: 7, CAS: 0xca5, Key: []byte("things"), Value: fbCollection(0x2a, 8, 9, 3600, true, "things"),
			System: SystemEventInfo{Type: CollectionCreate, Version: 2, ManifestUID: 0x2a, ScopeID: 8, CollectionID: 9, Name: []byte("things"), MaxTTL: 3600, HasMaxTTL: true}, Size: 24 + 13 + 6 + len(fbCollection(0x2a, 8, 9, 3600, true, "things"))}},
	{"system event v2 scope, name in the value", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 3, be(uint64(8), uint32(3), uint8(2)), nil, fbScope(0x2b, 8, "app")),
		true, Event{Kind: EventSystem, VBucket: 3, Seqno: 8, CAS: 0xca5, Value: fbScope(0x2b, 8, "app"),
			System: SystemEventInfo{Type: ScopeCreate, Version: 2, ManifestUID: 0x2b, ScopeID: 8, Name: []byte("app")}, Size: 24 + 13 + len(fbScope(0x2b, 8, "app"))}},
	{"seqno advanced", feedPkt(gomemcached.DCP_SEQNO_ADV, 4, be(uint64(99)), nil, nil),
		false, Event{Kind: EventSeqnoAdvanced, VBucket: 4, Seqno: 99, CAS: 0xca5, Size: 32}},
	{"oso begin", feedPkt(gomemcached.DCP_OSO_SNAPSHOT, 4, be(uint32(1)), nil, nil),
		false, Event{Kind: EventOSOBegin, VBucket: 4, CAS: 0xca5, Size: 28}},
	{"oso end", feedPkt(gomemcached.DCP_OSO_SNAPSHOT, 4, be(uint32(2)), nil, nil),
		false, Event{Kind: EventOSOEnd, VBucket: 4, CAS: 0xca5, Size: 28}},
	{"stream end", feedPkt(gomemcached.UPR_STREAMEND, 4, be(uint32(StreamEndFilterEmpty)), nil, nil),
		false, Event{Kind: EventStreamEnd, VBucket: 4, CAS: 0xca5, Reason: StreamEndFilterEmpty, Size: 28}},
	{"stream id", withStreamID(feedPkt(gomemcached.DCP_SEQNO_ADV, 4, be(uint64(5)), nil, nil), 0x1234),
		false, Event{Kind: EventSeqnoAdvanced, VBucket: 4, StreamID: 0x1234, Seqno: 5, CAS: 0xca5, Size: 35}},
	{"unknown opcode", feedPkt(gomemcached.DCP_PREPARE, 4, nil, nil, nil), false, Event{VBucket: 4, CAS: 0xca5, Size: 24}},
}

func TestFeedDecode(t *testing.T) {
	for _, tt := range feedGolden {
		t.Run(tt.name, func(t *testing.T) {
			var p feedPacket
			if n, err := packetLen(tt.pkt, feedMaxBody()); err != nil || n != len(tt.pkt) {
				t.Fatalf("packetLen %d, %v; want %d", n, err, len(tt.pkt))
			}
			if err := parsePacket(tt.pkt, &p); err != nil {
				t.Fatal(err)
			}
			var ev Event
			if err := decodeMessage(&p, tt.collections, &ev); err != nil {
				t.Fatal(err)
			}
			if !eventsEqual(&ev, &tt.want) {
				t.Fatalf("got  %+v\nwant %+v", ev, tt.want)
			}
		})
	}
}

func eventsEqual(a, b *Event) bool {
	x, y := *a, *b
	if !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) || !bytes.Equal(x.System.Name, y.System.Name) {
		return false
	}
	x.Key, x.Value, x.System.Name, y.Key, y.Value, y.System.Name = nil, nil, nil, nil, nil, nil
	return x.Kind == y.Kind && x.VBucket == y.VBucket && x.StreamID == y.StreamID && x.Seqno == y.Seqno &&
		x.RevSeqno == y.RevSeqno && x.CAS == y.CAS && x.Flags == y.Flags && x.Expiry == y.Expiry &&
		x.LockTime == y.LockTime && x.Datatype == y.Datatype && x.CollectionID == y.CollectionID &&
		x.SnapStart == y.SnapStart && x.SnapEnd == y.SnapEnd && x.SnapFlags == y.SnapFlags &&
		x.Reason == y.Reason && x.Size == y.Size && x.System.Type == y.System.Type &&
		x.System.Version == y.System.Version && x.System.ManifestUID == y.System.ManifestUID &&
		x.System.ScopeID == y.System.ScopeID && x.System.CollectionID == y.System.CollectionID &&
		x.System.MaxTTL == y.System.MaxTTL && x.System.HasMaxTTL == y.System.HasMaxTTL
}

// TestFeedDecodeMalformed: every length is checked; a bad one is an
// error that matches ErrFeedMalformed and gomemcached.ErrProtocol.
func TestFeedDecodeMalformed(t *testing.T) {
	tests := []struct {
		name        string
		pkt         []byte
		collections bool
	}{
		{"mutation extras", feedPkt(gomemcached.UPR_MUTATION, 0, make([]byte, 27), []byte("k"), nil), false},
		{"deletion extras", feedPkt(gomemcached.UPR_DELETION, 0, make([]byte, 15), []byte("k"), nil), false},
		{"marker extras", feedPkt(gomemcached.UPR_SNAPSHOT, 0, make([]byte, 19), nil, nil), false},
		{"marker v2.0 value", feedPkt(gomemcached.UPR_SNAPSHOT, 0, []byte{0}, nil, make([]byte, 35)), false},
		{"marker v2.2 value", feedPkt(gomemcached.UPR_SNAPSHOT, 0, []byte{2}, nil, make([]byte, 51)), false},
		{"marker version", feedPkt(gomemcached.UPR_SNAPSHOT, 0, []byte{1}, nil, make([]byte, 60)), false},
		{"marker start after end", feedPkt(gomemcached.UPR_SNAPSHOT, 0, be(uint64(9), uint64(8), uint32(1)), nil, nil), false},
		{"system event extras", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 0, make([]byte, 12), nil, nil), true},
		{"system event v1 value", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 0, be(uint64(1), uint32(0), uint8(1)), []byte("c"), make([]byte, 15)), true},
		{"system event flatbuffer offset", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 0, be(uint64(1), uint32(0), uint8(2)), []byte("c"), []byte{0xff, 0xff, 0, 0, 1, 2}), true},
		{"system event flatbuffer name", feedPkt(gomemcached.DCP_SYSTEM_EVENT, 0, be(uint64(1), uint32(3), uint8(2)), nil, func() []byte {
			b := fbScope(1, 8, "app")
			// Make the name's length run past the end.
			i := bytes.Index(b, []byte("app")) - 4
			binary.LittleEndian.PutUint32(b[i:], 1000)
			return b
		}()), true},
		{"seqno advanced extras", feedPkt(gomemcached.DCP_SEQNO_ADV, 0, make([]byte, 7), nil, nil), false},
		{"oso extras", feedPkt(gomemcached.DCP_OSO_SNAPSHOT, 0, make([]byte, 3), nil, nil), false},
		{"oso flags", feedPkt(gomemcached.DCP_OSO_SNAPSHOT, 0, be(uint32(4)), nil, nil), false},
		{"stream end extras", feedPkt(gomemcached.UPR_STREAMEND, 0, make([]byte, 3), nil, nil), false},
		{"collection id", feedPkt(gomemcached.UPR_MUTATION, 0, make([]byte, 31), []byte{0x80, 0x80}, nil), true},
		{"no collection id", feedPkt(gomemcached.UPR_MUTATION, 0, make([]byte, 31), nil, nil), true},
		{"stream id frame", func() []byte {
			b := withStreamID(feedPkt(gomemcached.DCP_SEQNO_ADV, 0, be(uint64(5)), nil, nil), 1)
			b[24] = 0x23 // 3 bytes
			return b
		}(), false},
		{"frame past the frames", func() []byte {
			b := withStreamID(feedPkt(gomemcached.DCP_SEQNO_ADV, 0, be(uint64(5)), nil, nil), 1)
			b[24] = 0x12 // id 1, 2 bytes, then nothing left
			b[2] = 1
			b[4] = 10 // extras then fit the body
			return b
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p feedPacket
			err := parsePacket(tt.pkt, &p)
			if err == nil {
				var ev Event
				err = decodeMessage(&p, tt.collections, &ev)
			}
			if !errors.Is(err, ErrFeedMalformed) || !errors.Is(err, gomemcached.ErrProtocol) {
				t.Fatalf("error %v", err)
			}
		})
	}
	for _, hdr := range [][]byte{
		append([]byte{0x42}, make([]byte, 23)...), // magic
		func() []byte { // key beyond the body
			b := feedPkt(gomemcached.UPR_MUTATION, 0, nil, nil, nil)
			b[3] = 1
			return b
		}(),
		func() []byte { // body over the limit
			b := feedPkt(gomemcached.UPR_MUTATION, 0, nil, nil, nil)
			binary.BigEndian.PutUint32(b[8:], 0x7fffffff)
			return b
		}(),
	} {
		if _, err := packetLen(hdr, feedMaxBody()); !errors.Is(err, ErrFeedMalformed) {
			t.Errorf("packetLen(%x): %v", hdr, err)
		}
	}
	var p feedPacket
	if err := parsePacket([]byte{0x80}, &p); !errors.Is(err, ErrFeedMalformed) {
		t.Errorf("parsePacket of a byte: %v", err)
	}
}

// FuzzFeedDecode decodes arbitrary bytes as a producer's stream: no
// panic, and what decodes stays inside its packet.
func FuzzFeedDecode(f *testing.F) {
	for _, tt := range feedGolden {
		f.Add(tt.pkt, tt.collections)
	}
	f.Add(append(feedGolden[0].pkt, feedGolden[5].pkt...), false)
	f.Fuzz(func(t *testing.T, data []byte, collections bool) {
		for len(data) > 0 {
			n, err := packetLen(data, feedMaxBody())
			if err != nil || n == 0 || n > len(data) {
				return
			}
			var p feedPacket
			if err := parsePacket(data[:n], &p); err != nil {
				t.Fatalf("parsePacket after packetLen: %v", err)
			}
			var ev Event
			if err := decodeMessage(&p, collections, &ev); err != nil {
				if !errors.Is(err, ErrFeedMalformed) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if ev.Size != n || len(ev.Key) > n || len(ev.Value) > n || len(ev.System.Name) > n {
				t.Fatalf("event %+v from a packet of %d bytes", ev, n)
			}
			data = data[n:]
		}
	})
}
