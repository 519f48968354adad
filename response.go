package gomemcached

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// MCResponse is a response packet. The exported fields and their meaning are
// those of github.com/couchbase/gomemcached.
//
// A failed response is also an error: the reference's client API returns it
// as one, and errors.Is matches it against this package's status sentinels
// (ErrKeyNotFound, ...).
//
// Encoding uses FLEX_RES_MAGIC when FlexibleExtras is not empty and RES_MAGIC
// otherwise (the reference never sends FlexibleExtras). Decoding accepts
// every magic, because DCP and TAP producers send requests that consumers
// read as responses; for a request magic, Status holds the vbucket.
type MCResponse struct {
	// Opcode is the command answered.
	Opcode CommandCode
	// Status is SUCCESS or the reason for failure.
	Status Status
	// Opaque is the request's opaque.
	Opaque uint32
	// Cas is the item's CAS after the command, where it applies.
	Cas uint64
	// Extras, FlexibleExtras (the encoded response frames), Key and Body
	// are the packet's sections.
	Extras, FlexibleExtras, Key, Body []byte
	// Fatal asks a server to close the connection after sending this.
	Fatal bool
	// DataType holds the Datatype flags of the value.
	DataType uint8

	// recycleBuf, when set, came from a ReceiveWithDatapool getter and is
	// handed to recycleDone by the first call to Recycle.
	recycleBuf  []byte
	recycleDone func([]byte)
	recycled    uint32
}

var _ error = (*MCResponse)(nil)

// String describes the response for logs and debugging.
func (res MCResponse) String() string {
	return fmt.Sprintf("MCResponse{opcode=%s status=%s key=%q extras=%d body=%d frames=%d opaque=%d cas=%d}",
		res.Opcode, res.Status, res.Key, len(res.Extras), len(res.Body), len(res.FlexibleExtras), res.Opaque, res.Cas)
}

// Error describes a failed response: opcode, status and the value, which
// servers use for an error message.
func (res *MCResponse) Error() string {
	s := "gomemcached: " + res.Opcode.String() + ": " + res.Status.String() +
		" (opaque " + strconv.FormatUint(uint64(res.Opaque), 10) + ")"
	if len(res.Body) > 0 && len(res.Body) <= 512 {
		s += ": " + string(res.Body)
	}
	return s
}

// Is lets errors.Is match the status sentinel of res.Status.
func (res *MCResponse) Is(target error) bool { return matchStatus(res.Status, target) }

// Size returns the encoded size of the response in bytes.
func (res *MCResponse) Size() int {
	return HDR_LEN + len(res.FlexibleExtras) + len(res.Extras) + len(res.Key) + len(res.Body)
}

// AppendTo appends the encoded response to dst and returns the extended
// slice; it allocates only if dst lacks capacity. It fails, leaving dst as it
// was, with ErrKeyTooLong or ErrFieldTooLong when a section does not fit its
// length field.
func (res *MCResponse) AppendTo(dst []byte) ([]byte, error) {
	// The common packet (no frames, short fields) takes a short path.
	extlen, keylen := len(res.Extras), len(res.Key)
	bodylen := uint64(extlen) + uint64(keylen) + uint64(len(res.Body))
	if len(res.FlexibleExtras) != 0 || !shortPacket(extlen, keylen, bodylen) {
		return res.appendPacket(dst, true)
	}
	dst, start := extend(dst, HDR_LEN+int(bodylen))
	putShortHeader(dst[start:], RES_MAGIC, res.Opcode, extlen, keylen, res.DataType, uint16(res.Status),
		bodylen, res.Opaque, res.Cas)
	p := start + HDR_LEN
	p += copyIn(dst[p:], res.Extras)
	p += copyIn(dst[p:], res.Key)
	copyIn(dst[p:], res.Body)
	return dst, nil
}

// AppendHeaderTo appends the response without its value: header, framing
// extras, extras and key, with the header's body length counting the value.
// A writer sends the value after it, for example with net.Buffers, to avoid
// copying a large value.
func (res *MCResponse) AppendHeaderTo(dst []byte) ([]byte, error) {
	return res.appendPacket(dst, false)
}

// appendPacket appends the response, without its value unless withValue.
func (res *MCResponse) appendPacket(dst []byte, withValue bool) ([]byte, error) {
	flen, keylen, extlen := len(res.FlexibleExtras), len(res.Key), len(res.Extras)
	bodylen := uint64(flen) + uint64(extlen) + uint64(keylen) + uint64(len(res.Body))
	switch {
	case flen > 0 && keylen > math.MaxUint8, keylen > math.MaxUint16:
		return dst, protoErr(ErrKeyTooLong, "key of "+strconv.Itoa(keylen)+" bytes")
	case flen > math.MaxUint8:
		return dst, protoErr(ErrFieldTooLong, "framing extras of "+strconv.Itoa(flen)+" bytes")
	case extlen > math.MaxUint8:
		return dst, protoErr(ErrFieldTooLong, "extras of "+strconv.Itoa(extlen)+" bytes")
	case bodylen > math.MaxUint32:
		return dst, protoErr(ErrFieldTooLong, "body of "+strconv.FormatUint(bodylen, 10)+" bytes")
	}
	size := HDR_LEN + flen + extlen + keylen
	if withValue {
		size += len(res.Body)
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	h := dst[start : start+HDR_LEN : start+HDR_LEN]
	if flen > 0 {
		h[0], h[2], h[3] = FLEX_RES_MAGIC, byte(flen), byte(keylen)
	} else {
		h[0], h[2], h[3] = RES_MAGIC, byte(keylen>>8), byte(keylen)
	}
	h[1], h[4], h[5] = byte(res.Opcode), byte(extlen), res.DataType
	binary.BigEndian.PutUint16(h[6:8], uint16(res.Status))
	binary.BigEndian.PutUint32(h[8:12], uint32(bodylen))
	binary.BigEndian.PutUint32(h[12:16], res.Opaque)
	binary.BigEndian.PutUint64(h[16:24], res.Cas)
	p := start + HDR_LEN
	p += copyIn(dst[p:], res.FlexibleExtras)
	p += copyIn(dst[p:], res.Extras)
	p += copyIn(dst[p:], res.Key)
	if withValue {
		copyIn(dst[p:], res.Body)
	}
	return dst, nil
}

// HeaderBytes returns the response without its value: header, framing
// extras, extras and key; nil if it cannot be encoded (see AppendTo).
func (res *MCResponse) HeaderBytes() []byte {
	b, err := res.appendPacket(make([]byte, 0, res.Size()-len(res.Body)), false)
	if err != nil {
		return nil
	}
	return b
}

// Bytes returns the encoded response, or nil if it cannot be encoded (see
// AppendTo).
func (res *MCResponse) Bytes() []byte {
	b, err := res.AppendTo(make([]byte, 0, res.Size()))
	if err != nil {
		return nil
	}
	return b
}

// Transmit writes the encoded response to w with a single Write call when it
// is at most 64 KiB, allocating nothing; a larger response is written as its
// header part and then its value.
func (res *MCResponse) Transmit(w io.Writer) (n int, err error) {
	buf := getBuf()
	defer putBuf(buf)
	if res.Size() > maxPooledPacket {
		if *buf, err = res.appendPacket((*buf)[:0], false); err != nil {
			return 0, err
		}
		return writeAll(w, *buf, res.Body, nil)
	}
	if *buf, err = res.AppendTo((*buf)[:0]); err != nil {
		return 0, err
	}
	return w.Write(*buf)
}

// Receive reads one response from r into res, replacing all its fields. The
// header is read into hdrBytes when it has room for HDR_LEN bytes; the body
// is read into one new allocation that Extras, FlexibleExtras, Key and Body
// share, so they stay valid after later calls. (Bodies over 1 MiB are read
// into a buffer that grows as the data arrives.) Receive returns io.EOF if r
// ends before the first byte; any other failure is an error after which the
// stream is out of step. Header lengths are validated before anything is
// allocated: see MaxBodyLen.
func (res *MCResponse) Receive(r io.Reader, hdrBytes []byte) (n int, err error) {
	return res.receive(r, hdrBytes, nil, nil, nil)
}

// ReceiveWithBuf is Receive reading the body into buf when its capacity
// suffices, with no allocation; the fields then alias buf.
func (res *MCResponse) ReceiveWithBuf(r io.Reader, hdrbytes, buf []byte) (n int, err error) {
	return res.receive(r, hdrbytes, buf, nil, nil)
}

// ReceiveWithDatapool is Receive taking the body's buffer from getter, which
// is asked for the body's length; if getter fails or returns too small a
// buffer, a new one is allocated (and a too small one given straight to
// done). Recycle later hands getter's buffer to done.
func (res *MCResponse) ReceiveWithDatapool(r io.Reader, hdrbytes []byte, getter func(uint64) ([]byte, error), done func([]byte)) (n int, err error) {
	return res.receive(r, hdrbytes, nil, getter, done)
}

// Recycle hands the body buffer obtained by ReceiveWithDatapool to its done
// function, once; the response's slices must not be used afterwards. It does
// nothing for responses read otherwise.
func (res *MCResponse) Recycle() {
	if res == nil || res.recycleDone == nil || !atomic.CompareAndSwapUint32(&res.recycled, 0, 1) {
		return
	}
	res.recycleDone(res.recycleBuf)
}

// SetRecycle makes Recycle hand buf to done, once: for a response whose
// slices a caller has placed in buf, a buffer from its own pool.
func (res *MCResponse) SetRecycle(buf []byte, done func([]byte)) {
	res.recycleBuf, res.recycleDone, res.recycled = buf, done, 0
}

func (res *MCResponse) receive(r io.Reader, hdrBytes, buf []byte, getter func(uint64) ([]byte, error), done func([]byte)) (int, error) {
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
	res.recycleBuf, res.recycleDone, res.recycled = nil, nil, 0
	need := h.bodylen
	if need == 0 {
		return n, res.decode(&h, hdr, nil)
	}
	if cap(buf) < need && getter != nil {
		b, gerr := getter(uint64(need))
		switch {
		case gerr == nil && cap(b) >= need:
			buf = b
			res.recycleBuf, res.recycleDone = b, done
		case gerr == nil && done != nil:
			done(b)
		}
	}
	var m int
	if cap(buf) >= need {
		buf = buf[:need]
		m, err = io.ReadFull(r, buf)
	} else {
		buf, m, err = readBody(r, need)
	}
	n += m
	if err != nil {
		return n, readErr(1, err)
	}
	return n, res.decode(&h, hdr, buf)
}

// decode fills res from a validated header (h and its bytes hb) and the
// body, slicing body.
func (res *MCResponse) decode(h *header, hb, body []byte) error {
	hb = hb[:HDR_LEN]
	res.Opcode = CommandCode(hb[1])
	res.DataType = hb[5]
	res.Status = Status(binary.BigEndian.Uint16(hb[6:8]))
	res.Opaque = binary.BigEndian.Uint32(hb[12:16])
	res.Cas = binary.BigEndian.Uint64(hb[16:24])
	res.Fatal = false
	f, e, k := h.framelen, h.framelen+h.extlen, h.framelen+h.extlen+h.keylen
	res.FlexibleExtras = nil
	if f > 0 {
		if err := checkFrames(body[:f]); err != nil {
			return err
		}
		res.FlexibleExtras = body[:f:f]
	}
	res.Extras = body[f:e:e]
	res.Key = body[e:k:k]
	res.Body = body[k:]
	return nil
}

// ComputeUnits returns the read and write units the server charged, from the
// FrameReadUnits and FrameWriteUnits response frames; 0 for absent ones.
func (res *MCResponse) ComputeUnits() (ru uint64, wu uint64) {
	for b := res.FlexibleExtras; len(b) > 0; {
		id, data, rest, err := NextFrame(b)
		if err != nil {
			break
		}
		if len(data) == 2 {
			switch id {
			case FrameReadUnits:
				ru = uint64(binary.BigEndian.Uint16(data))
			case FrameWriteUnits:
				wu = uint64(binary.BigEndian.Uint16(data))
			}
		}
		b = rest
	}
	return ru, wu
}

// ServerDuration returns the time the server reported spending on the
// request (the FrameServerDuration response frame) and whether it did.
func (res *MCResponse) ServerDuration() (time.Duration, bool) {
	for b := res.FlexibleExtras; len(b) > 0; {
		id, data, rest, err := NextFrame(b)
		if err != nil {
			break
		}
		if id == FrameServerDuration && len(data) == 2 {
			return DecodeServerDuration(binary.BigEndian.Uint16(data)), true
		}
		b = rest
	}
	return 0, false
}
