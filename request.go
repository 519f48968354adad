package gomemcached

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// MCRequest is a request packet. The fields and their meaning are those of
// github.com/couchbase/gomemcached.
//
// Encoding uses FLEX_MAGIC when the request has framing extras
// (FramingExtras, or an impersonated user in Username), REQ_MAGIC otherwise.
// The key on the wire is CollId[:CollIdLen] followed by Key.
//
// Decoding fills every field from the packet and keeps the key whole: a
// collection id is not split off (see SplitCollectionID), and frames,
// impersonation included, land in FramingExtras. Receive gives fields that
// the request owns; a Reader gives fields that alias its buffer until its
// next read.
type MCRequest struct {
	// Opcode is the command.
	Opcode CommandCode
	// Cas is the compare-and-swap value the command is conditional on, or 0.
	Cas uint64
	// Opaque is copied into the response; clients match responses with it.
	Opaque uint32
	// VBucket is the vbucket the key belongs to.
	VBucket uint16
	// Extras, Key and Body are the command's sections. ExtMeta is the
	// extended metadata that follows the value in the messages whose
	// extras carry its length (nmeta): DCP_MUTATION (at offset 28),
	// DCP_DELETION with 18 bytes of extras (at 16), and the *_WITH_META
	// commands with 30 (at 28) or 26 (at 24). (The reference reads a
	// length at offset 28 of any extras over 29 bytes, which breaks a
	// stream request whose vbuuid has bytes there.)
	Extras, Key, Body, ExtMeta []byte
	// DataType holds the Datatype flags of the value.
	DataType uint8
	// Keylen is the key length a decoded packet announced.
	Keylen int
	// CollId holds the collection id as unsigned LEB128 in its first
	// CollIdLen bytes; encoding puts it in front of Key. SetCollectionID
	// fills both.
	CollId [5]byte
	// CollIdLen is the number of bytes of CollId in use.
	CollIdLen int
	// Username holds, in its first UserLen bytes, a user to impersonate;
	// encoding sends it as a FrameImpersonate frame after FramingExtras.
	Username [MAX_USER_LEN]byte
	// UserLen is the number of bytes of Username in use.
	UserLen int
	// FramingExtras are the request's frames, in wire order.
	FramingExtras []FrameInfo
	// FramingElen is the length of the framing extras of a decoded packet.
	FramingElen int
}

// isTapMessage reports whether op is a TAP message whose extras are followed
// by engine-specific data, sized by the first two bytes of the extras.
func isTapMessage(op CommandCode) bool { return op >= TAP_MUTATION && op <= TAP_CHECKPOINT_END }

// nmetaAt returns where the extras of an op carry the length of the
// extended metadata that ends the value, or -1 if they do not.
func nmetaAt(op CommandCode, extlen int) int {
	switch op {
	case UPR_MUTATION:
		if extlen >= 30 {
			return 28
		}
	case UPR_DELETION:
		if extlen == 18 {
			return 16
		}
	case SET_WITH_META, SETQ_WITH_META, ADD_WITH_META, ADDQ_WITH_META, DELETE_WITH_META, DELETEQ_WITH_META:
		switch extlen {
		case 30:
			return 28
		case 26:
			return 24
		}
	}
	return -1
}

// framesLen returns the encoded length of the framing extras.
func (req *MCRequest) framesLen() int {
	n := 0
	for i := range req.FramingExtras {
		f := &req.FramingExtras[i]
		n += frameSize(f.ObjId, f.ObjLen)
	}
	if req.UserLen > 0 {
		n += frameSize(FrameImpersonate, req.UserLen)
	}
	return n
}

// HdrSize returns the encoded size of the request without its value and
// extended metadata: header, framing extras, extras and key.
func (req *MCRequest) HdrSize() int {
	return HDR_LEN + req.framesLen() + len(req.Extras) + req.CollIdLen + len(req.Key)
}

// Size returns the encoded size of the request in bytes.
func (req *MCRequest) Size() int {
	return req.HdrSize() + len(req.Body) + len(req.ExtMeta)
}

// String describes the request for logs and debugging.
func (req MCRequest) String() string {
	return fmt.Sprintf("MCRequest{opcode=%s key=%q extras=%d body=%d vbucket=%d opaque=%d cas=%d}",
		req.Opcode, req.Key, len(req.Extras), len(req.Body), req.VBucket, req.Opaque, req.Cas)
}

// SetCollectionID sets CollId and CollIdLen to cid in unsigned LEB128.
func (req *MCRequest) SetCollectionID(cid uint32) {
	req.CollIdLen = len(AppendCollectionID(req.CollId[:0], cid))
}

// SetImpersonate sets the user the request impersonates (a leading '^'
// marks an external user); an empty user clears it. It fails if user is
// longer than MAX_USER_LEN.
func (req *MCRequest) SetImpersonate(user string) error {
	if len(user) > MAX_USER_LEN {
		return protoErr(ErrFieldTooLong, "impersonated user of "+strconv.Itoa(len(user))+" bytes")
	}
	req.UserLen = copy(req.Username[:], user)
	return nil
}

// AppendTo appends the encoded request to dst and returns the extended
// slice; it allocates only if dst lacks capacity. It fails, leaving dst as
// it was, if a field does not fit its length field: ErrKeyTooLong,
// ErrFieldTooLong, or ErrorObjLenNotMatch for a frame whose ObjLen exceeds
// its data.
//
// For the TAP messages TAP_MUTATION to TAP_CHECKPOINT_END, Extras holds the
// extras followed by the engine-specific data whose length the first two
// bytes of the extras give, as decoding leaves them; the extras length field
// excludes that data, so decoding and encoding are inverses. (The
// reference counts the engine data in the extras length.)
func (req *MCRequest) AppendTo(dst []byte) ([]byte, error) {
	// The common packet (no frames, collection prefix or TAP engine data)
	// takes a short path; everything else the general one.
	extlen, keylen := len(req.Extras), len(req.Key)
	bodylen := uint64(extlen) + uint64(keylen) + uint64(len(req.Body)) + uint64(len(req.ExtMeta))
	if len(req.FramingExtras) != 0 || req.UserLen != 0 || req.CollIdLen != 0 || isTapMessage(req.Opcode) ||
		!shortPacket(extlen, keylen, bodylen) {
		return req.appendPacket(dst, true)
	}
	dst, start := extend(dst, HDR_LEN+int(bodylen))
	putShortHeader(dst[start:], REQ_MAGIC, req.Opcode, extlen, keylen, req.DataType, req.VBucket,
		bodylen, req.Opaque, req.Cas)
	p := start + HDR_LEN
	p += copyIn(dst[p:], req.Extras)
	p += copy(dst[p:], req.Key)
	p += copyIn(dst[p:], req.Body)
	copyIn(dst[p:], req.ExtMeta)
	return dst, nil
}

// AppendHeaderTo appends the request without its value and extended
// metadata: header, framing extras, extras and key, with the header's body
// length counting what is left out.
func (req *MCRequest) AppendHeaderTo(dst []byte) ([]byte, error) {
	return req.appendPacket(dst, false)
}

// appendPacket appends the request, without its value and extended metadata
// unless withValue is set; the header's body length counts them either way.
func (req *MCRequest) appendPacket(dst []byte, withValue bool) ([]byte, error) {
	flen := req.framesLen()
	keylen := req.CollIdLen + len(req.Key)
	extlen := len(req.Extras)
	if isTapMessage(req.Opcode) && extlen >= 2 {
		if engine := int(binary.BigEndian.Uint16(req.Extras)); engine <= extlen-2 {
			extlen -= engine
		}
	}
	flex := len(req.FramingExtras) > 0 || req.UserLen > 0
	bodylen := uint64(flen) + uint64(len(req.Extras)) + uint64(keylen) +
		uint64(len(req.Body)) + uint64(len(req.ExtMeta))
	switch {
	case req.CollIdLen < 0 || req.CollIdLen > len(req.CollId):
		return dst, protoErr(ErrFieldTooLong, "CollIdLen "+strconv.Itoa(req.CollIdLen))
	case req.UserLen < 0 || req.UserLen > MAX_USER_LEN:
		return dst, protoErr(ErrFieldTooLong, "UserLen "+strconv.Itoa(req.UserLen))
	case flex && keylen > math.MaxUint8, keylen > math.MaxUint16:
		return dst, protoErr(ErrKeyTooLong, "key of "+strconv.Itoa(keylen)+" bytes")
	case flen > math.MaxUint8:
		return dst, protoErr(ErrFieldTooLong, "framing extras of "+strconv.Itoa(flen)+" bytes")
	case extlen > math.MaxUint8:
		return dst, protoErr(ErrFieldTooLong, "extras of "+strconv.Itoa(extlen)+" bytes")
	case bodylen > math.MaxUint32:
		return dst, protoErr(ErrFieldTooLong, "body of "+strconv.FormatUint(bodylen, 10)+" bytes")
	}

	size := HDR_LEN + flen + len(req.Extras) + keylen
	if withValue {
		size += len(req.Body) + len(req.ExtMeta)
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	h := dst[start : start+HDR_LEN : start+HDR_LEN]
	if flex {
		h[0], h[2], h[3] = FLEX_MAGIC, byte(flen), byte(keylen)
	} else {
		h[0], h[2], h[3] = REQ_MAGIC, byte(keylen>>8), byte(keylen)
	}
	h[1], h[4], h[5] = byte(req.Opcode), byte(extlen), req.DataType
	binary.BigEndian.PutUint16(h[6:8], req.VBucket)
	binary.BigEndian.PutUint32(h[8:12], uint32(bodylen))
	binary.BigEndian.PutUint32(h[12:16], req.Opaque)
	binary.BigEndian.PutUint64(h[16:24], req.Cas)
	p := start + HDR_LEN
	if flen > 0 {
		frames := dst[:p]
		for i := range req.FramingExtras {
			f := &req.FramingExtras[i]
			data, ok := f.data()
			if !ok {
				return dst[:start], ErrorObjLenNotMatch
			}
			var err error
			if frames, err = AppendFrame(frames, f.ObjId, data); err != nil {
				return dst[:start], err
			}
		}
		if req.UserLen > 0 {
			frames, _ = AppendFrame(frames, FrameImpersonate, req.Username[:req.UserLen])
		}
		p = len(frames)
	}
	p += copyIn(dst[p:], req.Extras)
	p += copyIn(dst[p:], req.CollId[:req.CollIdLen])
	p += copyIn(dst[p:], req.Key)
	if withValue {
		p += copyIn(dst[p:], req.Body)
		copyIn(dst[p:], req.ExtMeta)
	}
	return dst, nil
}

// FillHeaderBytes writes the header, framing extras, extras and key into
// data, which needs HdrSize bytes, and returns how many it wrote. The second
// result is always false (no half-byte alignment; see FrameInfo.Bytes). It
// writes nothing and returns 0 if data is too short or the request cannot be
// encoded (see AppendTo).
func (req *MCRequest) FillHeaderBytes(data []byte) (int, bool) {
	n := req.HdrSize()
	if len(data) < n {
		return 0, false
	}
	buf, err := req.appendPacket(data[:0], false)
	if err != nil {
		return 0, false
	}
	return len(buf), false
}

// HeaderBytes returns the header, framing extras, extras and key, or nil if
// the request cannot be encoded (see AppendTo).
func (req *MCRequest) HeaderBytes() []byte {
	b, err := req.appendPacket(make([]byte, 0, req.HdrSize()), false)
	if err != nil {
		return nil
	}
	return b
}

// Bytes returns the encoded request, or nil if it cannot be encoded (see
// AppendTo for the reasons and an error).
func (req *MCRequest) Bytes() []byte {
	b, err := req.AppendTo(make([]byte, 0, req.Size()))
	if err != nil {
		return nil
	}
	return b
}

// BytesPreallocated zeroes out and writes the encoded request into its
// start. It writes nothing more if out is shorter than Size or the request
// cannot be encoded.
func (req *MCRequest) BytesPreallocated(out []byte) {
	clear(out)
	if len(out) < req.Size() {
		return
	}
	req.AppendTo(out[:0])
}

// Transmit writes the encoded request to w with a single Write call when it
// is at most 64 KiB, allocating nothing; a larger request is written as its
// header part and then its value.
func (req *MCRequest) Transmit(w io.Writer) (n int, err error) {
	if req.Size() > maxPooledPacket {
		hdr := getBuf()
		defer putBuf(hdr)
		if *hdr, err = req.appendPacket((*hdr)[:0], false); err != nil {
			return 0, err
		}
		return writeAll(w, *hdr, req.Body, req.ExtMeta)
	}
	buf := getBuf()
	defer putBuf(buf)
	if *buf, err = req.AppendTo((*buf)[:0]); err != nil {
		return 0, err
	}
	return w.Write(*buf)
}

// Receive reads one request from r into req, replacing all its fields. The
// header is read into hdrBytes when it has room for HDR_LEN bytes; the body
// is read into one new allocation that Extras, Key, Body, ExtMeta and the
// frames' data share, so they stay valid after later calls. (Bodies over
// 1 MiB are read into a buffer that grows as the data arrives.) Receive returns
// io.EOF if r ends before the first byte; any other failure is an error
// after which the stream is out of step. Header lengths are validated before
// anything is allocated: see MaxBodyLen.
func (req *MCRequest) Receive(r io.Reader, hdrBytes []byte) (int, error) {
	hdr, pooled := headerBuf(hdrBytes)
	defer releaseHeader(pooled)
	n, err := io.ReadFull(r, hdr)
	if err != nil {
		return n, readErr(n, err)
	}
	var h header
	if err := parseHeader(&h, hdr, MaxBodyLen); err != nil {
		return n, err
	}
	var body []byte
	if h.bodylen > 0 {
		var m int
		body, m, err = readBody(r, h.bodylen)
		n += m
		if err != nil {
			return n, readErr(1, err)
		}
	}
	req.FramingExtras = nil
	return n, req.decode(&h, hdr, body)
}

// decode fills req from a validated header (h and its bytes hb) and the
// body, slicing body. FramingExtras is appended to from its length 0, so a
// caller decides whether its backing array is reused.
func (req *MCRequest) decode(h *header, hb, body []byte) error {
	hb = hb[:HDR_LEN]
	req.Opcode = CommandCode(hb[1])
	req.DataType = hb[5]
	req.VBucket = binary.BigEndian.Uint16(hb[6:8])
	req.Opaque = binary.BigEndian.Uint32(hb[12:16])
	req.Cas = binary.BigEndian.Uint64(hb[16:24])
	req.Keylen = h.keylen
	req.FramingElen = h.framelen
	req.CollIdLen = 0
	req.UserLen = 0
	req.FramingExtras = req.FramingExtras[:0]
	if h.framelen == 0 && nmetaAt(req.Opcode, h.extlen) < 0 && !isTapMessage(req.Opcode) {
		// The common packet: no frames, TAP engine data or metadata.
		e, k := h.extlen, h.extlen+h.keylen
		req.Extras, req.Key, req.Body, req.ExtMeta = body[:e:e], body[e:k:k], body[k:], nil
		return nil
	}

	frames := body[:h.framelen]
	if len(frames) > 0 {
		var err error
		if req.FramingExtras, err = parseFrames(req.FramingExtras, frames); err != nil {
			return err
		}
	}
	rest := body[h.framelen:]
	elen := h.extlen
	if isTapMessage(req.Opcode) && elen >= 2 {
		elen += int(binary.BigEndian.Uint16(rest))
	}
	if elen+h.keylen > len(rest) {
		return protoErr(ErrBadLength, "TAP engine data runs past the body")
	}
	req.Extras = rest[:elen:elen]
	req.Key = rest[elen : elen+h.keylen : elen+h.keylen]
	rest = rest[elen+h.keylen:]
	meta := 0
	if at := nmetaAt(req.Opcode, elen); at >= 0 {
		meta = int(binary.BigEndian.Uint16(req.Extras[at : at+2]))
		if meta > len(rest) {
			return protoErr(ErrBadLength, "extended metadata length "+strconv.Itoa(meta)+
				" exceeds the value's "+strconv.Itoa(len(rest))+" bytes")
		}
	}
	v := len(rest) - meta
	req.Body = rest[:v:v]
	req.ExtMeta = nil
	if meta > 0 {
		req.ExtMeta = rest[v:]
	}
	return nil
}
