package gomemcached

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
)

// TapConnectFlag is a flag of TAP_CONNECT's extras. The values that flags
// carry follow the key in the body, in the order of their bits.
type TapConnectFlag uint32

// TAP connect flags.
const (
	BACKFILL           = TapConnectFlag(0x01)  // value: u64 start time; all ones means "future only"
	DUMP               = TapConnectFlag(0x02)  // send the current items, then close
	LIST_VBUCKETS      = TapConnectFlag(0x04)  // value: u16 count then count u16 vbucket ids
	TAKEOVER_VBUCKETS  = TapConnectFlag(0x08)  // hand the listed vbuckets over
	SUPPORT_ACK        = TapConnectFlag(0x10)  // the consumer acknowledges messages
	REQUEST_KEYS_ONLY  = TapConnectFlag(0x20)  // send keys without values
	CHECKPOINT         = TapConnectFlag(0x40)  // value: checkpoint ids
	REGISTERED_CLIENT  = TapConnectFlag(0x80)  // the consumer is registered
	FIX_FLAG_BYTEORDER = TapConnectFlag(0x100) // item flags in network byte order
)

// TAP_OPAQUE control codes, carried in the message's extras.
const (
	TAP_OPAQUE_ENABLE_AUTO_NACK       = 0
	TAP_OPAQUE_INITIAL_VBUCKET_STREAM = 1
	TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC = 2
	TAP_OPAQUE_CLOSE_TAP_STREAM       = 7
	TAP_OPAQUE_CLOSE_BACKFILL         = 8
)

// TAP message flags, in the flags field of a TAP message's extras.
const (
	TAP_ACK                     = 1 // the producer wants an acknowledgement
	TAP_NO_VALUE                = 2 // the value is left out
	TAP_FLAG_NETWORK_BYTE_ORDER = 4 // the item flags are big-endian
)

// TapConnectFlagNames names the TAP connect flags.
var TapConnectFlagNames = map[TapConnectFlag]string{
	BACKFILL:           "BACKFILL",
	DUMP:               "DUMP",
	LIST_VBUCKETS:      "LIST_VBUCKETS",
	TAKEOVER_VBUCKETS:  "TAKEOVER_VBUCKETS",
	SUPPORT_ACK:        "SUPPORT_ACK",
	REQUEST_KEYS_ONLY:  "REQUEST_KEYS_ONLY",
	CHECKPOINT:         "CHECKPOINT",
	REGISTERED_CLIENT:  "REGISTERED_CLIENT",
	FIX_FLAG_BYTEORDER: "FIX_FLAG_BYTEORDER",
}

// TapItemParser reads the value of one TAP connect flag from a TAP_CONNECT
// body.
type TapItemParser func(io.Reader) (interface{}, error)

// TapParseUint64 reads a big-endian uint64.
func TapParseUint64(r io.Reader) (interface{}, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return uint64(0), err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// TapParseUint16 reads a big-endian uint16.
func TapParseUint16(r io.Reader) (interface{}, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return uint16(0), err
	}
	return binary.BigEndian.Uint16(b[:]), nil
}

// TapParseBool reads nothing and returns true: the flag's presence is its
// value.
func TapParseBool(r io.Reader) (interface{}, error) {
	return true, nil
}

// TapParseVBList reads a vbucket list, a uint16 count followed by that many
// uint16 ids, as []uint16.
func TapParseVBList(r io.Reader) (interface{}, error) {
	n, err := TapParseUint16(r)
	if err != nil {
		return nil, err
	}
	count := int(n.(uint16))
	rv := make([]uint16, 0, min(count, 1024))
	for range count {
		x, err := TapParseUint16(r)
		if err != nil {
			return nil, err
		}
		rv = append(rv, x.(uint16))
	}
	return rv, nil
}

// TapFlagParsers holds the parsers of the flags that carry a value; other
// flags parse with TapParseBool.
var TapFlagParsers = map[TapConnectFlag]TapItemParser{
	BACKFILL:      TapParseUint64,
	LIST_VBUCKETS: TapParseVBList,
}

// SplitFlags returns the individual bits set in f, lowest first.
func (f TapConnectFlag) SplitFlags() []TapConnectFlag {
	rv := []TapConnectFlag{}
	for bit := TapConnectFlag(1); f != 0; bit <<= 1 {
		if f&bit != 0 {
			rv = append(rv, bit)
			f &^= bit
		}
	}
	return rv
}

// String joins the names of the bits of f with "|"; unnamed bits appear in
// hex.
func (f TapConnectFlag) String() string {
	parts := []string{}
	for _, bit := range f.SplitFlags() {
		name, ok := TapConnectFlagNames[bit]
		if !ok {
			name = "0x" + strconv.FormatUint(uint64(bit), 16)
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, "|")
}

// TapConnect is a parsed TAP_CONNECT request: the consumer's name, its flags
// with their values, and the part of the body no flag claimed.
type TapConnect struct {
	Flags         map[TapConnectFlag]interface{}
	RemainingBody []byte
	Name          string
}

// ParseTapCommands parses a TAP_CONNECT request: the name from the key, the
// flags from the first 4 bytes of the extras, and each flag's value from the
// body with its TapFlagParsers entry.
func (req *MCRequest) ParseTapCommands() (TapConnect, error) {
	rv := TapConnect{
		Flags: map[TapConnectFlag]interface{}{},
		Name:  string(req.Key),
	}
	if len(req.Extras) < 4 {
		return rv, errors.New("gomemcached: TAP_CONNECT extras shorter than 4 bytes")
	}
	flags := TapConnectFlag(binary.BigEndian.Uint32(req.Extras))
	r := bytes.NewReader(req.Body)
	for _, f := range flags.SplitFlags() {
		parse, ok := TapFlagParsers[f]
		if !ok {
			parse = TapParseBool
		}
		val, err := parse(r)
		if err != nil {
			return rv, err
		}
		rv.Flags[f] = val
	}
	rv.RemainingBody = req.Body[len(req.Body)-r.Len():]
	return rv, nil
}
