package memcached

import (
	"encoding/binary"
	"fmt"

	"github.com/f8e615c8/gomemcached"
)

// feedPacket is one packet a feed received, its slices aliasing the
// feed's read buffer.
type feedPacket struct {
	magic    byte
	op       gomemcached.CommandCode
	datatype uint8
	vbucket  uint16 // the status, in a response
	opaque   uint32
	cas      uint64
	frames   []byte
	extras   []byte
	key      []byte
	value    []byte
	size     int // header and body
}

// Magic bytes a feed receives.
const (
	magicReq    = 0x80
	magicRes    = 0x81
	magicAltReq = 0x08
	magicAltRes = 0x18
)

// feedMaxBody is the largest body a feed made now takes: the package's
// limit (at least 1 MiB) and room for a message's headers. NewFeed copies
// it into the feed, so that a later change of gomemcached.MaxBodyLen
// neither races with the feed's reads nor lets one header make it
// allocate what the limit then allows.
func feedMaxBody() int { return max(gomemcached.MaxBodyLen, 1<<20) + 1<<16 }

// feedError is a malformed packet: it matches ErrFeedMalformed and
// gomemcached.ErrProtocol.
type feedError struct {
	op  gomemcached.CommandCode
	why string
}

func (e *feedError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrFeedMalformed.Error(), e.op, e.why)
}

func (e *feedError) Unwrap() []error { return []error{ErrFeedMalformed, gomemcached.ErrProtocol} }

func malformed(op gomemcached.CommandCode, why string) error { return &feedError{op: op, why: why} }

// packetLen returns the size of the packet that b starts with, once its
// header is there (0 before), checking the header's magic, lengths and
// that its body is at most limit bytes.
func packetLen(b []byte, limit int) (int, error) {
	if len(b) < gomemcached.HDR_LEN {
		return 0, nil
	}
	op := gomemcached.CommandCode(b[1])
	var frames, key int
	switch b[0] {
	case magicReq, magicRes:
		key = int(binary.BigEndian.Uint16(b[2:]))
	case magicAltReq, magicAltRes:
		frames, key = int(b[2]), int(b[3])
	default:
		return 0, malformed(op, fmt.Sprintf("bad magic 0x%02x", b[0]))
	}
	extras := int(b[4])
	body := binary.BigEndian.Uint32(b[8:])
	if uint64(body) > uint64(limit) {
		return 0, malformed(op, fmt.Sprintf("body of %d bytes", body))
	}
	if frames+extras+key > int(body) {
		return 0, malformed(op, "frames, extras and key longer than the body")
	}
	return gomemcached.HDR_LEN + int(body), nil
}

// parsePacket parses the whole packet b (as long as packetLen says) into p.
func parsePacket(b []byte, p *feedPacket) error {
	n, err := packetLen(b, len(b)) // b is already read: no more can fit
	if err != nil {
		return err
	}
	if n == 0 || n > len(b) {
		var op gomemcached.CommandCode
		if len(b) > 1 {
			op = gomemcached.CommandCode(b[1])
		}
		return malformed(op, "truncated packet")
	}
	var frames, key int
	p.magic = b[0]
	switch p.magic {
	case magicReq, magicRes:
		key = int(binary.BigEndian.Uint16(b[2:]))
	default:
		frames, key = int(b[2]), int(b[3])
	}
	extras := int(b[4])
	p.op = gomemcached.CommandCode(b[1])
	p.datatype = b[5]
	p.vbucket = binary.BigEndian.Uint16(b[6:])
	p.opaque = binary.BigEndian.Uint32(b[12:])
	p.cas = binary.BigEndian.Uint64(b[16:])
	body := b[gomemcached.HDR_LEN:n]
	p.frames = body[:frames]
	p.extras = body[frames : frames+extras]
	p.key = body[frames+extras : frames+extras+key]
	p.value = body[frames+extras+key:]
	p.size = n
	return nil
}

// isRequest reports whether p is a request (a producer's message).
func (p *feedPacket) isRequest() bool { return p.magic == magicReq || p.magic == magicAltReq }

// streamID returns the DCP stream id of p's flexible frames (0 if none).
func (p *feedPacket) streamID() (uint16, error) {
	f := p.frames
	for len(f) > 0 {
		id, n := int(f[0]>>4), int(f[0]&0x0f)
		f = f[1:]
		if id == 0x0f {
			if len(f) < 1 {
				return 0, malformed(p.op, "truncated frame id")
			}
			id, f = 15+int(f[0]), f[1:]
		}
		if n == 0x0f {
			if len(f) < 1 {
				return 0, malformed(p.op, "truncated frame length")
			}
			n, f = 15+int(f[0]), f[1:]
		}
		if n > len(f) {
			return 0, malformed(p.op, "frame longer than the frames")
		}
		if id == 2 { // stream id
			if n != 2 {
				return 0, malformed(p.op, "stream id frame not 2 bytes")
			}
			return binary.BigEndian.Uint16(f), nil
		}
		f = f[n:]
	}
	return 0, nil
}

// Snapshot marker flags.
const (
	snapMarkerAck = 0x08
)

// OSO snapshot flags.
const (
	osoBegin = 0x01
	osoEnd   = 0x02
)

// decodeMessage decodes the producer's message p into ev (which the
// caller has cleared), for a feed that is collections-aware or not. It
// leaves the stream's fields (Checkpoint, SnapStart for documents) to the
// caller. An opcode it does not know leaves ev.Kind 0.
func decodeMessage(p *feedPacket, collections bool, ev *Event) error {
	sid, err := p.streamID()
	if err != nil {
		return err
	}
	ev.VBucket, ev.StreamID, ev.Size = p.vbucket, sid, p.size
	ev.Datatype, ev.CAS = p.datatype, p.cas
	x := p.extras
	be := binary.BigEndian
	switch p.op {
	case gomemcached.UPR_MUTATION:
		if len(x) < 28 {
			return malformed(p.op, "extras shorter than 28 bytes")
		}
		ev.Kind = EventMutation
		ev.Seqno, ev.RevSeqno = be.Uint64(x), be.Uint64(x[8:])
		ev.Flags, ev.Expiry, ev.LockTime = be.Uint32(x[16:]), be.Uint32(x[20:]), be.Uint32(x[24:])
		return docKey(p, collections, ev)
	case gomemcached.UPR_DELETION, gomemcached.UPR_EXPIRATION:
		ev.Kind = EventDeletion
		if p.op == gomemcached.UPR_EXPIRATION {
			ev.Kind = EventExpiration
		}
		if len(x) < 16 {
			return malformed(p.op, "extras shorter than 16 bytes")
		}
		ev.Seqno, ev.RevSeqno = be.Uint64(x), be.Uint64(x[8:])
		// Version 1 deletions have 18 bytes (nmeta), version 2 and
		// expirations 20 or 21 with the delete time.
		if len(x) == 20 || len(x) == 21 {
			ev.Expiry = be.Uint32(x[16:])
		}
		return docKey(p, collections, ev)
	case gomemcached.UPR_SNAPSHOT:
		ev.Kind = EventSnapshot
		switch {
		case len(x) == 20:
			ev.SnapStart, ev.SnapEnd, ev.SnapFlags = be.Uint64(x), be.Uint64(x[8:]), be.Uint32(x[16:])
		case len(x) == 1:
			// Version 2.x: the fields are the value's.
			v := p.value
			switch x[0] {
			case 0:
				if len(v) < 36 {
					return malformed(p.op, "v2.0 marker shorter than 36 bytes")
				}
			case 2:
				if len(v) < 52 {
					return malformed(p.op, "v2.2 marker shorter than 52 bytes")
				}
			default:
				return malformed(p.op, fmt.Sprintf("marker version %d", x[0]))
			}
			ev.SnapStart, ev.SnapEnd, ev.SnapFlags = be.Uint64(v), be.Uint64(v[8:]), be.Uint32(v[16:])
			ev.MaxVisibleSeqno = be.Uint64(v[20:])
			if x[0] == 2 {
				ev.PurgeSeqno = be.Uint64(v[36:])
			}
		default:
			return malformed(p.op, fmt.Sprintf("marker extras of %d bytes", len(x)))
		}
		if ev.SnapStart > ev.SnapEnd {
			return malformed(p.op, "snapshot start after its end")
		}
	case gomemcached.DCP_SYSTEM_EVENT:
		if len(x) < 13 {
			return malformed(p.op, "extras shorter than 13 bytes")
		}
		ev.Kind = EventSystem
		ev.Seqno = be.Uint64(x)
		ev.Key, ev.Value = p.key, p.value
		return decodeSystemEvent(p.op, SystemEventType(be.Uint32(x[8:])), x[12], p.key, p.value, &ev.System)
	case gomemcached.DCP_SEQNO_ADV:
		if len(x) < 8 {
			return malformed(p.op, "extras shorter than 8 bytes")
		}
		ev.Kind, ev.Seqno = EventSeqnoAdvanced, be.Uint64(x)
	case gomemcached.DCP_OSO_SNAPSHOT:
		if len(x) < 4 {
			return malformed(p.op, "extras shorter than 4 bytes")
		}
		switch f := be.Uint32(x); {
		case f&osoBegin != 0:
			ev.Kind = EventOSOBegin
		case f&osoEnd != 0:
			ev.Kind = EventOSOEnd
		default:
			return malformed(p.op, fmt.Sprintf("OSO flags 0x%x", f))
		}
	case gomemcached.UPR_STREAMEND:
		if len(x) < 4 {
			return malformed(p.op, "extras shorter than 4 bytes")
		}
		ev.Kind, ev.Reason = EventStreamEnd, be.Uint32(x)
	}
	return nil
}

// docKey sets a document event's key, value and collection.
func docKey(p *feedPacket, collections bool, ev *Event) error {
	ev.Key, ev.Value = p.key, p.value
	if !collections {
		return nil
	}
	cid, rest, err := gomemcached.SplitCollectionID(p.key)
	if err != nil {
		return malformed(p.op, "key without a valid collection id")
	}
	ev.CollectionID, ev.Key = cid, rest
	return nil
}

// decodeSystemEvent decodes a system event's key and value, of either
// layout: versions 0 and 1 are fixed (manifest uid 8, scope 4, collection
// 4, max TTL 4 in a version 1 creation), version 2 a FlatBuffers table
// (engines/ep/src/collections/events.fbs).
func decodeSystemEvent(op gomemcached.CommandCode, typ SystemEventType, version uint8, key, value []byte, s *SystemEventInfo) error {
	*s = SystemEventInfo{Type: typ, Version: version, Name: key}
	be := binary.BigEndian
	collection := typ == CollectionCreate || typ == CollectionDrop || typ == CollectionFlush || typ == CollectionChanged
	if typ < 0 || typ > CollectionChanged {
		return nil // an event this feed does not know: Key and Value tell
	}
	if version < 2 {
		need := 12
		if collection {
			need = 16
		}
		if len(value) < need {
			return malformed(op, "system event value too short")
		}
		s.ManifestUID, s.ScopeID = be.Uint64(value), be.Uint32(value[8:])
		if collection {
			s.CollectionID = be.Uint32(value[12:])
		}
		if typ == CollectionCreate && version == 1 && len(value) >= 20 {
			s.MaxTTL, s.HasMaxTTL = be.Uint32(value[16:]), true
		}
		return nil
	}
	t, err := flatRoot(value)
	if err != nil {
		return malformed(op, err.Error())
	}
	uid, err := t.scalar(0, 8)
	if err != nil {
		return malformed(op, err.Error())
	}
	scope, err := t.scalar(1, 4)
	if err != nil {
		return malformed(op, err.Error())
	}
	s.ManifestUID, s.ScopeID = uid, uint32(scope)
	nameSlot := 2 // Scope
	if collection {
		cid, err := t.scalar(2, 4)
		if err != nil {
			return malformed(op, err.Error())
		}
		s.CollectionID = uint32(cid)
		nameSlot = 5
	}
	if typ == CollectionCreate || typ == CollectionChanged {
		valid, err := t.scalar(3, 1)
		if err != nil {
			return malformed(op, err.Error())
		}
		ttl, err := t.scalar(4, 4)
		if err != nil {
			return malformed(op, err.Error())
		}
		s.MaxTTL, s.HasMaxTTL = uint32(ttl), valid != 0
	}
	if len(s.Name) == 0 && (typ == CollectionCreate || typ == CollectionChanged || typ == ScopeCreate) {
		name, err := t.str(nameSlot)
		if err != nil {
			return malformed(op, err.Error())
		}
		s.Name = name
	}
	return nil
}

// flatTable is the root table of a FlatBuffers buffer, every offset
// checked.
type flatTable struct {
	buf           []byte
	table, vtable int
	vlen, tlen    int
}

type flatErr string

func (e flatErr) Error() string { return string(e) }

const errFlat = flatErr("bad flatbuffer")

func flatRoot(buf []byte) (flatTable, error) {
	le := binary.LittleEndian
	if len(buf) < 4 {
		return flatTable{}, errFlat
	}
	table := int64(le.Uint32(buf))
	if table+4 > int64(len(buf)) {
		return flatTable{}, errFlat
	}
	vtable := table - int64(int32(le.Uint32(buf[table:])))
	if vtable < 0 || vtable+4 > int64(len(buf)) {
		return flatTable{}, errFlat
	}
	vlen, tlen := int64(le.Uint16(buf[vtable:])), int64(le.Uint16(buf[vtable+2:]))
	if vlen < 4 || vtable+vlen > int64(len(buf)) || table+tlen > int64(len(buf)) {
		return flatTable{}, errFlat
	}
	return flatTable{buf: buf, table: int(table), vtable: int(vtable), vlen: int(vlen), tlen: int(tlen)}, nil
}

// field returns the offset of field slot in the table, 0 if absent.
func (t flatTable) field(slot, size int) (int, error) {
	at := 4 + 2*slot
	if at+2 > t.vlen {
		return 0, nil
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vtable+at:]))
	if off == 0 {
		return 0, nil
	}
	if off+size > t.tlen {
		return 0, errFlat
	}
	return t.table + off, nil
}

// scalar reads an unsigned scalar of size bytes (1, 4 or 8); an absent
// field is 0.
func (t flatTable) scalar(slot, size int) (uint64, error) {
	at, err := t.field(slot, size)
	if err != nil || at == 0 {
		return 0, err
	}
	le := binary.LittleEndian
	switch size {
	case 1:
		return uint64(t.buf[at]), nil
	case 4:
		return uint64(le.Uint32(t.buf[at:])), nil
	}
	return le.Uint64(t.buf[at:]), nil
}

// str returns a string field's bytes (nil if absent).
func (t flatTable) str(slot int) ([]byte, error) {
	at, err := t.field(slot, 4)
	if err != nil || at == 0 {
		return nil, err
	}
	s := int64(at) + int64(binary.LittleEndian.Uint32(t.buf[at:]))
	if s+4 > int64(len(t.buf)) {
		return nil, errFlat
	}
	n := int64(binary.LittleEndian.Uint32(t.buf[s:]))
	if s+4+n > int64(len(t.buf)) {
		return nil, errFlat
	}
	return t.buf[s+4 : s+4+n], nil
}
