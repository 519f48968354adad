package memcached

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// request is one request to encode into the write queue. The key-value
// methods fill its fields from their arguments (the key stays a string and
// the extras live on the caller's stack, so nothing is allocated); Send,
// Do and Transmit set full and have the packet encoded by
// gomemcached.MCRequest.AppendTo.
type request struct {
	opcode   gomemcached.CommandCode
	vb       uint16
	cas      uint64
	datatype uint8
	extras   []byte
	key      string
	body     []byte
	// cid holds the collection id prefix of the key (LEB128), cidLen
	// bytes of it, once a connection negotiates collections.
	cid    [gomemcached.MaxCollectionIDLen]byte
	cidLen int
	// frames are encoded framing extras; they make the packet use
	// FLEX_MAGIC.
	frames []byte

	full *gomemcached.MCRequest
	// res, when set, is a response to encode (TransmitResponse).
	res *gomemcached.MCResponse
}

// op returns the request's opcode.
func (r *request) op() gomemcached.CommandCode {
	switch {
	case r.full != nil:
		return r.full.Opcode
	case r.res != nil:
		return r.res.Opcode
	}
	return r.opcode
}

func fieldErr(what string, n int) error {
	return &gomemcached.ProtocolError{Kind: gomemcached.ErrFieldTooLong, Detail: what + " of " + strconv.Itoa(n) + " bytes"}
}

// appendTo appends the encoded request with the given opaque to dst. On
// error dst is returned as it was.
func (r *request) appendTo(dst []byte, opaque uint32) ([]byte, error) {
	if r.full != nil || r.res != nil {
		start := len(dst)
		var out []byte
		var err error
		if r.full != nil {
			out, err = r.full.AppendTo(dst)
		} else {
			out, err = r.res.AppendTo(dst)
		}
		if err != nil {
			return dst, err
		}
		if r.full != nil {
			binary.BigEndian.PutUint32(out[start+12:start+16], opaque)
		}
		return out, nil
	}
	keylen := r.cidLen + len(r.key)
	flen := len(r.frames)
	bodylen := uint64(flen) + uint64(len(r.extras)) + uint64(keylen) + uint64(len(r.body))
	switch {
	case flen > 0 && keylen > math.MaxUint8, keylen > math.MaxUint16:
		return dst, &gomemcached.ProtocolError{Kind: gomemcached.ErrKeyTooLong, Detail: "key of " + strconv.Itoa(keylen) + " bytes"}
	case flen > math.MaxUint8:
		return dst, fieldErr("framing extras", flen)
	case len(r.extras) > math.MaxUint8:
		return dst, fieldErr("extras", len(r.extras))
	case bodylen > math.MaxUint32:
		return dst, fieldErr("body", int(bodylen))
	}
	start := len(dst)
	size := gomemcached.HDR_LEN + int(bodylen)
	if cap(dst)-start < size {
		grown := make([]byte, start, max(2*cap(dst), start+size))
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+size]
	h := dst[start : start+gomemcached.HDR_LEN]
	if flen > 0 {
		h[0], h[2], h[3] = gomemcached.FLEX_MAGIC, byte(flen), byte(keylen)
	} else {
		h[0], h[2], h[3] = gomemcached.REQ_MAGIC, byte(keylen>>8), byte(keylen)
	}
	h[1], h[4], h[5] = byte(r.opcode), byte(len(r.extras)), r.datatype
	binary.BigEndian.PutUint16(h[6:8], r.vb)
	binary.BigEndian.PutUint32(h[8:12], uint32(bodylen))
	binary.BigEndian.PutUint32(h[12:16], opaque)
	binary.BigEndian.PutUint64(h[16:24], r.cas)
	p := start + gomemcached.HDR_LEN
	p += copy(dst[p:], r.frames)
	p += copy(dst[p:], r.extras)
	p += copy(dst[p:], r.cid[:r.cidLen])
	p += copy(dst[p:], r.key)
	copy(dst[p:], r.body)
	return dst, nil
}

// ownResponse returns a copy of res whose sections share one new
// allocation, so that it outlives the buffer res aliases. As with
// MCResponse.Receive, the sections are nil when the packet has no body and
// non-nil otherwise (FlexibleExtras stays nil when absent).
func ownResponse(res *gomemcached.MCResponse) *gomemcached.MCResponse {
	n := len(res.FlexibleExtras) + len(res.Extras) + len(res.Key) + len(res.Body)
	return copyResponse(res, make([]byte, n))
}

// copyResponse returns a copy of res whose sections are copied into buf,
// which holds exactly their total length.
func copyResponse(res *gomemcached.MCResponse, buf []byte) *gomemcached.MCResponse {
	out := &gomemcached.MCResponse{
		Opcode:   res.Opcode,
		Status:   res.Status,
		Opaque:   res.Opaque,
		Cas:      res.Cas,
		DataType: res.DataType,
	}
	if len(buf) == 0 {
		return out
	}
	p := 0
	if res.FlexibleExtras != nil {
		out.FlexibleExtras, p = section(buf, p, res.FlexibleExtras)
	}
	out.Extras, p = section(buf, p, res.Extras)
	out.Key, p = section(buf, p, res.Key)
	out.Body, _ = section(buf, p, res.Body)
	return out
}

// section copies s into buf at p and returns the copy, capped, and the
// offset after it.
func section(buf []byte, p int, s []byte) ([]byte, int) {
	n := copy(buf[p:], s)
	return buf[p : p+n : p+n], p + n
}
