package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// feedReadSize is the read buffer a feed starts with.
const feedReadSize = 256 << 10

// feedMaxRollbacks bounds the rollbacks a stream request goes through
// before the feed gives it up.
const feedMaxRollbacks = 8

var (
	errFeedNoName      = errors.New("memcached: feed: FeedOptions.Name is required")
	errFeedCollections = errors.New("memcached: feed: Collections needs a client that negotiated collections (HELLO)")
	errFeedStreamID    = errors.New("memcached: feed: a stream id needs FeedOptions.StreamIDs")
	errFeedMarkerV22   = errors.New("memcached: feed: MarkerV22 needs Collections")
	// errNotWritten: a write of Run's was not begun, its context having
	// ended; the connection is intact.
	errNotWritten = errors.New("memcached: feed: not written")
)

// feedState is a Feed's state. Run's goroutine owns the read side (buf,
// ev, unacked) and each stream's position; mu guards the stream tables,
// which Add and Remove change too; wmu serializes writes.
type feedState struct {
	c      *Client
	conn   MemcachedConnection
	wdl    writeDeadliner // conn, if it has write deadlines
	opts   FeedOptions
	noop   time.Duration
	buffer uint32
	// maxBody is the largest body accepted, fixed at NewFeed.
	maxBody int
	// endOnClose: the producer sends a stream end when a stream is
	// closed (send_stream_end_on_client_close_stream was accepted).
	endOnClose bool

	wmu  sync.Mutex
	wbuf []byte

	mu        sync.Mutex
	streams   map[uint32]*feedStream // by streamKey
	byOpaque  map[uint32]*feedStream // stream requests and closes not yet answered
	opaque    uint32
	everAdded bool
	closed    bool
	err       error // why the connection failed

	running atomic.Bool

	// Run's.
	buf     []byte
	r, w    int
	pkt     feedPacket
	ev      Event
	unacked uint32
	logs    map[uint16][]FailoverEntry // the last failover log of each vbucket
	owed    feedReply                  // a reply a Run's end kept from being written
}

// writeDeadliner is a transport whose writes take a deadline (a net.Conn).
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// feedReply is an answer to a producer's request (op 0: none).
type feedReply struct {
	op     gomemcached.CommandCode
	opaque uint32
}

// feedStream is one stream of a feed.
type feedStream struct {
	spec StreamSpec
	key  uint32

	// Guarded by the feed's mu.
	reqOpaque   uint32
	closeOpaque uint32
	closing     bool

	// Run's.
	open               bool
	cp                 Checkpoint
	snapStart, snapEnd uint64
	oso                bool
	osoMax             uint64
	log                []FailoverEntry
	rollbacks          int
	// ackOpaque is the opaque of a snapshot marker that asked for an
	// answer (0: none), due once the snapshot is in.
	ackOpaque uint32
}

func streamKey(vb, sid uint16) uint32 { return uint32(vb)<<16 | uint32(sid) }

// NewFeed makes c a DCP consumer connection: it opens it as a DCP
// producer (DCP_OPEN) named opts.Name and sends the controls opts asks
// for, failing if the server refuses one (an optional one, such as
// send_stream_end_on_client_close_stream, may be refused with a status).
// From then on c belongs to the feed: Close closes it. If NewFeed fails,
// for whatever reason, it closes c, which may be half-way to a DCP
// connection.
//
// A collections-aware feed (opts.Collections) needs a client that
// negotiated collections (ClientOptions.Features).
func NewFeed(ctx context.Context, c *Client, opts FeedOptions) (_ *Feed, err error) {
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if opts.Name == "" {
		return nil, errFeedNoName
	}
	if opts.Collections && !c.CollectionEnabled() {
		return nil, errFeedCollections
	}
	if opts.MarkerV22 && !opts.Collections {
		return nil, errFeedMarkerV22
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = DefaultFeedBufferSize
	}
	if opts.NoopInterval <= 0 {
		opts.NoopInterval = DefaultFeedNoopInterval
	}
	flags := gomemcached.DCP_PRODUCER
	if opts.Xattrs {
		flags |= gomemcached.DCP_OPEN_INCLUDE_XATTRS
	}
	if opts.DeleteTimes {
		flags |= gomemcached.DCP_OPEN_INCLUDE_DELETE_TIMES
	}
	if opts.NoValue {
		flags |= dcpOpenNoValue
	}
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], flags)
	if _, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.UPR_OPEN, Key: []byte(opts.Name), Extras: ex}); err != nil {
		return nil, fmt.Errorf("memcached: feed: DCP_OPEN: %w", err)
	}
	f := &Feed{feedState{
		c: c, opts: opts, noop: opts.NoopInterval, buffer: opts.BufferSize, maxBody: feedMaxBody(),
		streams: map[uint32]*feedStream{}, byOpaque: map[uint32]*feedStream{},
		logs: map[uint16][]FailoverEntry{},
	}}
	type control struct {
		key, value string
		required   bool
	}
	controls := []control{
		{"connection_buffer_size", strconv.FormatUint(uint64(opts.BufferSize), 10), true},
		{"enable_noop", "true", true},
		{"set_noop_interval", strconv.FormatFloat(opts.NoopInterval.Seconds(), 'f', -1, 64), true},
		{"send_stream_end_on_client_close_stream", "true", false},
	}
	if opts.DeleteTimes {
		controls = append(controls, control{"enable_expiry_opcode", "true", true})
	}
	if opts.Collections {
		controls = append(controls, control{"flatbuffers_system_events", "true", false})
	}
	if opts.MarkerV22 {
		controls = append(controls, control{"max_marker_version", "2.2", true})
	}
	if opts.StreamIDs {
		controls = append(controls, control{"enable_stream_id", "true", true})
	}
	if opts.OSO {
		controls = append(controls, control{"enable_out_of_order_snapshots", "true_with_seqno_advanced", true})
	}
	if opts.Priority != "" {
		controls = append(controls, control{"set_priority", opts.Priority, true})
	}
	for _, ctl := range controls {
		_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.UPR_CONTROL, Key: []byte(ctl.key), Body: []byte(ctl.value)})
		// Only the server's refusal (a status: EINVAL, say) means an
		// optional control is not supported; after a transport error or
		// the context's end the server may have taken it or not.
		var se *gomemcached.ServerError
		if err != nil && (ctl.required || !errors.As(err, &se)) {
			return nil, fmt.Errorf("memcached: feed: DCP_CONTROL %s=%s: %w", ctl.key, ctl.value, err)
		}
		if ctl.key == "send_stream_end_on_client_close_stream" {
			f.endOnClose = err == nil
		}
	}
	f.conn = c.Hijack()
	f.wdl, _ = f.conn.(writeDeadliner)
	return f, nil
}

// DCP_OPEN flag: keys and metadata only.
const dcpOpenNoValue = 0x08

// Add requests a stream. It is safe to call before or during Run, from
// any goroutine. The answer comes as an event: EventStreamStart, or
// EventRollback, or an EventStreamEnd with Reason StreamEndRefused for a
// refusal such as NOT_MY_VBUCKET (then Event.Status and Err tell why).
//
// A From checkpoint whose snapshot does not hold its Seqno (the zero
// snapshot of a seqno above 0, say) is taken as the complete snapshot
// Seqno..Seqno.
func (f *Feed) Add(spec StreamSpec) error {
	if spec.StreamID != 0 && !f.opts.StreamIDs {
		return errFeedStreamID
	}
	cp := &spec.From
	if cp.SnapStart > cp.Seqno || cp.SnapEnd < cp.Seqno {
		cp.SnapStart, cp.SnapEnd = cp.Seqno, cp.Seqno
	}
	s := &feedStream{spec: spec, key: streamKey(spec.VBucket, spec.StreamID), cp: spec.From}
	f.mu.Lock()
	if err := f.usableLocked(); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.streams[s.key] != nil {
		f.mu.Unlock()
		return fmt.Errorf("%w: vbucket %d stream %d", ErrFeedStreamExists, spec.VBucket, spec.StreamID)
	}
	f.streams[s.key] = s
	f.everAdded = true
	op := f.newOpaqueLocked()
	s.reqOpaque = op
	f.byOpaque[op] = s
	f.mu.Unlock()
	return f.requestStream(s, op, s.cp)
}

func (f *feedState) usableLocked() error {
	if f.closed {
		return ErrFeedClosed
	}
	return f.err
}

func (f *feedState) newOpaqueLocked() uint32 {
	f.opaque++
	if f.opaque == 0 {
		f.opaque++
	}
	return f.opaque
}

// requestStream sends the stream request of s from cp.
func (f *feedState) requestStream(s *feedStream, opaque uint32, cp Checkpoint) error {
	end := s.spec.End
	if end == 0 {
		end = math.MaxUint64
	}
	var ex [48]byte
	be := binary.BigEndian
	be.PutUint32(ex[0:], s.spec.Flags)
	be.PutUint64(ex[8:], cp.Seqno)
	be.PutUint64(ex[16:], end)
	be.PutUint64(ex[24:], cp.VBUUID)
	be.PutUint64(ex[32:], cp.SnapStart)
	be.PutUint64(ex[40:], cp.SnapEnd)
	return f.send(gomemcached.UPR_STREAMREQ, s.spec.VBucket, s.spec.StreamID, opaque, ex[:], s.spec.Filter)
}

// Remove closes a stream (DCP_CLOSE_STREAM); its EventStreamEnd, with
// Reason StreamEndClosed, follows.
func (f *Feed) Remove(vb uint16, streamID uint16) error {
	f.mu.Lock()
	if err := f.usableLocked(); err != nil {
		f.mu.Unlock()
		return err
	}
	s := f.streams[streamKey(vb, streamID)]
	if s == nil || s.closing {
		f.mu.Unlock()
		return fmt.Errorf("%w: vbucket %d stream %d", ErrFeedNoStream, vb, streamID)
	}
	s.closing = true
	op := f.newOpaqueLocked()
	s.closeOpaque = op
	f.byOpaque[op] = s
	f.mu.Unlock()
	return f.send(gomemcached.UPR_CLOSESTREAM, vb, streamID, op, nil, "")
}

// send writes a request of the feed's own; a stream id goes in a frame.
func (f *feedState) send(op gomemcached.CommandCode, vb, sid uint16, opaque uint32, extras []byte, value string) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	b := f.wbuf[:0]
	frames := 0
	magic := byte(magicReq)
	if sid != 0 {
		magic, frames = magicAltReq, 3
	}
	b = append(b, magic, byte(op), 0, 0, byte(len(extras)), 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(frames+len(extras)+len(value)))
	b = binary.BigEndian.AppendUint32(b, opaque)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[6:], vb)
	if frames > 0 {
		b[2] = byte(frames)
		b = append(b, 0x22) // stream id, 2 bytes
		b = binary.BigEndian.AppendUint16(b, sid)
	}
	b = append(b, extras...)
	b = append(b, value...)
	f.wbuf = b
	return f.writeLocked(nil, b)
}

// respond answers a producer's request (a NOOP, a marker asking for one),
// for the Run of ctx. A reply that ctx's end kept from being written is
// owed: the next Run sends it first.
func (f *feedState) respond(ctx context.Context, op gomemcached.CommandCode, opaque uint32) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	b := append(f.wbuf[:0], magicRes, byte(op), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, opaque)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	f.wbuf = b
	err := f.writeLocked(ctx, b)
	if err == errNotWritten {
		f.owed = feedReply{op, opaque}
		return ctx.Err()
	}
	return err
}

// ack acknowledges the bytes handled, for the Run of ctx.
func (f *feedState) ack(ctx context.Context) error {
	n := f.unacked
	f.unacked = 0
	f.wmu.Lock()
	defer f.wmu.Unlock()
	b := append(f.wbuf[:0], magicReq, byte(gomemcached.UPR_BUFFERACK), 0, 0, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, n)
	f.wbuf = b
	err := f.writeLocked(ctx, b)
	if err == errNotWritten {
		f.unacked += n // acknowledged later
		return ctx.Err()
	}
	return err
}

// writeLocked writes b, with wmu held, for the Run of ctx (nil for Add
// and Remove). On a transport with write deadlines a write must be done
// within two noop intervals (a producer that reads nothing for so long
// fails the feed with ErrFeedDead), and the end of a Run's context cuts
// the write in progress (Run's callback sets a past deadline): a write cut
// short fails the feed, as a packet may be half-written, and Run returns
// ctx.Err(); a write of the Run not begun is not made (errNotWritten).
func (f *feedState) writeLocked(ctx context.Context, b []byte) error {
	f.mu.Lock()
	err := f.usableLocked()
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		var dl time.Time
		if f.wdl != nil {
			dl = time.Now().Add(2 * f.noop)
			f.wdl.SetWriteDeadline(dl)
			if ctx != nil && ctx.Err() != nil {
				// Run's callback may have set its deadline before ours.
				f.wdl.SetWriteDeadline(pastDeadline)
			}
		}
		n, err := f.conn.Write(b)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || dl.IsZero() {
			return f.fail(err)
		}
		cut := ctx != nil && ctx.Err() != nil
		switch {
		case n == 0 && cut:
			return errNotWritten
		case n == 0 && time.Now().Before(dl):
			// Cut by the context of an earlier Run as it returned, before
			// a byte was written: write again.
			continue
		case cut:
			f.fail(fmt.Errorf("memcached: feed: a write cut short as Run's context ended: %w", err))
			return ctx.Err()
		case !time.Now().Before(dl):
			return f.fail(fmt.Errorf("%w: it read nothing for %v", ErrFeedDead, 2*f.noop))
		}
		return f.fail(err)
	}
}

// fail records that the connection failed with err (unless it already
// had), closes it, and returns the feed's error.
func (f *feedState) fail(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrFeedClosed
	}
	if f.err == nil {
		var fe *feedError
		if !errors.As(err, &fe) && !errors.Is(err, ErrFeedDead) {
			err = &ConnError{Err: err}
		}
		f.err = err
		f.conn.Close()
	}
	return f.err
}

// Close closes the feed and its connection. Run returns ErrFeedClosed.
func (f *Feed) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	err := f.conn.Close()
	f.c.Close()
	return err
}

// pastDeadline interrupts a read.
var pastDeadline = time.Unix(1, 0)

// Run dispatches events to h until ctx ends (it returns ctx.Err()), h
// returns an error (returned, wrapped), the connection fails, or every
// stream has ended and none is pending (it returns nil); before any
// stream was added it waits for one. Flow-control acknowledgements are
// sent after h returns, for the bytes of the events it handled. Run may
// be called again after it returned, but not by two goroutines at once
// (ErrFeedRunning). An event h failed on is not handed to it again.
//
// The end of ctx also cuts a write of Run's that the producer is not
// reading (on a transport with write deadlines, such as a net.Conn): the
// feed then fails, as a packet may be half-written.
//
// Events are dispatched one at a time, by Run's goroutine; h may call Add
// and Remove.
func (f *Feed) Run(ctx context.Context, h FeedHandler) error {
	if !f.running.CompareAndSwap(false, true) {
		return ErrFeedRunning
	}
	defer f.running.Store(false)
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		f.conn.SetReadDeadline(pastDeadline)
		if f.wdl != nil {
			f.wdl.SetWriteDeadline(pastDeadline)
		}
	})
	defer stop()
	if o := f.owed; o.op != 0 {
		f.owed = feedReply{}
		if err := f.respond(ctx, o.op, o.opaque); err != nil {
			return err
		}
	}
	for {
		f.mu.Lock()
		err, done := f.usableLocked(), f.everAdded && len(f.streams) == 0
		f.mu.Unlock()
		if err != nil {
			return err
		}
		if done {
			if f.unacked > 0 {
				if err := f.ack(ctx); err != nil {
					return err
				}
			}
			return nil
		}
		n, err := packetLen(f.buf[f.r:f.w], f.maxBody)
		if err != nil {
			return f.fail(err)
		}
		if n == 0 || f.w-f.r < n {
			if f.unacked > 0 {
				if err := f.ack(ctx); err != nil {
					return err
				}
			}
			if err := f.fill(ctx, n); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		p := &f.pkt
		if err := parsePacket(f.buf[f.r:f.r+n], p); err != nil {
			return f.fail(err)
		}
		f.r += n
		if err := f.dispatch(ctx, h, p); err != nil {
			return err
		}
	}
}

// fill reads more into the buffer, making room for a packet of need
// bytes (0: unknown yet).
func (f *feedState) fill(ctx context.Context, need int) error {
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
	if f.buf == nil {
		f.buf = make([]byte, feedReadSize)
	}
	need = max(need, gomemcached.HDR_LEN)
	if len(f.buf)-f.r < need || len(f.buf)-f.w < len(f.buf)/8 {
		if need > len(f.buf) {
			nb := make([]byte, max(need, 2*len(f.buf)))
			f.w = copy(nb, f.buf[f.r:f.w])
			f.buf = nb
		} else {
			f.w = copy(f.buf, f.buf[f.r:f.w])
		}
		f.r = 0
	}
	f.mu.Lock()
	watch := f.everAdded
	f.mu.Unlock()
	var dl time.Time
	if watch {
		dl = time.Now().Add(2 * f.noop)
	}
	f.conn.SetReadDeadline(dl)
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := f.conn.Read(f.buf[f.w:])
	f.w += n
	if err == nil || n > 0 {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if dl.IsZero() || time.Now().Before(dl) {
			// The interruption meant for an earlier Run whose context
			// ended as it returned: read again.
			return nil
		}
		err = fmt.Errorf("%w: nothing for %v", ErrFeedDead, 2*f.noop)
	}
	return f.fail(err)
}

// dispatch handles one packet.
func (f *feedState) dispatch(ctx context.Context, h FeedHandler, p *feedPacket) error {
	if !p.isRequest() {
		return f.response(ctx, h, p)
	}
	if p.op == gomemcached.UPR_NOOP {
		return f.respond(ctx, gomemcached.UPR_NOOP, p.opaque)
	}
	// From here on the message counts for flow control, whatever it is:
	// every request of the producer's but a NOOP does (flow-control.md).
	ev := &f.ev
	*ev = Event{}
	if err := decodeMessage(p, f.opts.Collections, ev); err != nil {
		return f.fail(err)
	}
	f.mu.Lock()
	s := f.streams[streamKey(ev.VBucket, ev.StreamID)]
	if s != nil && p.opaque != s.reqOpaque {
		// The messages of a stream carry its request's opaque
		// (stream-request.md): this one is left over from an earlier
		// stream of the vbucket, such as the STREAM_END that follows a
		// close.
		s = nil
	}
	if s != nil && ev.Kind == EventStreamEnd {
		f.removeLocked(s)
	}
	f.mu.Unlock()
	if ev.Kind == 0 || s == nil {
		// Not a message the feed knows, or for no stream it has.
		f.handled(ctx, p)
		if s != nil && p.op == gomemcached.DCP_SET_VBUCKET_STATE {
			// set-vbucket-state.md says it has no reply, but kv_engine's
			// consumer sends one (PassiveStream::processSetVBucketState)
			// and a takeover waits for it.
			return f.respond(ctx, p.op, p.opaque)
		}
		return nil
	}
	seqno := false // an event with a seqno of the snapshot
	switch ev.Kind {
	case EventSnapshot:
		s.snapStart, s.snapEnd = ev.SnapStart, ev.SnapEnd
		if ev.SnapFlags&snapMarkerAck != 0 {
			s.ackOpaque = p.opaque
		}
	case EventOSOBegin:
		s.oso, s.osoMax = true, s.cp.Seqno
	case EventOSOEnd:
		s.oso = false
		s.cp.Seqno = max(s.cp.Seqno, s.osoMax)
		s.cp.SnapStart, s.cp.SnapEnd = s.cp.Seqno, s.cp.Seqno
	case EventMutation, EventDeletion, EventExpiration, EventSystem, EventSeqnoAdvanced:
		ev.SnapStart, ev.SnapEnd, ev.SnapFlags = s.snapStart, s.snapEnd, 0
		seqno = !s.oso
		if s.oso {
			s.osoMax = max(s.osoMax, ev.Seqno)
			break
		}
		s.cp.Seqno = ev.Seqno
		s.cp.SnapStart, s.cp.SnapEnd = s.snapStart, s.snapEnd
		if s.cp.SnapEnd <= s.cp.Seqno || s.cp.SnapStart > s.cp.Seqno {
			s.cp.SnapStart, s.cp.SnapEnd = s.cp.Seqno, s.cp.Seqno
		}
	}
	ev.Checkpoint = s.cp
	err := h.HandleEvent(ctx, ev)
	f.handled(ctx, p)
	if s.ackOpaque != 0 && seqno && ev.Seqno >= s.snapEnd {
		// The snapshot is in: answer the marker that asked for it
		// (snapshot-marker.md, kv_engine's
		// PassiveStream::handleSnapshotEnd), though the handler failed,
		// since the event is not handed to it again.
		op := s.ackOpaque
		s.ackOpaque = 0
		if rerr := f.respond(ctx, gomemcached.UPR_SNAPSHOT, op); rerr != nil && err == nil {
			return rerr
		}
	}
	if err != nil {
		return fmt.Errorf("memcached: feed: handler: %w", err)
	}
	return nil
}

// handled counts a message for flow control, acknowledging once a
// quarter of the window is due.
func (f *feedState) handled(ctx context.Context, p *feedPacket) {
	f.unacked += uint32(p.size)
	if f.unacked >= max(f.buffer/4, 1) {
		f.ack(ctx) // an error fails the feed, or ends Run's context: Run sees it next
	}
}

// removeLocked forgets s.
func (f *feedState) removeLocked(s *feedStream) {
	if f.streams[s.key] == s {
		delete(f.streams, s.key)
	}
	if f.byOpaque[s.reqOpaque] == s {
		delete(f.byOpaque, s.reqOpaque)
	}
	if f.byOpaque[s.closeOpaque] == s {
		delete(f.byOpaque, s.closeOpaque)
	}
}

// response handles the answer to a stream request or a close.
func (f *feedState) response(ctx context.Context, h FeedHandler, p *feedPacket) error {
	f.mu.Lock()
	s := f.byOpaque[p.opaque]
	var reqOpaque, closeOpaque uint32
	if s != nil {
		delete(f.byOpaque, p.opaque)
		reqOpaque, closeOpaque = s.reqOpaque, s.closeOpaque
	}
	f.mu.Unlock()
	if s == nil {
		return nil // an answer to nothing pending
	}
	status := gomemcached.Status(p.vbucket)
	ev := &f.ev
	*ev = Event{VBucket: s.spec.VBucket, StreamID: s.spec.StreamID, Size: p.size}
	switch {
	case p.op == gomemcached.UPR_STREAMREQ && p.opaque == reqOpaque:
		return f.streamAnswer(ctx, h, p, s, status, ev)
	case p.op == gomemcached.UPR_CLOSESTREAM && p.opaque == closeOpaque:
		if status == gomemcached.SUCCESS && f.endOnClose {
			return nil // the producer's stream end follows
		}
		f.mu.Lock()
		mine := f.streams[s.key] == s
		if mine {
			f.removeLocked(s)
		}
		f.mu.Unlock()
		if !mine {
			return nil // ended meanwhile
		}
		ev.Kind, ev.Reason, ev.Checkpoint = EventStreamEnd, StreamEndClosed, s.cp
		return f.handle(ctx, h, ev)
	}
	return nil
}

func (f *feedState) handle(ctx context.Context, h FeedHandler, ev *Event) error {
	if err := h.HandleEvent(ctx, ev); err != nil {
		return fmt.Errorf("memcached: feed: handler: %w", err)
	}
	return nil
}

// streamAnswer handles the answer to a stream request.
func (f *feedState) streamAnswer(ctx context.Context, h FeedHandler, p *feedPacket, s *feedStream, status gomemcached.Status, ev *Event) error {
	vb := s.spec.VBucket
	switch status {
	case gomemcached.SUCCESS:
		if len(p.value)%16 != 0 {
			return f.fail(malformed(p.op, "failover log not a whole number of entries"))
		}
		s.log = s.log[:0]
		for b := p.value; len(b) > 0; b = b[16:] {
			s.log = append(s.log, FailoverEntry{VBUUID: binary.BigEndian.Uint64(b), Seqno: binary.BigEndian.Uint64(b[8:])})
		}
		f.logs[vb] = append(f.logs[vb][:0], s.log...)
		if len(s.log) > 0 {
			s.cp.VBUUID = s.log[0].VBUUID
		}
		s.open, s.rollbacks = true, 0
		s.snapStart, s.snapEnd = s.cp.SnapStart, s.cp.SnapEnd
		ev.Kind, ev.Checkpoint, ev.FailoverLog = EventStreamStart, s.cp, s.log
		ev.Seqno = s.cp.Seqno
		return f.handle(ctx, h, ev)
	case gomemcached.ROLLBACK:
		if len(p.value) != 8 {
			return f.fail(malformed(p.op, "rollback seqno not 8 bytes"))
		}
		rb := binary.BigEndian.Uint64(p.value)
		cp := Checkpoint{Seqno: rb, SnapStart: rb, SnapEnd: rb}
		if rb > 0 {
			// A partial rollback: the producer found the history asked for
			// and shares it up to rb (rollback.md). A feed resuming from
			// a saved checkpoint knows no failover log: without the UUID
			// the request again would share no history (a rollback to 0).
			cp.VBUUID = s.cp.VBUUID
		}
		// The failover log of an earlier stream of the vbucket on this
		// feed tells the history rb is in.
		for _, e := range f.logs[vb] {
			if e.Seqno <= rb {
				cp.VBUUID = e.VBUUID
				break
			}
		}
		ev.Kind, ev.Seqno, ev.Checkpoint = EventRollback, rb, cp
		if err := f.handle(ctx, h, ev); err != nil {
			f.mu.Lock()
			f.removeLocked(s)
			f.mu.Unlock()
			return err
		}
		s.cp = cp
		s.rollbacks++
		f.mu.Lock()
		closing := s.closing
		giveUp := closing || s.rollbacks > feedMaxRollbacks || f.streams[s.key] != s
		if giveUp {
			f.removeLocked(s)
		} else {
			s.reqOpaque = f.newOpaqueLocked()
			f.byOpaque[s.reqOpaque] = s
		}
		op := s.reqOpaque
		f.mu.Unlock()
		if !giveUp {
			return f.requestStream(s, op, cp)
		}
		*ev = Event{Kind: EventStreamEnd, VBucket: vb, StreamID: s.spec.StreamID, Checkpoint: cp, Reason: StreamEndClosed}
		if !closing {
			se := &gomemcached.ServerError{Opcode: p.op, Status: status, Opaque: p.opaque, Body: append([]byte(nil), p.value...)}
			ev.Reason, ev.Status, ev.Err = StreamEndRefused, status, fmt.Errorf("%w: %w", ErrFeedTooManyRollbacks, se)
		}
		return f.handle(ctx, h, ev)
	}
	f.mu.Lock()
	f.removeLocked(s)
	f.mu.Unlock()
	ev.Kind, ev.Reason, ev.Status, ev.Checkpoint = EventStreamEnd, StreamEndRefused, status, s.cp
	ev.Err = &gomemcached.ServerError{Opcode: p.op, Status: status, Opaque: p.opaque, Body: append([]byte(nil), p.value...)}
	return f.handle(ctx, h, ev)
}
