package gomemcached

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// Every packet starts with a 24-byte header; integers are big-endian.
//
//	Byte/     0       |       1       |       2       |       3       |
//	   /              |               |               |               |
//	  |0 1 2 3 4 5 6 7|0 1 2 3 4 5 6 7|0 1 2 3 4 5 6 7|0 1 2 3 4 5 6 7|
//	  +---------------+---------------+---------------+---------------+
//	 0| Magic         | Opcode        | Key length                    |
//	  +---------------+---------------+---------------+---------------+
//	 4| Extras length | Data type     | vbucket (req) / status (res)  |
//	  +---------------+---------------+---------------+---------------+
//	 8| Total body length                                             |
//	  +---------------+---------------+---------------+---------------+
//	12| Opaque                                                        |
//	  +---------------+---------------+---------------+---------------+
//	16| CAS                                                           |
//	  |                                                               |
//	  +---------------+---------------+---------------+---------------+
//
// With the alternative magics (FLEX_MAGIC, FLEX_RES_MAGIC) byte 2 holds the
// length of the framing extras and byte 3 the key length, so keys are at most
// 255 bytes. The body follows the header: framing extras (alternative magics
// only), extras, key, value. The total body length counts all four.

// Magic bytes.
const (
	REQ_MAGIC      = 0x80 // request, client to server
	RES_MAGIC      = 0x81 // response, server to client
	FLEX_MAGIC     = 0x08 // request with framing extras
	FLEX_RES_MAGIC = 0x18 // response with framing extras
)

// Magic bytes of the duplex protocol, where the server sends requests to the
// client (cluster-map notifications, for example) and the client answers.
const (
	ServerRequestMagic  = 0x82
	ServerResponseMagic = 0x83
)

// Datatype flags, the header's data type byte (MCRequest.DataType,
// MCResponse.DataType).
const (
	DatatypeFlagJSON       = uint8(0x01) // the value is JSON
	DatatypeFlagCompressed = uint8(0x02) // the value is Snappy-compressed
	DatatypeFlagXattrs     = uint8(0x04) // the value starts with an extended attributes section
)

// HDR_LEN is the length of a packet header in bytes.
const HDR_LEN = 24

// MaxBodyLen is the largest value, in bytes, that decoding accepts: Couchbase's
// 20 MiB document limit plus 1 MiB of extended attributes. Framing extras,
// extras and key come on top (at most 255, 255 and 65535 bytes). A packet
// announcing more is refused with ErrBodyTooLarge before anything is
// allocated for it. Set it, if at all, before any packet is decoded; Reader
// has a per-reader limit that does not depend on it.
var MaxBodyLen = int(21 * 1024 * 1024)

// shortPacket reports whether a packet with these sections fits the
// classic header (key length in 16 bits, extras in 8, body in 32): the
// common packet, whose header putShortHeader writes.
func shortPacket(extlen, keylen int, bodylen uint64) bool {
	return extlen <= math.MaxUint8 && keylen <= math.MaxUint16 && bodylen <= math.MaxUint32
}

// extend extends dst by n bytes, growing it if it lacks the capacity, and
// returns it with the offset of the new bytes.
func extend(dst []byte, n int) ([]byte, int) {
	start := len(dst)
	if cap(dst)-start < n {
		dst = slices.Grow(dst, n)
	}
	return dst[:start+n], start
}

// putShortHeader writes the header of a packet without framing extras into
// h: magic, opcode, the lengths, datatype, word (the vbucket of a request,
// the status of a response), opaque and CAS. The lengths must pass
// shortPacket.
func putShortHeader(h []byte, magic byte, op CommandCode, extlen, keylen int, datatype uint8, word uint16,
	bodylen uint64, opaque uint32, cas uint64) {
	h = h[:HDR_LEN:HDR_LEN]
	binary.BigEndian.PutUint64(h[0:8], uint64(magic)<<56|uint64(op)<<48|uint64(keylen)<<32|
		uint64(extlen)<<24|uint64(datatype)<<16|uint64(word))
	binary.BigEndian.PutUint64(h[8:16], bodylen<<32|uint64(opaque))
	binary.BigEndian.PutUint64(h[16:24], cas)
}

// header holds the lengths of a packet, decoded from its header and
// validated; decoders read the other fields from the header bytes.
type header struct {
	magic    byte
	framelen int
	keylen   int
	extlen   int
	bodylen  int
}

// isFlexMagic reports whether m is one of the alternative magics that carry
// framing extras.
func isFlexMagic(m byte) bool { return m == FLEX_MAGIC || m == FLEX_RES_MAGIC }

// knownMagic reports whether m is a magic this package decodes.
func knownMagic(m byte) bool {
	switch m {
	case REQ_MAGIC, RES_MAGIC, FLEX_MAGIC, FLEX_RES_MAGIC, ServerRequestMagic, ServerResponseMagic:
		return true
	}
	return false
}

// parseHeader decodes and validates the 24 bytes of b into h. maxValue
// bounds the value (body minus frames, extras and key); it is the only
// length that can make a packet large, so it is checked before anyone
// allocates for the body. (h is filled in place: returning the struct by
// value costs more than the rest of the function.)
func parseHeader(h *header, b []byte, maxValue int) error {
	h.magic = b[0]
	if !knownMagic(h.magic) {
		return protoErr(ErrBadMagic, "magic 0x"+strconv.FormatUint(uint64(h.magic), 16))
	}
	if isFlexMagic(h.magic) {
		h.framelen = int(b[2])
		h.keylen = int(b[3])
	} else {
		h.framelen = 0
		h.keylen = int(binary.BigEndian.Uint16(b[2:4]))
	}
	h.extlen = int(b[4])
	body := binary.BigEndian.Uint32(b[8:12])

	parts := h.framelen + h.extlen + h.keylen
	if uint64(body) < uint64(parts) {
		return protoErr(ErrBadLength, "body length "+itoa(int(body))+
			" shorter than frames+extras+key "+itoa(parts))
	}
	if value := uint64(body) - uint64(parts); value > uint64(maxValue) {
		return protoErr(ErrBodyTooLarge, "value of "+strconv.FormatUint(value, 10)+
			" bytes exceeds the limit of "+itoa(maxValue))
	}
	h.bodylen = int(body)
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
