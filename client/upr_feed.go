package memcached

import (
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

// The DCP (formerly UPR) consumer of the reference: a UprFeed streams the
// changes of the vbuckets it requests over one connection, opened as a
// DCP producer connection. See kv_engine's docs/dcp/documentation.
//
// How it runs. The feed never takes the socket from the client: it uses
// the client's raw API, so writes (stream requests, buffer acks, noop
// replies) are queued with the client's, and the client's reader puts
// every packet that belongs to no call in its Receive queue, whence the
// feed's reader goroutine takes it. That goroutine decodes each packet in
// wire order, keeps the streams' state, answers a producer's NOOP at once
// (control never waits behind data), and queues the events, bounded in
// bytes, for a second goroutine that hands them to the feed's channel and
// acknowledges their bytes. Closing the Client ends the feed (its streams
// end with reason "disconnected"); closing the feed leaves the client
// open, as with the reference, whose feed hijacked the connection.

// UPRDefaultNoopIntervalSeconds is the noop interval UprOpen asks for.
const UPRDefaultNoopIntervalSeconds = 120

// bufferAckThreshold is the part of the connection's buffer after which
// the consumed bytes are acknowledged.
const bufferAckThreshold = 0.2

// minEventQueueBytes is the least the event queue between the feed's two
// goroutines holds, in wire bytes; it holds at least twice the flow-control
// window, which bounds what a producer sends unacknowledged.
const minEventQueueBytes = 16 << 20

// PriorityType is a DCP connection priority (the set_priority control).
type PriorityType string

// The priorities: high > medium > disabled > low.
const (
	PriorityDisabled PriorityType = ""
	PriorityLow      PriorityType = "low"
	PriorityMed      PriorityType = "medium"
	PriorityHigh     PriorityType = "high"
)

// DcpStreamType is the kind of the streams of a feed, fixed by its first
// stream request.
type DcpStreamType int32

// UninitializedStream is the type of a feed before its first stream
// request.
var UninitializedStream DcpStreamType = -1

// The stream types: without collections; with collections, keys prefixed
// by their collection id; and with stream ids as well.
const (
	NonCollectionStream    DcpStreamType = 0
	CollectionsNonStreamId DcpStreamType = iota
	CollectionsStreamId    DcpStreamType = iota
)

// String describes the stream type.
func (t DcpStreamType) String() string {
	switch t {
	case UninitializedStream:
		return "Un-Initialized Stream"
	case NonCollectionStream:
		return "Traditional Non-Collection Stream"
	case CollectionsNonStreamId:
		return "Collections Stream without StreamID"
	case CollectionsStreamId:
		return "Collection Stream with StreamID"
	}
	return "Unknown Stream Type"
}

// UprStream is a stream of a feed: one vbucket.
type UprStream struct {
	Vbucket    uint16 // the vbucket
	Vbuuid     uint64 // the vbuuid it was requested with
	StartSeq   uint64 // the start seqno requested
	EndSeq     uint64 // the end seqno requested
	connected  bool
	StreamType DcpStreamType
}

// FeedState is the state of a feed.
type FeedState int

// The feed states.
const (
	FeedStateInitial = iota
	FeedStateOpened  = iota
	FeedStateClosed  = iota
)

// String names the state.
func (fs FeedState) String() string {
	switch fs {
	case FeedStateInitial:
		return "Initial"
	case FeedStateOpened:
		return "Opened"
	case FeedStateClosed:
		return "Closed"
	}
	return "Unknown"
}

// UprFeatures.CompressionType values; the markers are invalid values.
const (
	CompressionTypeStartMarker = iota
	CompressionTypeNone        = iota
	CompressionTypeSnappy      = iota
	CompressionTypeEndMarker   = iota
)

// Datatype bits (kv_engine's include/mcbp/protocol/datatype.h).
const (
	JSONDataType   uint8 = 1
	SnappyDataType uint8 = 2
	XattrDataType  uint8 = 4
)

// UprFeatures are the optional behaviours UprOpenWithFeatures asks the
// producer for; it returns those it turned on.
type UprFeatures struct {
	Xattribute                 bool         // values with their extended attributes
	CompressionType            int          // CompressionTypeSnappy forces compressed values
	IncludeDeletionTime        bool         // deletions with their delete time (V2)
	DcpPriority                PriorityType // set_priority
	EnableExpiry               bool         // DCP_EXPIRATION for expired documents
	EnableStreamId             bool         // stream ids (several filtered streams per vbucket)
	EnableOso                  bool         // out-of-order snapshots in backfills
	SendStreamEndOnClose       bool         // a STREAM_END follows CloseStream
	EnableFlatbuffersSysEvents bool         // version 2 (FlatBuffers) system events
	clientReadThreshold        int          // seconds; set by EnableDeadConnDetection
}

// EnableDeadConnDetection makes the feed end when the producer sends
// nothing for thresholdSeconds, which must be at least twice the noop
// interval (kv_engine's dead-connections.md). The clock starts with the
// first stream request, since the producer sends no noop before.
func (f *UprFeatures) EnableDeadConnDetection(thresholdSeconds int) error {
	if least := 2 * UPRDefaultNoopIntervalSeconds; thresholdSeconds < least {
		return fmt.Errorf("memcached: dead-connection threshold %ds is under twice the noop interval (%ds)",
			thresholdSeconds, least)
	}
	f.clientReadThreshold = thresholdSeconds
	return nil
}

// UprFeedIface is the interface of a UprFeed.
type UprFeedIface interface {
	Close()
	Closed() bool
	CloseStream(vbno, opaqueMSB uint16) error
	GetError() error
	GetUprStats() *UprStats
	ClientAck(event *UprEvent) error
	GetUprEventCh() <-chan *UprEvent
	StartFeed() error
	StartFeedWithConfig(datachan_len int) error
	UprOpen(name string, sequence uint32, bufSize uint32) error
	UprOpenWithXATTR(name string, sequence uint32, bufSize uint32) error
	UprOpenWithFeatures(name string, sequence uint32, bufSize uint32, features UprFeatures) (error, UprFeatures)
	UprRequestStream(vbno, opaqueMSB uint16, flags uint32, vuuid, startSequence, endSequence, snapStart, snapEnd uint64) error
	// SetPriorityAsync sets the connection's priority, without waiting
	// for the answer.
	SetPriorityAsync(p PriorityType) error
	UprRequestCollectionsStream(vbno, opaqueMSB uint16, flags uint32, vbuuid, startSeq, endSeq, snapStart, snapEnd uint64, filter *CollectionsFilter) error
}

var _ UprFeedIface = (*UprFeed)(nil)

// UprStats counts what a feed received and sent.
type UprStats struct {
	TotalBytes         uint64 // bytes received (the reference's holds the last packet's size)
	TotalMutation      uint64 // mutations, deletions and expirations
	TotalBufferAckSent uint64 // buffer acknowledgements sent
	TotalSnapShot      uint64 // snapshot markers
}

// StreamNotRequested ends the error of CloseStream for a vbucket that has
// no stream.
const StreamNotRequested = "has not been requested"

// UprFeed is a DCP feed on one connection to a producer. Make it with a
// Client's NewUprFeed, open it (UprOpen...), start it (StartFeed), request
// streams, and read the events from C (or GetUprEventCh). Its methods are
// safe for concurrent use; ClientAck too, unlike the reference's.
//
// C is closed when the feed ends: on Close, when the connection ends or
// fails (the active streams then get a UPR_STREAMEND event with reason 3,
// disconnected, and GetError says why), or when the producer breaks the
// protocol (GetError says how).
type UprFeed struct {
	// C delivers the events, once StartFeed has made it.
	C <-chan *UprEvent
	// Error is why the feed ended, set before C is closed; GetError reads
	// it safely at any time.
	Error error

	conn              *Client
	ackByClient       bool
	collectionEnabled bool

	mu             sync.Mutex // guards the fields below, and Error
	state          FeedState
	started        bool
	features       UprFeatures                      // activated by UprOpen
	pending        map[uint16]map[uint16]*UprStream // vbucket -> opaqueMSB -> stream requested
	streams        map[uint16]*UprStream            // vbucket -> stream accepted
	closeRequested map[uint16]bool
	streamsType    DcpStreamType

	streamRequested atomic.Bool  // a stream was requested: the producer's noops run
	readThreshold   atomic.Int64 // the dead-connection threshold, 0 for none
	maxAckBytes     atomic.Uint32
	ackMu           sync.Mutex
	toAckBytes      uint32

	totalBytes, totalMutation, totalAcks, totalSnapshots atomic.Uint64

	closer    chan struct{}
	closeOnce sync.Once
}

// NewUprFeed creates a feed on the client's connection; the feed
// acknowledges each event's bytes once it is handed to the channel.
func (mc *Client) NewUprFeed() (*UprFeed, error) {
	return mc.NewUprFeedWithConfig(false)
}

// NewUprFeedWithConfig creates a feed; with ackByClient, the bytes of an
// event are acknowledged when ClientAck is called with it, which the
// receiver must then do for every event.
func (mc *Client) NewUprFeedWithConfig(ackByClient bool) (*UprFeed, error) {
	return &UprFeed{
		conn:              mc,
		ackByClient:       ackByClient,
		collectionEnabled: mc.CollectionEnabled(),
		pending:           map[uint16]map[uint16]*UprStream{},
		streams:           map[uint16]*UprStream{},
		closeRequested:    map[uint16]bool{},
		streamsType:       UninitializedStream,
		closer:            make(chan struct{}),
	}, nil
}

// NewUprFeedIface is NewUprFeed returning the interface.
func (mc *Client) NewUprFeedIface() (UprFeedIface, error) { return mc.NewUprFeed() }

// NewUprFeedWithConfigIface is NewUprFeedWithConfig returning the
// interface.
func (mc *Client) NewUprFeedWithConfigIface(ackByClient bool) (UprFeedIface, error) {
	return mc.NewUprFeedWithConfig(ackByClient)
}

// call sends req and waits for its answer, an error unless SUCCESS.
func (feed *UprFeed) call(req *gomemcached.MCRequest) error {
	c := feed.conn.c
	res, err := c.send(nil, req, c.readDeadline())
	if err == nil && res != nil {
		err = serverError(res)
	}
	if err != nil {
		what := req.Opcode.String()
		if req.Opcode == gomemcached.UPR_CONTROL {
			what += " " + string(req.Key)
		}
		return fmt.Errorf("memcached: %s: %w", what, err)
	}
	return nil
}

func (feed *UprFeed) control(key, value string) error {
	return feed.call(&gomemcached.MCRequest{Opcode: gomemcached.UPR_CONTROL, Key: []byte(key), Body: []byte(value)})
}

// UprOpen opens the connection as a DCP producer connection named name,
// with a flow-control buffer of bufSize bytes (0: no flow control), and
// turns the producer's noops on.
func (feed *UprFeed) UprOpen(name string, sequence uint32, bufSize uint32) error {
	err, _ := feed.uprOpen(name, sequence, bufSize, UprFeatures{})
	return err
}

// UprOpenWithXATTR is UprOpen with values sent with their extended
// attributes.
func (feed *UprFeed) UprOpenWithXATTR(name string, sequence uint32, bufSize uint32) error {
	err, _ := feed.uprOpen(name, sequence, bufSize, UprFeatures{Xattribute: true})
	return err
}

// UprOpenWithFeatures is UprOpen asking for features; it returns those
// turned on, as far as it got. (The error comes first, as in the
// reference.)
func (feed *UprFeed) UprOpenWithFeatures(name string, sequence uint32, bufSize uint32, features UprFeatures) (error, UprFeatures) {
	return feed.uprOpen(name, sequence, bufSize, features)
}

func (feed *UprFeed) uprOpen(name string, sequence uint32, bufSize uint32, want UprFeatures) (err error, got UprFeatures) {
	got.CompressionType = CompressionTypeEndMarker // not reached yet
	flags := gomemcached.DCP_PRODUCER
	if want.Xattribute {
		flags |= gomemcached.DCP_OPEN_INCLUDE_XATTRS
	}
	if want.IncludeDeletionTime {
		flags |= gomemcached.DCP_OPEN_INCLUDE_DELETE_TIMES
	}
	extras := binary.BigEndian.AppendUint32(nil, sequence)
	extras = binary.BigEndian.AppendUint32(extras, flags)
	if err = feed.call(&gomemcached.MCRequest{Opcode: gomemcached.UPR_OPEN, Key: []byte(name), Extras: extras}); err != nil {
		return err, got
	}
	got.Xattribute = want.Xattribute
	got.IncludeDeletionTime = want.IncludeDeletionTime

	if bufSize > 0 {
		if err = feed.control("connection_buffer_size", strconv.FormatUint(uint64(bufSize), 10)); err != nil {
			return err, got
		}
		// At least 1: 0 means no flow control.
		feed.maxAckBytes.Store(max(uint32(bufferAckThreshold*float64(bufSize)), 1))
	}
	if err = feed.control("enable_noop", "true"); err != nil {
		return err, got
	}
	if err = feed.control("set_noop_interval", strconv.Itoa(UPRDefaultNoopIntervalSeconds)); err != nil {
		return err, got
	}
	feed.readThreshold.Store(int64(time.Duration(want.clientReadThreshold) * time.Second))
	got.clientReadThreshold = want.clientReadThreshold

	if want.EnableFlatbuffersSysEvents {
		if err = feed.control("flatbuffers_system_events", "true"); err != nil {
			return err, got
		}
		got.EnableFlatbuffersSysEvents = true // the reference never reports it
	}
	switch want.CompressionType {
	case CompressionTypeSnappy:
		got.CompressionType = CompressionTypeNone
		if err = feed.control("force_value_compression", "true"); err != nil {
			return err, got
		}
	case CompressionTypeEndMarker:
		return fmt.Errorf("memcached: UPR_CONTROL: invalid compression type %d", want.CompressionType), got
	}
	got.CompressionType = want.CompressionType

	if want.DcpPriority != PriorityDisabled {
		if err = feed.control("set_priority", string(want.DcpPriority)); err != nil {
			return err, got
		}
		got.DcpPriority = want.DcpPriority
	}
	for _, c := range []struct {
		on  bool
		key string
		got *bool
	}{
		{want.EnableExpiry, "enable_expiry_opcode", &got.EnableExpiry},
		{want.EnableStreamId, "enable_stream_id", &got.EnableStreamId},
		{want.EnableOso, "enable_out_of_order_snapshots", &got.EnableOso},
		{want.SendStreamEndOnClose, "send_stream_end_on_client_close_stream", &got.SendStreamEndOnClose},
	} {
		if !c.on {
			continue
		}
		if err = feed.control(c.key, "true"); err != nil {
			return err, got
		}
		*c.got = true
	}

	feed.mu.Lock()
	feed.features = got
	if feed.state != FeedStateClosed {
		feed.state = FeedStateOpened
	}
	feed.mu.Unlock()
	return nil, got
}

// SetPriorityAsync sends the set_priority control without waiting for its
// answer; the feed must be open.
func (feed *UprFeed) SetPriorityAsync(p PriorityType) error {
	if st := feed.getState(); st != FeedStateOpened {
		return fmt.Errorf("memcached: upr feed is not open (state %v)", st)
	}
	return feed.transmit(&gomemcached.MCRequest{
		Opcode: gomemcached.UPR_CONTROL, Key: []byte("set_priority"), Body: []byte(p),
	})
}

// transmit writes req with the client's raw API, unless the feed is
// closed.
func (feed *UprFeed) transmit(req *gomemcached.MCRequest) error {
	select {
	case <-feed.closer:
		return fmt.Errorf("memcached: upr feed closed: %s not sent", req.Opcode)
	default:
	}
	return feed.conn.Transmit(req)
}

// UprRequestStream requests the stream of vbucket vbno from startSequence
// to endSequence (0xFFFFFFFFFFFFFFFF: forever), resuming at vuuid and the
// snapshot [snapStart, snapEnd]. The answer arrives on the feed's channel
// as a UPR_STREAMREQ event: Status SUCCESS with the failover log, ROLLBACK
// with the seqno to roll back to (in Seqno, and in Value as the reference
// has it), or another status with Error. opaqueMSB tags the stream's
// events (UprEvent.Opaque).
func (feed *UprFeed) UprRequestStream(vbno, opaqueMSB uint16, flags uint32,
	vuuid, startSequence, endSequence, snapStart, snapEnd uint64) error {
	return feed.UprRequestCollectionsStream(vbno, opaqueMSB, flags, vuuid, startSequence, endSequence, snapStart, snapEnd, nil)
}

// initStreamType fixes the feed's stream type at its first request.
func (feed *UprFeed) initStreamType(filter *CollectionsFilter) error {
	feed.mu.Lock()
	defer feed.mu.Unlock()
	if filter != nil && filter.UseStreamId && !feed.features.EnableStreamId {
		return errors.New("memcached: a stream-id filter needs a feed opened with EnableStreamId")
	}
	if feed.streamsType != UninitializedStream {
		return nil
	}
	switch {
	case !feed.collectionEnabled:
		feed.streamsType = NonCollectionStream
	case filter != nil && filter.UseStreamId:
		feed.streamsType = CollectionsStreamId
	default:
		feed.streamsType = CollectionsNonStreamId
	}
	return nil
}

// UprRequestCollectionsStream is UprRequestStream with a collections
// filter (nil: all the collections the connection may read).
func (feed *UprFeed) UprRequestCollectionsStream(vbno, opaqueMSB uint16, flags uint32,
	vbuuid, startSequence, endSequence, snapStart, snapEnd uint64, filter *CollectionsFilter) error {
	if err := feed.initStreamType(filter); err != nil {
		return err
	}
	var body []byte
	if filter != nil {
		var err error
		if body, err = filter.ToStreamReqBody(); err != nil {
			return err
		}
	}
	x := make([]byte, 0, 48)
	x = binary.BigEndian.AppendUint32(x, flags)
	x = binary.BigEndian.AppendUint32(x, 0) // reserved
	for _, v := range [...]uint64{startSequence, endSequence, vbuuid, snapStart, snapEnd} {
		x = binary.BigEndian.AppendUint64(x, v)
	}
	rq := &gomemcached.MCRequest{
		Opcode:  gomemcached.UPR_STREAMREQ,
		VBucket: vbno,
		Opaque:  composeOpaque(vbno, opaqueMSB),
		Extras:  x,
		Body:    body,
	}
	// Registered before it is sent, so that the answer finds it.
	feed.mu.Lock()
	m := feed.pending[vbno]
	if m == nil {
		m = map[uint16]*UprStream{}
		feed.pending[vbno] = m
	}
	if m[opaqueMSB] == nil {
		m[opaqueMSB] = &UprStream{Vbucket: vbno, Vbuuid: vbuuid, StartSeq: startSequence, EndSeq: endSequence}
	}
	delete(feed.closeRequested, vbno)
	feed.mu.Unlock()
	feed.streamRequested.Store(true)
	// As in the reference, a request that fails to be sent stays
	// registered: an answer to an earlier one may still come.
	return feed.conn.Transmit(rq)
}

// CloseStream closes the stream of vbucket vbno. The feed then delivers a
// UPR_STREAMEND event for it: made from the producer's answer, or, with
// SendStreamEndOnClose, the producer's own STREAM_END, which follows the
// messages the producer sent before it (kv_engine's close-stream.md; the
// reference ends the stream at the answer, then takes those messages for
// a protocol error that ends the whole feed).
func (feed *UprFeed) CloseStream(vbno, opaqueMSB uint16) error {
	feed.mu.Lock()
	if feed.streams[vbno] == nil && len(feed.pending[vbno]) == 0 {
		feed.mu.Unlock()
		return fmt.Errorf("memcached: stream for vb %d %s", vbno, StreamNotRequested)
	}
	feed.closeRequested[vbno] = true // before the answer can arrive
	feed.mu.Unlock()
	feed.transmit(&gomemcached.MCRequest{
		Opcode: gomemcached.UPR_CLOSESTREAM, VBucket: vbno, Opaque: composeOpaque(vbno, opaqueMSB),
	})
	return nil
}

// GetUprEventCh returns the feed's channel, C.
func (feed *UprFeed) GetUprEventCh() <-chan *UprEvent { return feed.C }

// GetError returns why the feed ended, nil if it has not or was closed.
func (feed *UprFeed) GetError() error {
	feed.mu.Lock()
	defer feed.mu.Unlock()
	return feed.Error
}

func (feed *UprFeed) setError(err error) {
	feed.mu.Lock()
	if feed.Error == nil {
		feed.Error = err
	}
	feed.mu.Unlock()
}

// StartFeed starts the feed with a channel of 10 events.
func (feed *UprFeed) StartFeed() error { return feed.StartFeedWithConfig(10) }

// StartFeedWithConfig starts the feed with a channel of datachan_len
// events. The client is no longer healthy (IsHealthy), so that no pool
// lends it, as the reference's hijacked client is not.
func (feed *UprFeed) StartFeedWithConfig(datachan_len int) error {
	feed.mu.Lock()
	if feed.started {
		feed.mu.Unlock()
		return errors.New("memcached: upr feed already started")
	}
	feed.started = true
	ch := make(chan *UprEvent, max(datachan_len, 0))
	feed.C = ch
	closed := feed.state == FeedStateClosed
	feed.mu.Unlock()
	if closed {
		close(ch)
		return errors.New("memcached: upr feed closed")
	}

	c := feed.conn.c
	c.mu.Lock()
	if c.err == nil && !c.hijacking {
		c.useRawLocked()
	}
	c.mu.Unlock()
	c.statusFatal.Store(true)

	limit := minEventQueueBytes
	if w := int(float64(feed.maxAckBytes.Load()) / bufferAckThreshold * 2); w > limit {
		limit = w
	}
	q := newEventQueue(limit)
	go feed.read(q)
	go feed.deliver(q, ch)
	return nil
}

// errDeadConnection is the cause of a feed's end when the producer stayed
// silent past the dead-connection threshold; it matches
// os.ErrDeadlineExceeded, as the reference's read deadline error does.
type errDeadConnection struct{ d time.Duration }

func (e errDeadConnection) Error() string {
	return "memcached: dcp producer silent for " + e.d.String() + ": dead connection"
}
func (e errDeadConnection) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// errFeedClosed stops the feed's goroutines on Close.
var errFeedClosed = errors.New("memcached: upr feed closed")

// next returns the next packet of the client's Receive queue. It fails
// when the feed is closed, the connection ends (once the queue is empty),
// or, once a stream was requested, nothing arrives for the feed's
// dead-connection threshold.
func (feed *UprFeed) next(idle time.Duration) (rawPacket, error) {
	c := feed.conn.c
	select {
	case p := <-c.raw:
		c.tookRaw(p)
		return p, nil
	default:
	}
	var timeout <-chan time.Time
	if idle > 0 && feed.streamRequested.Load() {
		t := time.NewTimer(idle)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case p := <-c.raw:
		c.tookRaw(p)
		return p, nil
	case <-feed.closer:
		return rawPacket{}, errFeedClosed
	case <-timeout:
		return rawPacket{}, errDeadConnection{idle}
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

// isRequestMagic reports whether a packet is one the producer sent
// (a request), rather than an answer to the feed's own.
func isRequestMagic(m byte) bool { return m == gomemcached.REQ_MAGIC || m == gomemcached.FLEX_MAGIC }

// packetRequest turns a packet the client read as a response into the
// request it is: the status field is the vbucket, frames are decoded, and
// the extended metadata (nmeta) is split off the value.
func packetRequest(p rawPacket) (*gomemcached.MCRequest, error) {
	res := p.res
	rq := &gomemcached.MCRequest{
		Opcode: res.Opcode, Cas: res.Cas, Opaque: res.Opaque, VBucket: uint16(res.Status),
		Extras: res.Extras, Key: res.Key, Body: res.Body, DataType: res.DataType,
		Keylen: len(res.Key), FramingElen: len(res.FlexibleExtras),
	}
	for b := res.FlexibleExtras; len(b) > 0; {
		id, data, rest, err := gomemcached.NextFrame(b)
		if err != nil {
			return nil, err
		}
		rq.FramingExtras = append(rq.FramingExtras, gomemcached.FrameInfo{ObjId: id, ObjLen: len(data), ObjData: data})
		b = rest
	}
	at := -1
	switch {
	case rq.Opcode == gomemcached.UPR_MUTATION && len(rq.Extras) >= mutationExtras:
		at = 28
	case rq.Opcode == gomemcached.UPR_DELETION && len(rq.Extras) == deletionV1Extras:
		at = 16
	}
	if at >= 0 {
		n := int(binary.BigEndian.Uint16(rq.Extras[at:]))
		if n > len(rq.Body) {
			return nil, badBody(rq.Opcode, "nmeta "+strconv.Itoa(n)+" exceeds the value's "+strconv.Itoa(len(rq.Body))+" bytes")
		}
		v := len(rq.Body) - n
		if n > 0 {
			rq.ExtMeta = rq.Body[v:]
		}
		rq.Body = rq.Body[:v:v]
	}
	return rq, nil
}

// read is the feed's reader goroutine: it decodes the packets in order,
// answers noops, keeps the streams' state and queues the events.
func (feed *UprFeed) read(q *eventQueue) {
	defer q.end()
	for {
		p, err := feed.next(time.Duration(feed.readThreshold.Load()))
		if err == errFeedClosed {
			return
		}
		if err != nil {
			feed.setError(err)
			feed.endStreams(q)
			return
		}
		feed.totalBytes.Add(uint64(p.size))
		rq, err := packetRequest(p)
		if err != nil {
			feed.setError(fmt.Errorf("memcached: dcp: %w", err))
			feed.endStreams(q)
			return
		}
		ev, err := feed.handle(rq, p)
		if err != nil {
			feed.setError(err)
			feed.endStreams(q)
			return
		}
		if ev != nil && !q.push(ev, p.size, feed.closer) {
			return
		}
	}
}

// handle applies one packet to the feed's state and returns the event to
// deliver, if any; an error is a protocol violation that ends the feed.
func (feed *UprFeed) handle(rq *gomemcached.MCRequest, p rawPacket) (*UprEvent, error) {
	vb, app := vbOpaque(rq.Opaque), appOpaque(rq.Opaque)
	if !isRequestMagic(p.magic) {
		switch rq.Opcode {
		case gomemcached.UPR_STREAMREQ:
			return feed.streamAnswer(rq, p, vb, app)
		case gomemcached.UPR_CLOSESTREAM:
			return feed.closeAnswer(rq, p, vb, app), nil
		}
		return nil, nil // answers to controls, buffer acks, failover-log requests
	}
	switch rq.Opcode {
	case gomemcached.UPR_NOOP:
		// At once, whatever waits in the event queue.
		feed.conn.TransmitResponse(&gomemcached.MCResponse{Opcode: gomemcached.UPR_NOOP, Opaque: rq.Opaque})
		return nil, nil
	case gomemcached.UPR_MUTATION, gomemcached.UPR_DELETION, gomemcached.UPR_EXPIRATION,
		gomemcached.UPR_SNAPSHOT, gomemcached.UPR_FLUSH, gomemcached.DCP_SYSTEM_EVENT,
		gomemcached.DCP_SEQNO_ADV, gomemcached.DCP_OSO_SNAPSHOT:
		feed.mu.Lock()
		stream, stray := feed.streams[vb], feed.closeRequested[vb]
		feed.mu.Unlock()
		if stream == nil {
			if stray {
				// Sent before the producer saw CloseStream: dropped,
				// its bytes given back.
				feed.account(uint32(p.size))
				return nil, nil
			}
			return nil, fmt.Errorf("memcached: dcp: %s for vbucket %d, which has no stream", rq.Opcode, vb)
		}
		ev := newUprEvent(rq, stream, p.size)
		switch rq.Opcode {
		case gomemcached.UPR_MUTATION, gomemcached.UPR_DELETION, gomemcached.UPR_EXPIRATION:
			feed.totalMutation.Add(1)
		case gomemcached.UPR_SNAPSHOT:
			feed.totalSnapshots.Add(1)
		}
		return ev, nil
	case gomemcached.UPR_STREAMEND:
		feed.mu.Lock()
		stream := feed.streams[vb]
		known := stream != nil || feed.closeRequested[vb] || feed.features.SendStreamEndOnClose
		if known {
			feed.removeStreamLocked(vb, app)
		}
		feed.mu.Unlock()
		if !known {
			return nil, fmt.Errorf("memcached: dcp: stream end for vbucket %d, which has no stream", vb)
		}
		return newUprEvent(rq, stream, p.size), nil
	}
	// Messages the feed does not deliver (set-vbucket-state, sync
	// replication): their bytes are given back at once.
	if flowControlled(rq.Opcode) {
		feed.account(uint32(p.size))
	}
	return nil, nil
}

func (feed *UprFeed) removeStreamLocked(vb, app uint16) {
	if m := feed.pending[vb]; m != nil {
		delete(m, app)
		if len(m) == 0 {
			delete(feed.pending, vb)
		}
	}
	delete(feed.streams, vb)
}

// streamAnswer handles the answer to a stream request.
func (feed *UprFeed) streamAnswer(rq *gomemcached.MCRequest, p rawPacket, vb, app uint16) (*UprEvent, error) {
	status := gomemcached.Status(rq.VBucket)
	feed.mu.Lock()
	stream := feed.pending[vb][app]
	feed.mu.Unlock()
	if stream == nil {
		return nil, fmt.Errorf("memcached: dcp: stream request answer for vbucket %d opaque %d, never requested", vb, app)
	}
	ev := newUprEvent(rq, stream, p.size)
	ev.Status = status
	switch status {
	case gomemcached.SUCCESS:
		flog, err := decodeFailoverLog(rq.Opcode, rq.Body)
		if err != nil {
			return nil, fmt.Errorf("memcached: dcp: vbucket %d: %w", vb, err)
		}
		ev.Seqno = stream.StartSeq
		ev.FailoverLog = flog
		feed.mu.Lock()
		if feed.collectionEnabled {
			stream.StreamType = feed.streamsType
		}
		stream.connected = true
		feed.streams[vb] = stream
		feed.removePendingLocked(vb, app)
		feed.mu.Unlock()
	case gomemcached.ROLLBACK:
		if len(rq.Body) >= 8 {
			ev.Seqno = binary.BigEndian.Uint64(rq.Body)
		}
		feed.mu.Lock()
		feed.removePendingLocked(vb, app)
		feed.mu.Unlock()
	default:
		// Only this stream failed (kv_engine); the reference ends the
		// whole feed here, without delivering the event.
		ev.Error = fmt.Errorf("memcached: dcp stream request for vbucket %d: %w", vb,
			&gomemcached.ServerError{Opcode: rq.Opcode, Status: status, Opaque: rq.Opaque, Body: rq.Body})
		feed.mu.Lock()
		feed.removePendingLocked(vb, app)
		feed.mu.Unlock()
	}
	return ev, nil
}

func (feed *UprFeed) removePendingLocked(vb, app uint16) {
	if m := feed.pending[vb]; m != nil {
		delete(m, app)
		if len(m) == 0 {
			delete(feed.pending, vb)
		}
	}
}

// closeAnswer handles the answer to CloseStream: a stream end, unless the
// producer sends its own (SendStreamEndOnClose).
func (feed *UprFeed) closeAnswer(rq *gomemcached.MCRequest, p rawPacket, vb, app uint16) *UprEvent {
	feed.mu.Lock()
	defer feed.mu.Unlock()
	stream := feed.streams[vb]
	if feed.features.SendStreamEndOnClose && rq.VBucket == uint16(gomemcached.SUCCESS) && stream != nil {
		return nil // the STREAM_END follows the stream's last messages
	}
	if stream == nil && !feed.closeRequested[vb] && !feed.features.SendStreamEndOnClose {
		return nil // nothing to end
	}
	feed.removeStreamLocked(vb, app)
	ev := newUprEvent(rq, stream, p.size)
	ev.Opcode = gomemcached.UPR_STREAMEND
	ev.Flags = streamEndClosed
	return ev
}

// endStreams queues a stream end, reason disconnected, for every stream
// the feed has or asked for, when the feed ends by failure. (The
// reference's have reason 0, which says a stream reached its end seqno.)
func (feed *UprFeed) endStreams(q *eventQueue) {
	feed.mu.Lock()
	var evs []*UprEvent
	add := func(vb uint16, s *UprStream) {
		evs = append(evs, &UprEvent{
			Opcode: gomemcached.UPR_STREAMEND, VBucket: vb, VBuuid: s.Vbuuid, Flags: streamEndDisconnected,
			SystemEvent: InvalidSysEvent, CollectionId: math.MaxUint32,
		})
	}
	for vb, s := range feed.streams {
		add(vb, s)
	}
	for vb, m := range feed.pending {
		if feed.streams[vb] != nil {
			continue
		}
		for app, s := range m {
			add(vb, s)
			evs[len(evs)-1].Opaque = app
		}
	}
	feed.streams = map[uint16]*UprStream{}
	feed.pending = map[uint16]map[uint16]*UprStream{}
	feed.mu.Unlock()
	for _, ev := range evs {
		if !q.push(ev, 0, feed.closer) {
			return
		}
	}
}

// deliver is the feed's second goroutine: it hands the queued events to
// ch and, unless the receiver acknowledges them, acknowledges their bytes.
// It closes ch when the feed ends.
func (feed *UprFeed) deliver(q *eventQueue, ch chan<- *UprEvent) {
	defer close(ch)
	defer feed.Close()
	for {
		ev, ok := q.pop(feed.closer)
		if !ok {
			return
		}
		select {
		case ch <- ev:
		case <-feed.closer:
			return
		}
		if !feed.ackByClient {
			feed.account(ev.AckSize)
		}
	}
}

// ClientAck acknowledges the bytes of an event the receiver has handled;
// the feed must have been made with ackByClient.
func (feed *UprFeed) ClientAck(event *UprEvent) error {
	if !feed.ackByClient {
		return errors.New("memcached: upr feed does not take acks from its client (ackByClient not set)")
	}
	if event != nil {
		feed.account(event.AckSize)
	}
	return nil
}

// account counts n bytes as consumed, and sends a buffer acknowledgement
// once they exceed a fifth of the window. Without flow control (a buffer
// size of 0) nothing is sent: the reference then acknowledges every
// event, which kv_engine ignores.
func (feed *UprFeed) account(n uint32) {
	limit := feed.maxAckBytes.Load()
	if n == 0 || limit == 0 {
		return
	}
	feed.ackMu.Lock()
	total := feed.toAckBytes + n
	if total <= limit {
		feed.toAckBytes = total
		feed.ackMu.Unlock()
		return
	}
	feed.toAckBytes = 0
	feed.ackMu.Unlock()
	ack := &gomemcached.MCRequest{Opcode: gomemcached.UPR_BUFFERACK, Extras: binary.BigEndian.AppendUint32(nil, total)}
	if feed.transmit(ack) == nil {
		feed.totalAcks.Add(1)
	}
}

// GetUprStats returns the feed's counters, as of the call (the
// reference's returns its live, unsynchronized, struct).
func (feed *UprFeed) GetUprStats() *UprStats {
	return &UprStats{
		TotalBytes:         feed.totalBytes.Load(),
		TotalMutation:      feed.totalMutation.Load(),
		TotalBufferAckSent: feed.totalAcks.Load(),
		TotalSnapShot:      feed.totalSnapshots.Load(),
	}
}

// composeOpaque makes a stream's opaque: the application's 16 bits over
// the vbucket's.
func composeOpaque(vbno, opaqueMSB uint16) uint32 { return uint32(opaqueMSB)<<16 | uint32(vbno) }

func appOpaque(opq uint32) uint16 { return uint16(opq >> 16) }

func vbOpaque(opq uint32) uint16 { return uint16(opq) }

// Close ends the feed: C is closed once the events in flight are dropped.
// The connection stays open; close the Client to end it.
func (feed *UprFeed) Close() {
	feed.mu.Lock()
	feed.state = FeedStateClosed
	feed.mu.Unlock()
	feed.closeOnce.Do(func() { close(feed.closer) })
}

// Closed reports whether the feed is closed.
func (feed *UprFeed) Closed() bool { return feed.getState() == FeedStateClosed }

func (feed *UprFeed) getState() FeedState {
	feed.mu.Lock()
	defer feed.mu.Unlock()
	return feed.state
}

// eventQueue is the queue between the feed's goroutines, bounded in wire
// bytes (an event larger than the bound goes into an empty queue).
type eventQueue struct {
	mu    sync.Mutex
	items []queued
	head  int
	bytes int
	limit int
	done  bool          // the reader has ended
	ready chan struct{} // signalled on push and end
	room  chan struct{} // signalled on pop
}

type queued struct {
	ev   *UprEvent
	size int
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues ev, waiting for room; false if stop closes first.
func (q *eventQueue) push(ev *UprEvent, size int, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+size <= q.limit {
			q.items = append(q.items, queued{ev, size})
			q.bytes += size
			q.mu.Unlock()
			signal(q.ready)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-stop:
			return false
		}
	}
}

// end marks the end of the events: pop returns false once the queue is
// empty.
func (q *eventQueue) end() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	signal(q.ready)
}

// pop returns the next event, waiting for one; false at the end, or if
// stop closes first.
func (q *eventQueue) pop(stop <-chan struct{}) (*UprEvent, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			it := q.items[q.head]
			q.items[q.head] = queued{}
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			}
			q.bytes -= it.size
			q.mu.Unlock()
			signal(q.room)
			return it.ev, true
		}
		done := q.done
		q.mu.Unlock()
		if done {
			return nil, false
		}
		select {
		case <-q.ready:
		case <-stop:
			return nil, false
		}
	}
}
