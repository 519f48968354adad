package memcached

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/f8e615c8/gomemcached"
)

// The TAP consumer of the reference: StartTapFeed sends TAP_CONNECT and
// turns the messages the producer sends back (see kv_engine's docs/TAP.md
// before Couchbase 5.0 removed it) into TapEvents on a channel.
//
// How it runs. As the DCP feed, the TAP feed never takes the socket from
// the client: TAP_CONNECT goes out with Transmit, the client's reader
// queues the producer's messages for Receive, and the feed's goroutine
// takes them from there in wire order, hands each event to the channel
// (unbuffered, as the reference's), and then, when the message asked for
// one, writes its acknowledgement with TransmitResponse: an acknowledged
// event has been received by the application. When the feed ends (the
// producer's CLOSE_TAP_STREAM or a closed connection, an error, or Close)
// the channel is closed and so is the Client, as the reference closes
// its.

// TapOpcode is the kind of a TapEvent.
type TapOpcode uint8

// The kinds of TapEvent.
const (
	TapBeginBackfill = TapOpcode(iota)
	TapEndBackfill
	TapMutation
	TapDeletion
	TapCheckpointStart
	TapCheckpointEnd
	tapEndStream
)

// tapMutationExtraLen is the extras of a TAP_MUTATION: TAP's 8 bytes, item
// flags and expiry.
const tapMutationExtraLen = 16

var tapOpcodeNames = map[TapOpcode]string{
	TapBeginBackfill:   "BeginBackfill",
	TapEndBackfill:     "EndBackfill",
	TapMutation:        "Mutation",
	TapDeletion:        "Deletion",
	TapCheckpointStart: "TapCheckpointStart",
	TapCheckpointEnd:   "TapCheckpointEnd",
	tapEndStream:       "EndStream",
}

// String names the opcode, "#n" for an unknown one.
func (opcode TapOpcode) String() string {
	if name, ok := tapOpcodeNames[opcode]; ok {
		return name
	}
	return "#" + strconv.Itoa(int(opcode))
}

// TapEvent is one change or marker of a TAP feed. Key and Value are the
// event's own: they stay valid.
type TapEvent struct {
	Opcode     TapOpcode // what happened
	VBucket    uint16    // the vbucket it happened in
	Flags      uint32    // a mutation's item flags
	Expiry     uint32    // a mutation's expiry
	Key, Value []byte    // a mutation's or deletion's key, a mutation's value
	Cas        uint64    // a mutation's or deletion's CAS
}

// String describes the event for logs: the kind and vbucket of a marker,
// the key, value size, flags and expiry of a change.
func (event TapEvent) String() string {
	switch event.Opcode {
	case TapBeginBackfill, TapEndBackfill, TapCheckpointStart, TapCheckpointEnd:
		return fmt.Sprintf("<TapEvent %s, vbucket=%d>", event.Opcode, event.VBucket)
	}
	return fmt.Sprintf("<TapEvent %s, key=%q (%d bytes) flags=%x, exp=%d>",
		event.Opcode, event.Key, len(event.Value), event.Flags, event.Expiry)
}

// TapArguments are what StartTapFeed asks the producer for. Start from
// DefaultTapArguments.
type TapArguments struct {
	// Backfill is the time (Unix seconds) of the oldest item to send;
	// TapNoBackfill sends only the changes after the connect, 0 all that
	// is stored.
	Backfill uint64
	// Dump has the producer send what is stored and then end the feed.
	Dump bool
	// VBuckets are the vbuckets to follow; none for all.
	VBuckets []uint16
	// Takeover hands the listed vbuckets over: at the end the producer's
	// become dead, and it tells the consumer to make its active.
	Takeover bool
	// SupportAck tells the producer that the feed acknowledges the
	// messages it asks to be acknowledged (the feed always does).
	SupportAck bool
	// KeysOnly asks the producer to leave the values out.
	KeysOnly bool
	// Checkpoint asks for checkpoint events around what is sent.
	Checkpoint bool
	// ClientName names the feed, so that it can reconnect.
	ClientName string
	// RegisteredClient has the producer keep the named feed's position
	// until a connect of the name without it.
	RegisteredClient bool
}

// TapNoBackfill is the Backfill that sends no past items.
const TapNoBackfill = math.MaxUint64

// DefaultTapArguments returns the arguments of a feed of every vbucket's
// changes from now on.
func DefaultTapArguments() TapArguments {
	return TapArguments{Backfill: TapNoBackfill}
}

// flags returns TAP_CONNECT's extras: the connect flags the arguments set.
func (args *TapArguments) flags() []byte {
	var f gomemcached.TapConnectFlag
	set := func(on bool, flag gomemcached.TapConnectFlag) {
		if on {
			f |= flag
		}
	}
	set(args.Backfill != 0, gomemcached.BACKFILL)
	set(args.Dump, gomemcached.DUMP)
	set(len(args.VBuckets) > 0, gomemcached.LIST_VBUCKETS)
	set(args.Takeover, gomemcached.TAKEOVER_VBUCKETS)
	set(args.SupportAck, gomemcached.SUPPORT_ACK)
	set(args.KeysOnly, gomemcached.REQUEST_KEYS_ONLY)
	set(args.Checkpoint, gomemcached.CHECKPOINT)
	set(args.RegisteredClient, gomemcached.REGISTERED_CLIENT)
	return binary.BigEndian.AppendUint32(nil, uint32(f))
}

// bytes returns TAP_CONNECT's body: the values of the flags, in the order
// of their bits (the backfill date, the vbucket list).
func (args *TapArguments) bytes() []byte {
	var b []byte
	if args.Backfill != 0 {
		b = binary.BigEndian.AppendUint64(b, args.Backfill)
	}
	if len(args.VBuckets) > 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(args.VBuckets)))
		for _, vb := range args.VBuckets {
			b = binary.BigEndian.AppendUint16(b, vb)
		}
	}
	return b
}

// TapFeed is a stream of events from a TAP producer. C is closed when the
// feed ends; Error is then why, nil for a producer that ended it (or
// closed the connection) and for Close. Error is written before C is
// closed, and must be read only after.
type TapFeed struct {
	C         <-chan TapEvent
	Error     error
	closer    chan bool
	closeOnce sync.Once
}

// TapRecvHook, if set, is called with every message the feed receives,
// its size on the wire, and the error that ended the feed, if reading
// did. It is read, unsynchronized, by the feed's goroutine: set it before
// starting feeds.
var TapRecvHook func(*gomemcached.MCRequest, int, error)

// StartTapFeed sends TAP_CONNECT with args and returns the feed of the
// producer's events. The client is then the feed's: it is no longer
// healthy (IsHealthy), so that no pool lends it, and the feed closes it
// when it ends. A producer that refuses the connect ends the feed with an
// Error that wraps its response (errors.As to *gomemcached.MCResponse,
// errors.Is to the status's sentinel).
func (mc *Client) StartTapFeed(args TapArguments) (*TapFeed, error) {
	if len(args.VBuckets) > math.MaxUint16 {
		return nil, fmt.Errorf("memcached: tap feed of %d vbuckets", len(args.VBuckets))
	}
	c := mc.c
	c.mu.Lock()
	if c.err == nil && !c.hijacking {
		c.useRawLocked()
	}
	c.mu.Unlock()
	rq := &gomemcached.MCRequest{
		Opcode: gomemcached.TAP_CONNECT,
		Key:    []byte(args.ClientName),
		Extras: args.flags(),
		Body:   args.bytes(),
	}
	if err := mc.Transmit(rq); err != nil {
		return nil, err
	}
	c.statusFatal.Store(true)
	ch := make(chan TapEvent)
	feed := &TapFeed{C: ch, closer: make(chan bool)}
	go mc.runTapFeed(ch, feed)
	return feed, nil
}

// errTapFeedClosed stops the feed's goroutine on Close.
var errTapFeedClosed = errors.New("memcached: tap feed closed")

// runTapFeed is the feed's goroutine: it reads the producer's messages,
// delivers their events and acknowledges them.
func (mc *Client) runTapFeed(ch chan<- TapEvent, feed *TapFeed) {
	defer mc.Close()
	defer close(ch)
	for {
		p, err := mc.nextTap(feed.closer)
		if err == errTapFeedClosed {
			return
		}
		hook := TapRecvHook
		if err != nil {
			if hook != nil {
				hook(&gomemcached.MCRequest{}, 0, err)
			}
			if !errors.Is(err, io.EOF) {
				feed.Error = err
			}
			return
		}
		rq, err := tapRequest(p)
		if hook != nil {
			if rq == nil {
				hook(&gomemcached.MCRequest{Opcode: p.res.Opcode, Opaque: p.res.Opaque}, p.size, err)
			} else {
				hook(rq, p.size, err)
			}
		}
		if !isRequestMagic(p.magic) {
			if p.res.Opcode == gomemcached.TAP_CONNECT {
				// The producer refused the connect.
				feed.Error = fmt.Errorf("memcached: tap connection failed: %s: %w", p.res.Body, p.res)
				return
			}
			continue // not the feed's
		}
		if err != nil {
			feed.Error = err
			return
		}
		if ev, ok := makeTapEvent(rq); ok {
			if ev.Opcode == tapEndStream {
				return
			}
			select {
			case ch <- ev:
			case <-feed.closer:
				return
			}
		}
		if len(rq.Extras) >= 4 && binary.BigEndian.Uint16(rq.Extras[2:])&gomemcached.TAP_ACK != 0 {
			res := gomemcached.MCResponse{Opcode: rq.Opcode, Opaque: rq.Opaque, Status: gomemcached.SUCCESS}
			if err := mc.TransmitResponse(&res); err != nil {
				feed.Error = err
				return
			}
		}
	}
}

// nextTap returns the next packet of the client's Receive queue, failing
// when closer is closed or the connection ends (once the queue is empty).
func (mc *Client) nextTap(closer <-chan bool) (rawPacket, error) {
	c := mc.c
	select {
	case p := <-c.raw:
		c.tookRaw(p)
		return p, nil
	default:
	}
	select {
	case p := <-c.raw:
		c.tookRaw(p)
		return p, nil
	case <-closer:
		return rawPacket{}, errTapFeedClosed
	case <-c.done:
		select {
		case p := <-c.raw:
			c.tookRaw(p)
			return p, nil
		default:
			return rawPacket{}, c.err
		}
	}
}

// tapRequest turns a packet the client read as a response into the TAP
// message it is: the status field is the vbucket, and the engine-specific
// data that the first two bytes of the extras announce, which the wire
// puts between the extras and the key, is appended to the extras (as the
// reference's decoding leaves it).
func tapRequest(p rawPacket) (*gomemcached.MCRequest, error) {
	res := p.res
	rq := &gomemcached.MCRequest{
		Opcode: res.Opcode, Cas: res.Cas, Opaque: res.Opaque, VBucket: uint16(res.Status),
		Extras: res.Extras, Key: res.Key, Body: res.Body, DataType: res.DataType, Keylen: len(res.Key),
	}
	if rq.Opcode < gomemcached.TAP_MUTATION || rq.Opcode > gomemcached.TAP_CHECKPOINT_END || len(rq.Extras) < 2 {
		return rq, nil
	}
	n := int(binary.BigEndian.Uint16(rq.Extras))
	if n == 0 {
		return rq, nil
	}
	if n > len(res.Body) {
		return nil, badBody(rq.Opcode, "engine-specific data of "+strconv.Itoa(n)+" bytes in a body of "+
			strconv.Itoa(len(res.Extras)+len(res.Key)+len(res.Body)))
	}
	b := make([]byte, 0, len(res.Extras)+len(res.Key)+len(res.Body))
	b = append(append(append(b, res.Extras...), res.Key...), res.Body...)
	e, k := len(res.Extras)+n, len(res.Extras)+n+len(res.Key)
	rq.Extras, rq.Key, rq.Body = b[:e:e], b[e:k:k], b[k:]
	return rq, nil
}

// makeTapEvent returns the event of a TAP message; ok is false for
// messages that make none (NOOP, control messages, unknown opcodes).
func makeTapEvent(rq *gomemcached.MCRequest) (ev TapEvent, ok bool) {
	ev.VBucket = rq.VBucket
	switch rq.Opcode {
	case gomemcached.TAP_MUTATION:
		ev.Opcode, ev.Key, ev.Value, ev.Cas = TapMutation, rq.Key, rq.Body, rq.Cas
	case gomemcached.TAP_DELETE:
		ev.Opcode, ev.Key, ev.Cas = TapDeletion, rq.Key, rq.Cas
	case gomemcached.TAP_CHECKPOINT_START:
		ev.Opcode = TapCheckpointStart
	case gomemcached.TAP_CHECKPOINT_END:
		ev.Opcode = TapCheckpointEnd
	case gomemcached.TAP_OPAQUE:
		if len(rq.Extras) < 8+4 {
			return ev, false
		}
		switch binary.BigEndian.Uint32(rq.Extras[8:]) {
		case gomemcached.TAP_OPAQUE_INITIAL_VBUCKET_STREAM:
			ev.Opcode = TapBeginBackfill
		case gomemcached.TAP_OPAQUE_CLOSE_BACKFILL:
			ev.Opcode = TapEndBackfill
		case gomemcached.TAP_OPAQUE_CLOSE_TAP_STREAM:
			ev.Opcode = tapEndStream
		default:
			return ev, false
		}
	default:
		return ev, false
	}
	if len(rq.Extras) >= tapMutationExtraLen && (ev.Opcode == TapMutation || ev.Opcode == TapDeletion) {
		ev.Flags = binary.BigEndian.Uint32(rq.Extras[8:])
		ev.Expiry = binary.BigEndian.Uint32(rq.Extras[12:])
	}
	return ev, true
}

// Close ends the feed: C is closed, and so is the client. It may be
// called more than once.
func (feed *TapFeed) Close() {
	feed.closeOnce.Do(func() { close(feed.closer) })
}
