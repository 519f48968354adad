// Package gomemcached holds the memcached binary protocol's packet formats
// and constants, as memcached 1.6 and Couchbase's KV engine speak it.
//
// MCRequest and MCResponse are packets; CommandCode and Status their opcode
// and status. Their exported names, values and wire bytes are those of
// github.com/couchbase/gomemcached, so code written for it works with this
// package after a change of import path. Where the reference departs from
// the protocol, this package follows the protocol; the doc comments say
// where.
//
// Encoding: AppendTo appends a packet to a caller's buffer and allocates
// nothing when it has room; Transmit writes one with a single Write call.
// Decoding: a Reader reads pipelined packets through one reused buffer and
// allocates nothing per packet; Receive reads one packet into a single new
// allocation that the caller may keep.
//
// Malformed input is an error, never a panic: a *ProtocolError that matches
// ErrProtocol and one of ErrBadMagic, ErrBadLength, ErrBodyTooLarge,
// ErrBadFrame or ErrTruncated. Lengths are validated before anything is
// allocated. A failed response used as an error (an *MCResponse, as the
// reference's client returns it, or a *ServerError) matches the status
// sentinels such as ErrKeyNotFound with errors.Is.
//
// Constants that name protocol values (opcodes, statuses, flags) keep the
// protocol's spelling, new ones included, so that each family reads as one;
// everything else new follows Go's naming.
package gomemcached
