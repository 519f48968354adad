package gomemcached

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"
)

// Framing extras are a sequence of frames between the header and the extras
// of a packet sent with FLEX_MAGIC or FLEX_RES_MAGIC. Each frame is:
//
//	byte 0:      id (high nibble) and length (low nibble), each 0..14;
//	             a nibble of 15 is an escape:
//	[id escape]  present if the id nibble is 15: id = 15 + this byte
//	[len escape] present if the length nibble is 15: length = 15 + this byte
//	data         length bytes
//
// Ids and lengths therefore range over 0..270.

// FrameObjType is the id of a frame. Request and response frames have
// separate id spaces: the FrameBarrier... constants are request ids, the
// FrameServerDuration... constants response ids.
type FrameObjType int

// Request frame ids.
const (
	FrameBarrier        FrameObjType = 0 // do not reorder around this request; no data
	FrameDurability     FrameObjType = 1 // level(1) [timeout ms(2)]
	FrameDcpStreamId    FrameObjType = 2 // DCP stream id(2)
	FrameOpenTracing    FrameObjType = 3 // tracing context, at least 1 byte
	FrameImpersonate    FrameObjType = 4 // user name; a leading '^' marks an external user
	FramePreserveExpiry FrameObjType = 5 // keep the document's expiry; no data

	// FrameExtraPrivilege adds a privilege to an impersonated user.
	FrameExtraPrivilege FrameObjType = 6
)

// Response frame ids.
const (
	FrameServerDuration   FrameObjType = 0 // server time, encoded by EncodeServerDuration
	FrameReadUnits        FrameObjType = ComputeUnitsRead
	FrameWriteUnits       FrameObjType = ComputeUnitsWrite
	FrameThrottleDuration FrameObjType = 3
)

// Compute-unit frame ids of responses, as the reference names them.
const (
	ComputeUnitsRead  = 1
	ComputeUnitsWrite = 2
)

// MAX_USER_LEN is the capacity of MCRequest.Username.
const MAX_USER_LEN = 128

// FAST_FRAME_LEN is the largest value a frame's id or length nibble holds
// directly, plus one: 15 is the escape.
const FAST_FRAME_LEN = 15

// maxFrameField is the largest id or length a frame can encode.
const maxFrameField = FAST_FRAME_LEN + 255

// FrameInfo is one frame of a request's framing extras. ObjLen is the length
// of the data: ObjData[:ObjLen] is what is encoded.
type FrameInfo struct {
	ObjId   FrameObjType
	ObjLen  int
	ObjData []byte
}

// DurabilityLvl is the level of a durability frame.
type DurabilityLvl uint8

// Durability levels.
const (
	DuraInvalid                    DurabilityLvl = 0 // not a valid level on the wire
	DuraMajority                   DurabilityLvl = 1
	DuraMajorityAndPersistOnMaster DurabilityLvl = 2
	DuraPersistToMajority          DurabilityLvl = 3
)

// frameErr builds the error for a frame that breaks its type's rules.
func frameErr(f *FrameInfo, rule string) error {
	return protoErr(ErrBadFrame, "frame "+strconv.Itoa(int(f.ObjId))+": "+rule)
}

// Validate checks f against the rules of its request frame type: lengths
// (barrier 0, durability 1 or 3 with a level 1..3 and a timeout other than
// 0 and 0xffff, stream id 2, preserve-expiry 0, tracing, impersonate and
// extra privilege at least 1) and ObjLen agreeing with ObjData. Unknown ids
// are an error. The reference accepts only a 1-byte tracing context and no
// frame 6; this follows BinaryProtocol.md.
func (f *FrameInfo) Validate() error {
	if f.ObjLen != len(f.ObjData) {
		return ErrorObjLenNotMatch
	}
	n := f.ObjLen
	switch f.ObjId {
	case FrameBarrier, FramePreserveExpiry:
		if n != 0 {
			return frameErr(f, "must be empty")
		}
	case FrameDurability:
		if n != 1 && n != 3 {
			return frameErr(f, "durability must be 1 or 3 bytes")
		}
		if l := DurabilityLvl(f.ObjData[0]); l < DuraMajority || l > DuraPersistToMajority {
			return frameErr(f, "unknown durability level")
		}
		if n == 3 {
			if t := binary.BigEndian.Uint16(f.ObjData[1:3]); t == 0 || t == 0xffff {
				return frameErr(f, "durability timeout 0 and 0xffff are reserved")
			}
		}
	case FrameDcpStreamId:
		if n != 2 {
			return frameErr(f, "stream id must be 2 bytes")
		}
	case FrameOpenTracing, FrameImpersonate, FrameExtraPrivilege:
		if n == 0 {
			return frameErr(f, "must not be empty")
		}
	default:
		return frameErr(f, "unknown frame id")
	}
	return nil
}

// GetStreamId returns the DCP stream id of a FrameDcpStreamId frame.
func (f *FrameInfo) GetStreamId() (uint16, error) {
	if f.ObjId != FrameDcpStreamId {
		return 0, ErrorInvalidOp
	}
	if f.ObjLen != 2 || len(f.ObjData) != 2 {
		return 0, ErrorObjLenNotMatch
	}
	return binary.BigEndian.Uint16(f.ObjData), nil
}

// GetDurabilityRequirements returns the level and, if present, the timeout
// in milliseconds of a FrameDurability frame. The timeout is the 16-bit
// big-endian value of bytes 1 and 2; the reference reads only byte 1 (and
// panics doing so).
func (f *FrameInfo) GetDurabilityRequirements() (lvl DurabilityLvl, timeoutProvided bool, timeoutMs uint16, err error) {
	if f.ObjId != FrameDurability {
		return 0, false, 0, ErrorInvalidOp
	}
	if (f.ObjLen != 1 && f.ObjLen != 3) || len(f.ObjData) != f.ObjLen {
		return 0, false, 0, ErrorObjLenNotMatch
	}
	lvl = DurabilityLvl(f.ObjData[0])
	if f.ObjLen == 3 {
		return lvl, true, binary.BigEndian.Uint16(f.ObjData[1:3]), nil
	}
	return lvl, false, 0, nil
}

// Bytes returns the encoded frame. The second result is always false: frames
// are byte-aligned (the reference's half-byte mode never occurs). Bytes
// returns nil if the frame cannot be encoded: ObjLen larger than ObjData, or
// an id or length over 270.
func (f *FrameInfo) Bytes() ([]byte, bool) {
	data, ok := f.data()
	if !ok {
		return nil, false
	}
	b, err := AppendFrame(nil, f.ObjId, data)
	if err != nil {
		return nil, false
	}
	return b, false
}

// data returns the bytes the frame encodes, ObjData[:ObjLen].
func (f *FrameInfo) data() ([]byte, bool) {
	if f.ObjLen < 0 || f.ObjLen > len(f.ObjData) {
		return nil, false
	}
	return f.ObjData[:f.ObjLen], true
}

// NewDurabilityFrame returns a durability frame; a zero timeout is left out
// so that the server applies its default.
func NewDurabilityFrame(lvl DurabilityLvl, timeoutMs uint16) FrameInfo {
	if timeoutMs == 0 {
		return FrameInfo{ObjId: FrameDurability, ObjLen: 1, ObjData: []byte{byte(lvl)}}
	}
	return FrameInfo{ObjId: FrameDurability, ObjLen: 3,
		ObjData: []byte{byte(lvl), byte(timeoutMs >> 8), byte(timeoutMs)}}
}

// NewStreamIDFrame returns a DCP stream-id frame.
func NewStreamIDFrame(id uint16) FrameInfo {
	return FrameInfo{ObjId: FrameDcpStreamId, ObjLen: 2, ObjData: []byte{byte(id >> 8), byte(id)}}
}

// frameSize is the encoded size of a frame with the given id and data length.
func frameSize(id FrameObjType, n int) int {
	size := 1 + n
	if id >= FAST_FRAME_LEN {
		size++
	}
	if n >= FAST_FRAME_LEN {
		size++
	}
	return size
}

// AppendFrame appends one encoded frame to dst. It fails with ErrFieldTooLong
// if id or len(data) is over 270 (or id is negative).
func AppendFrame(dst []byte, id FrameObjType, data []byte) ([]byte, error) {
	n := len(data)
	if id < 0 || id > maxFrameField || n > maxFrameField {
		return dst, protoErr(ErrFieldTooLong, "frame id "+strconv.Itoa(int(id))+
			" with "+strconv.Itoa(n)+" bytes")
	}
	idNib, lenNib := byte(id), byte(n)
	if id >= FAST_FRAME_LEN {
		idNib = FAST_FRAME_LEN
	}
	if n >= FAST_FRAME_LEN {
		lenNib = FAST_FRAME_LEN
	}
	dst = append(dst, idNib<<4|lenNib)
	if id >= FAST_FRAME_LEN {
		dst = append(dst, byte(id-FAST_FRAME_LEN))
	}
	if n >= FAST_FRAME_LEN {
		dst = append(dst, byte(n-FAST_FRAME_LEN))
	}
	return append(dst, data...), nil
}

// NextFrame decodes the first frame of b, returning its id, its data (a
// sub-slice of b) and the bytes after it. A frame that runs past the end of
// b is an ErrBadFrame.
func NextFrame(b []byte) (id FrameObjType, data, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, protoErr(ErrBadFrame, "empty")
	}
	idNib, lenNib := int(b[0]>>4), int(b[0]&0x0f)
	pos := 1
	if idNib == FAST_FRAME_LEN {
		if pos >= len(b) {
			return 0, nil, nil, protoErr(ErrBadFrame, "missing id escape byte")
		}
		idNib += int(b[pos])
		pos++
	}
	if lenNib == FAST_FRAME_LEN {
		if pos >= len(b) {
			return 0, nil, nil, protoErr(ErrBadFrame, "missing length escape byte")
		}
		lenNib += int(b[pos])
		pos++
	}
	if lenNib > len(b)-pos {
		return 0, nil, nil, protoErr(ErrBadFrame, "frame "+strconv.Itoa(idNib)+" of "+
			strconv.Itoa(lenNib)+" bytes overruns the framing extras")
	}
	end := pos + lenNib
	return FrameObjType(idNib), b[pos:end:end], b[end:], nil
}

// checkFrames reports whether b is a well-formed sequence of frames.
func checkFrames(b []byte) error {
	for len(b) > 0 {
		var err error
		if _, _, b, err = NextFrame(b); err != nil {
			return err
		}
	}
	return nil
}

// parseFrames appends the frames of b to dst.
func parseFrames(dst []FrameInfo, b []byte) ([]FrameInfo, error) {
	for len(b) > 0 {
		id, data, rest, err := NextFrame(b)
		if err != nil {
			return dst, err
		}
		dst = append(dst, FrameInfo{ObjId: id, ObjLen: len(data), ObjData: data})
		b = rest
	}
	return dst, nil
}

// EncodeServerDuration encodes a server duration for a FrameServerDuration
// response frame: (2 * microseconds) ^ (1 / 1.74), rounded, saturating at
// 65535 (about 120 s).
func EncodeServerDuration(d time.Duration) uint16 {
	if d <= 0 {
		return 0
	}
	v := math.Round(math.Pow(float64(d.Microseconds())*2, 1/1.74))
	if v > math.MaxUint16 {
		return math.MaxUint16
	}
	return uint16(v)
}

// DecodeServerDuration is the inverse of EncodeServerDuration: encoded ^ 1.74
// / 2 microseconds.
func DecodeServerDuration(encoded uint16) time.Duration {
	us := math.Pow(float64(encoded), 1.74) / 2
	return time.Duration(us * float64(time.Microsecond))
}
