package memcached

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// The events of a DCP (formerly UPR) feed, and their decoding. The wire
// layouts are those of kv_engine's docs/dcp/documentation/commands/*.md;
// dcp_golden_test.go in the root package has them as vectors.

// SystemEventType is the event number of a DCP_SYSTEM_EVENT (extras bytes
// 8 to 12).
type SystemEventType int

// InvalidSysEvent is the SystemEvent of an event that is not a system event.
const InvalidSysEvent SystemEventType = -1

// The system events of kv_engine's SystemEvent enum.
const (
	CollectionCreate  SystemEventType = 0
	CollectionDrop    SystemEventType = iota
	CollectionFlush   SystemEventType = iota // defined by kv_engine, never sent
	ScopeCreate       SystemEventType = iota
	ScopeDrop         SystemEventType = iota
	CollectionChanged SystemEventType = iota
)

// ScopeCreateEvent is what a scope-creation system event tells.
type ScopeCreateEvent interface {
	GetSystemEventName() (string, error)
	GetScopeId() (uint32, error)
	GetManifestId() (uint64, error)
}

// CollectionCreateEvent is what a collection-creation system event tells.
type CollectionCreateEvent interface {
	GetSystemEventName() (string, error)
	GetScopeId() (uint32, error)
	GetCollectionId() (uint32, error)
	GetManifestId() (uint64, error)
	GetMaxTTL() (uint32, error)
}

// CollectionDropEvent is what a collection-drop system event tells.
type CollectionDropEvent interface {
	GetScopeId() (uint32, error)
	GetCollectionId() (uint32, error)
	GetManifestId() (uint64, error)
}

// ScopeDropEvent is what a scope-drop system event tells.
type ScopeDropEvent interface {
	GetScopeId() (uint32, error)
	GetManifestId() (uint64, error)
}

// CollectionChangedEvent is what a collection-modification system event
// tells.
type CollectionChangedEvent interface {
	GetCollectionId() (uint32, error)
	GetManifestId() (uint64, error)
	GetMaxTTL() (uint32, error)
}

var (
	_ ScopeCreateEvent       = (*UprEvent)(nil)
	_ CollectionCreateEvent  = (*UprEvent)(nil)
	_ CollectionDropEvent    = (*UprEvent)(nil)
	_ ScopeDropEvent         = (*UprEvent)(nil)
	_ CollectionChangedEvent = (*UprEvent)(nil)
)

// The errors of the system-event accessors. Their messages are the
// reference's, which callers may compare.
var (
	// ErrorInvalidOp: the accessor does not apply to this event.
	ErrorInvalidOp error = errors.New("Invalid Operation")
	// ErrorInvalidVersion: the event's version has no such field.
	ErrorInvalidVersion error = errors.New("Invalid version for parsing")
	// ErrorValueTooShort: the value is too short (or, for a FlatBuffers
	// value, malformed) to hold the field.
	ErrorValueTooShort error = errors.New("Value length is too short")
	// ErrorNoMaxTTL: a version 0 collection event carries no max TTL.
	ErrorNoMaxTTL error = errors.New("This event has no max TTL")
)

// UprEvent is one event of a DCP feed: a message of a stream (mutation,
// deletion, expiration, snapshot marker, system event, seqno advance, OSO
// marker, stream end) or the answer to a stream request. Key, Value and
// ExtMeta share one allocation that the event owns; the event is the
// receiver's once read from the feed's channel.
type UprEvent struct {
	Opcode          gomemcached.CommandCode // the message's opcode
	Status          gomemcached.Status      // the status of a stream request's answer
	VBucket         uint16                  // the vbucket of the stream
	DataType        uint8                   // datatype flags of the value
	Opaque          uint16                  // the application's half of the stream's opaque (its 16 high bits)
	VBuuid          uint64                  // the vbuuid the stream was requested with
	Flags           uint32                  // item flags; stream-end reason; OSO flags
	Expiry          uint32                  // expiry; the delete time of a deletion (v2) or expiration
	Key, Value      []byte                  // the document's key (without its collection id) and value
	OldValue        []byte                  // unused, as in the reference
	Cas             uint64                  // the document's CAS
	Seqno           uint64                  // by-seqno; a stream request's start, or rollback, seqno
	RevSeqno        uint64                  // revision seqno
	LockTime        uint32                  // lock time of a mutation
	MetadataSize    uint16                  // nmeta: length of ExtMeta
	SnapstartSeq    uint64                  // snapshot marker: start
	SnapendSeq      uint64                  // snapshot marker: end
	SnapshotType    uint32                  // snapshot marker: type bits (1 memory, 2 disk, 4 checkpoint, 8 ack, ...)
	FailoverLog     *FailoverLog            // a successful stream request's failover log
	Error           error                   // why a stream request failed
	ExtMeta         []byte                  // extended metadata that followed the value
	AckSize         uint32                  // bytes to acknowledge to the producer once handled
	SystemEvent     SystemEventType         // the event number, if IsSystemEvent
	SysEventVersion uint8                   // the system event's version: 0, 1, or 2 (FlatBuffers)
	ValueLen        int                     // len(Value)
	CollectionId    uint32                  // the document's collection, math.MaxUint32 if none was decoded
	StreamId        *uint16                 // the stream id frame, nil if not in use
}

// FailoverLog is a vbucket's failover log: pairs of vbuuid and seqno,
// newest first.
type FailoverLog [][2]uint64

// VBSeqnos holds pairs of vbucket number and high seqno.
type VBSeqnos [][2]uint64

// ErrorInvalidLog is the error of Latest on an empty failover log.
var ErrorInvalidLog = errors.New("couchbase.errorInvalidLog")

// Latest returns the newest entry of the log, the first.
func (flogp *FailoverLog) Latest() (vbuuid, seqno uint64, err error) {
	if flogp == nil || len(*flogp) == 0 {
		return 0, 0, ErrorInvalidLog
	}
	e := (*flogp)[0]
	return e[0], e[1], nil
}

// decodeFailoverLog decodes a failover log: n entries of vbuuid(8) and
// seqno(8).
func decodeFailoverLog(op gomemcached.CommandCode, b []byte) (*FailoverLog, error) {
	if len(b)%16 != 0 {
		return nil, badBody(op, "failover log of "+strconv.Itoa(len(b))+" bytes, not a multiple of 16")
	}
	log := make(FailoverLog, len(b)/16)
	for i := range log {
		e := b[16*i:]
		log[i] = [2]uint64{binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:])}
	}
	return &log, nil
}

// Extras sizes of the stream messages.
const (
	mutationExtras     = 30 // seqnos, flags, exp, lock, nmeta; kv_engine adds nru, 31
	deletionV1Extras   = 18 // seqnos, nmeta
	deletionV2Extras   = 21 // seqnos, delete time, unused byte
	expirationExtras   = 20 // seqnos, delete time
	snapshotV1Extras   = 20 // start, end, type
	systemEventExtras  = 13 // seqno, event, version
	seqnoAdvanceExtras = 8
	osoExtras          = 4
	streamEndExtras    = 4
)

// Stream-end reasons (kv_engine's dcp_stream_end_status.h).
const (
	streamEndOK           = 0
	streamEndClosed       = 1
	streamEndDisconnected = 3
)

// flowControlled reports whether the producer counts a message of op it
// sends against the connection's buffer, to be acknowledged: every
// message of a stream but NOOP. The reference's table
// (gomemcached.BufferedCommandCodeMap) lists SET_VBUCKET (0x3d) instead
// of DCP_SET_VBUCKET_STATE (0x5b), and nothing of sync replication;
// kv_engine counts the latter, and a byte never acknowledged is a byte
// the window never gets back.
func flowControlled(op gomemcached.CommandCode) bool {
	switch op {
	case gomemcached.UPR_STREAMEND, gomemcached.UPR_SNAPSHOT, gomemcached.UPR_MUTATION,
		gomemcached.UPR_DELETION, gomemcached.UPR_EXPIRATION, gomemcached.DCP_SYSTEM_EVENT,
		gomemcached.DCP_SEQNO_ADV, gomemcached.DCP_OSO_SNAPSHOT, gomemcached.DCP_SET_VBUCKET_STATE,
		gomemcached.DCP_PREPARE, gomemcached.DCP_COMMIT, gomemcached.DCP_ABORT:
		return true
	}
	return false
}

// newUprEvent decodes the stream message rq, of size bytes on the wire,
// for stream (nil if the feed knows none for it). A message whose extras
// are too short for its layout leaves the fields they would hold at zero;
// it never panics (the reference's reads the 20 bytes of an expiration's
// extras without checking).
func newUprEvent(rq *gomemcached.MCRequest, stream *UprStream, size int) *UprEvent {
	ev := &UprEvent{
		Opcode:       rq.Opcode,
		Value:        rq.Body,
		Cas:          rq.Cas,
		ExtMeta:      rq.ExtMeta,
		DataType:     rq.DataType,
		ValueLen:     len(rq.Body),
		SystemEvent:  InvalidSysEvent,
		CollectionId: math.MaxUint32,
		Opaque:       appOpaque(rq.Opaque),
	}
	if stream != nil {
		ev.VBucket = stream.Vbucket
		ev.VBuuid = stream.Vbuuid
		ev.PopulateFieldsBasedOnStreamType(*rq, stream.StreamType)
	} else {
		ev.VBucket = vbOpaque(rq.Opaque)
		ev.Key = rq.Key
	}
	if flowControlled(rq.Opcode) {
		ev.AckSize = uint32(size)
	}
	x := rq.Extras
	switch rq.Opcode {
	case gomemcached.UPR_MUTATION:
		if len(x) >= mutationExtras {
			ev.seqnos(x)
			ev.Flags = binary.BigEndian.Uint32(x[16:])
			ev.Expiry = binary.BigEndian.Uint32(x[20:])
			ev.LockTime = binary.BigEndian.Uint32(x[24:])
			ev.MetadataSize = binary.BigEndian.Uint16(x[28:])
		}
	case gomemcached.UPR_DELETION:
		switch {
		case len(x) >= deletionV2Extras:
			ev.seqnos(x)
			ev.Expiry = binary.BigEndian.Uint32(x[16:])
		case len(x) >= deletionV1Extras:
			ev.seqnos(x)
			ev.MetadataSize = binary.BigEndian.Uint16(x[16:])
		}
	case gomemcached.UPR_EXPIRATION:
		if len(x) >= expirationExtras {
			ev.seqnos(x)
			ev.Expiry = binary.BigEndian.Uint32(x[16:])
		}
	case gomemcached.UPR_SNAPSHOT:
		switch {
		case len(x) >= snapshotV1Extras:
			ev.snapshot(x)
		case len(x) == 1 && len(rq.Body) >= snapshotV1Extras:
			// V2.x marker (max_marker_version 2.0 or 2.2): the extras are
			// the version, the value starts with start, end and type. The
			// reference decodes only V1.
			ev.snapshot(rq.Body)
		}
	case gomemcached.DCP_SYSTEM_EVENT:
		ev.PopulateEvent(x)
	case gomemcached.DCP_SEQNO_ADV:
		ev.PopulateSeqnoAdv(x)
	case gomemcached.DCP_OSO_SNAPSHOT:
		ev.PopulateOso(x)
	case gomemcached.UPR_STREAMEND:
		ev.PopulateStreamEndFlags(x)
	}
	return ev
}

func (ev *UprEvent) seqnos(x []byte) {
	ev.Seqno = binary.BigEndian.Uint64(x)
	ev.RevSeqno = binary.BigEndian.Uint64(x[8:])
}

func (ev *UprEvent) snapshot(b []byte) {
	ev.SnapstartSeq = binary.BigEndian.Uint64(b)
	ev.SnapendSeq = binary.BigEndian.Uint64(b[8:])
	ev.SnapshotType = binary.BigEndian.Uint32(b[16:])
}

// PopulateFieldsBasedOnStreamType sets the event's Key from rq, and for a
// collections stream splits the collection id (unsigned LEB128) off the
// key of a mutation, deletion or expiration into CollectionId; for a
// stream-id stream it also sets StreamId from rq's stream-id frame.
func (event *UprEvent) PopulateFieldsBasedOnStreamType(rq gomemcached.MCRequest, streamType DcpStreamType) {
	event.Key = rq.Key
	switch streamType {
	case CollectionsStreamId:
		for i := range rq.FramingExtras {
			if sid, err := rq.FramingExtras[i].GetStreamId(); err == nil {
				event.StreamId = &sid
			}
		}
		fallthrough
	case CollectionsNonStreamId:
		switch rq.Opcode {
		case gomemcached.UPR_MUTATION, gomemcached.UPR_DELETION, gomemcached.UPR_EXPIRATION:
			cid, n := Uleb128(rq.Key).ToUint32(rq.Keylen)
			event.CollectionId = cid
			event.Key = rq.Key[n:]
		}
	}
}

// String returns the name of the event's opcode.
func (event *UprEvent) String() string {
	if name := gomemcached.CommandNames[event.Opcode]; name != "" {
		return name
	}
	return "#" + strconv.Itoa(int(event.Opcode))
}

// IsSnappyDataType reports whether the event is a mutation with a
// snappy-compressed value.
func (event *UprEvent) IsSnappyDataType() bool {
	return event.Opcode == gomemcached.UPR_MUTATION && event.DataType&SnappyDataType != 0
}

// IsCollectionType reports whether the event is a system event or carries
// a collection id. (The reference's test, CollectionId <= math.MaxUint32,
// holds for every uint32, so it reports true for every event; this one
// reports what its name says.)
func (event *UprEvent) IsCollectionType() bool {
	return event.IsSystemEvent() || event.CollectionId != math.MaxUint32
}

// IsSystemEvent reports whether the event is a DCP_SYSTEM_EVENT.
func (event *UprEvent) IsSystemEvent() bool { return event.Opcode == gomemcached.DCP_SYSTEM_EVENT }

// IsSeqnoAdv reports whether the event is a DCP_SEQNO_ADV.
func (event *UprEvent) IsSeqnoAdv() bool { return event.Opcode == gomemcached.DCP_SEQNO_ADV }

// IsOsoSnapshot reports whether the event is a DCP_OSO_SNAPSHOT.
func (event *UprEvent) IsOsoSnapshot() bool { return event.Opcode == gomemcached.DCP_OSO_SNAPSHOT }

// IsStreamEnd reports whether the event is a UPR_STREAMEND.
func (event *UprEvent) IsStreamEnd() bool { return event.Opcode == gomemcached.UPR_STREAMEND }

// PopulateEvent decodes a system event's extras: seqno(8), event(4),
// version(1). Shorter extras are left alone.
func (event *UprEvent) PopulateEvent(extras []byte) {
	if len(extras) < systemEventExtras {
		return
	}
	event.Seqno = binary.BigEndian.Uint64(extras)
	event.SystemEvent = SystemEventType(binary.BigEndian.Uint32(extras[8:]))
	event.SysEventVersion = extras[12]
}

// PopulateSeqnoAdv decodes a seqno-advanced message's extras: seqno(8).
func (event *UprEvent) PopulateSeqnoAdv(extras []byte) {
	if len(extras) >= seqnoAdvanceExtras {
		event.Seqno = binary.BigEndian.Uint64(extras)
	}
}

// PopulateOso decodes an OSO snapshot marker's extras: flags(4) into Flags.
func (event *UprEvent) PopulateOso(extras []byte) {
	if len(extras) >= osoExtras {
		event.Flags = binary.BigEndian.Uint32(extras)
	}
}

// PopulateStreamEndFlags decodes a stream end's extras: the reason(4) into
// Flags.
func (event *UprEvent) PopulateStreamEndFlags(extras []byte) {
	if len(extras) >= streamEndExtras {
		event.Flags = binary.BigEndian.Uint32(extras)
	}
}

// GetSystemEventName returns the name of the collection or scope a
// creation event creates: its key.
func (event *UprEvent) GetSystemEventName() (string, error) {
	switch event.SystemEvent {
	case CollectionCreate, ScopeCreate:
		return string(event.Key), nil
	}
	return "", ErrorInvalidOp
}

// The fields of the system events' values. Versions 0 and 1 are fixed
// layouts: manifest uid(8), scope(4), then for collections the id(4) and,
// in version 1 of a creation, max TTL(4). Version 2 values are FlatBuffers
// tables (kv_engine's engines/ep/src/collections/events.fbs) whose first
// fields are the same in every table: uid, scopeId, collectionId; a
// Collection's fifth is maxTtl.
const (
	fbUID          = 0
	fbScopeID      = 1
	fbCollectionID = 2
	fbMaxTTL       = 4
)

// fixedField returns the offset of a field in a version 0 or 1 value, or
// an error if the event's type or version has no such field.
func (event *UprEvent) fixedField(field int) (int, error) {
	v, t := event.SysEventVersion, event.SystemEvent
	var at, maxVersion int
	switch field {
	case fbUID:
		at = 0
	case fbScopeID:
		at = 8
	case fbCollectionID:
		at = 12
	case fbMaxTTL:
		at = 16
	}
	switch t {
	case CollectionCreate:
		maxVersion = 1
		if field == fbMaxTTL && v < 1 {
			return 0, ErrorNoMaxTTL
		}
	case CollectionDrop:
		if field == fbMaxTTL {
			return 0, ErrorInvalidOp
		}
	case ScopeCreate, ScopeDrop:
		if field == fbCollectionID || field == fbMaxTTL {
			return 0, ErrorInvalidOp
		}
	default:
		return 0, ErrorInvalidOp
	}
	if int(v) > maxVersion {
		return 0, ErrorInvalidVersion
	}
	return at, nil
}

// sysField reads a field of the system event's value, of size 4 or 8.
func (event *UprEvent) sysField(field, size int) (uint64, error) {
	if event.SysEventVersion < 2 {
		at, err := event.fixedField(field)
		if err != nil {
			return 0, err
		}
		if len(event.Value) < at+size {
			return 0, ErrorValueTooShort
		}
		return readUint(event.Value[at:], size), nil
	}
	switch event.SystemEvent {
	case CollectionCreate, CollectionChanged:
	case CollectionDrop:
		if field == fbMaxTTL {
			return 0, ErrorInvalidOp
		}
	case ScopeCreate, ScopeDrop:
		if field == fbCollectionID || field == fbMaxTTL {
			return 0, ErrorInvalidOp
		}
	default:
		return 0, ErrorInvalidOp
	}
	b, err := flatField(event.Value, field, size)
	if err != nil || b == nil {
		return 0, err // absent: the schema's default, 0
	}
	return readUint(b, size), nil
}

func readUint(b []byte, size int) uint64 {
	if size == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return uint64(binary.BigEndian.Uint32(b))
}

// flatField returns the bytes of scalar field number slot, size bytes
// wide, of the root table of the FlatBuffers buffer buf, or nil if the
// field is absent. FlatBuffers are little-endian; the bytes returned are
// in big-endian order, for readUint. Every offset is checked: a malformed
// buffer gives ErrorValueTooShort (the reference's generated readers
// panic on one).
func flatField(buf []byte, slot, size int) ([]byte, error) {
	le := binary.LittleEndian
	if len(buf) < 4 {
		return nil, ErrorValueTooShort
	}
	table := int64(le.Uint32(buf))
	if table+4 > int64(len(buf)) {
		return nil, ErrorValueTooShort
	}
	vtable := table - int64(int32(le.Uint32(buf[table:])))
	if vtable < 0 || vtable+4 > int64(len(buf)) {
		return nil, ErrorValueTooShort
	}
	vlen := int64(le.Uint16(buf[vtable:]))
	tlen := int64(le.Uint16(buf[vtable+2:]))
	if vlen < 4 || vtable+vlen > int64(len(buf)) || table+tlen > int64(len(buf)) {
		return nil, ErrorValueTooShort
	}
	at := int64(4 + 2*slot)
	if at+2 > vlen {
		return nil, nil
	}
	off := int64(le.Uint16(buf[vtable+at:]))
	if off == 0 {
		return nil, nil
	}
	if off+int64(size) > tlen {
		return nil, ErrorValueTooShort
	}
	out := make([]byte, size)
	for i := range size {
		out[i] = buf[table+off+int64(size-1-i)]
	}
	return out, nil
}

// GetManifestId returns the manifest uid of a system event.
func (event *UprEvent) GetManifestId() (uint64, error) {
	return event.sysField(fbUID, 8)
}

// GetCollectionId returns the collection id of a collection event.
func (event *UprEvent) GetCollectionId() (uint32, error) {
	v, err := event.sysField(fbCollectionID, 4)
	return uint32(v), err
}

// GetScopeId returns the scope id of a system event.
func (event *UprEvent) GetScopeId() (uint32, error) {
	v, err := event.sysField(fbScopeID, 4)
	return uint32(v), err
}

// GetMaxTTL returns the max TTL of a collection creation (version 1 or 2)
// or modification (version 2) event.
func (event *UprEvent) GetMaxTTL() (uint32, error) {
	v, err := event.sysField(fbMaxTTL, 4)
	return uint32(v), err
}

// GetOsoBegin reports, for an OSO snapshot marker, whether it starts
// (flags 1) or ends (flags 2) the out-of-order snapshot.
func (event *UprEvent) GetOsoBegin() (bool, error) {
	if !event.IsOsoSnapshot() {
		return false, ErrorInvalidOp
	}
	switch event.Flags {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	return false, ErrorInvalidOp
}

// Clone returns a deep copy of the event: its byte slices, failover log
// and stream id are copied.
func (event *UprEvent) Clone() *UprEvent {
	c := *event
	c.Key = cloneBytes(event.Key)
	c.Value = cloneBytes(event.Value)
	c.OldValue = cloneBytes(event.OldValue)
	c.ExtMeta = cloneBytes(event.ExtMeta)
	if event.FailoverLog != nil {
		log := append(FailoverLog(nil), *event.FailoverLog...)
		c.FailoverLog = &log
	}
	if event.StreamId != nil {
		sid := *event.StreamId
		c.StreamId = &sid
	}
	return &c
}

func cloneBytes(b []byte) []byte { return append([]byte(nil), b...) }

// Uleb128 is an unsigned LEB128 number, as collection ids prefix keys.
type Uleb128 []byte

// ToUint32 decodes the number from the first cachedLen bytes (at most) of
// u, and returns it with the number of bytes it took. Unlike the
// reference's, it stops at the end of u whatever cachedLen says.
func (u Uleb128) ToUint32(cachedLen int) (result uint32, bytesShifted int) {
	n := min(cachedLen, len(u))
	for i := 0; i < n; i++ {
		b := u[i]
		if shift := 7 * i; shift < 32 {
			result |= uint32(b&0x7f) << shift
		}
		bytesShifted++
		if b&0x80 == 0 {
			break
		}
	}
	return result, bytesShifted
}
