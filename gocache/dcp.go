package gocache

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"sync"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// DCP, the producer side, as kv_engine defines it (docs/dcp/documentation/):
// DCP_OPEN makes a connection a producer; DCP_CONTROL sets its options;
// DCP_STREAM_REQ opens a stream of one vbucket, answered with the failover
// log (or ROLLBACK with the seqno to roll back to), which then sends a
// disk snapshot of what the vbucket holds from the start seqno (cache.Backfill:
// the newest version of each key, deletions included) and then memory
// snapshots of its changes as they come (cache.Cursor, opened before the
// backfill reads the store, so that nothing falls between them), until the
// end seqno (DCP_STREAM_END) or DCP_CLOSE_STREAM.
//
// Each producer connection has one goroutine (dcpProducer.run) that sends
// everything its streams send, and the answers that must be ordered with
// them (a stream request's success, a close), through Conn.Send: the
// connection's queue is bounded in bytes, so a consumer that does not read
// stalls only its own producer. With connection_buffer_size the producer
// also stops once that many bytes (24 + body of each message but NOOPs)
// are unacknowledged, until DCP_BUFFER_ACKNOWLEDGEMENT. With enable_noop
// it sends a DCP_NOOP when it has sent nothing for set_noop_interval, and
// closes a connection from which nothing has come for two intervals while
// a NOOP is unanswered.
//
// gocache has no disk: a "disk" snapshot reads memory, and no purge seqno
// is kept, so no stream request is rolled back for purged tombstones.

// Limits and defaults.
const (
	// maxDCPName is the longest connection name DCP_OPEN takes.
	maxDCPName = 200
	// dcpMinNoop is the shortest set_noop_interval: kv_engine's connection
	// manager interval.
	dcpMinNoop = time.Second
	// dcpDefaultNoop is the noop interval until set_noop_interval.
	dcpDefaultNoop = 120 * time.Second
	// dcpBatch is how many changes a stream reads from its cursor at a
	// time: the most items of one memory snapshot.
	dcpBatch = 256
	// dcpBackfillPart is how many versions a stream's backfill reads at a
	// time (each read walks the whole cache, holding about twice as many).
	dcpBackfillPart = 4096
)

// DCP_OPEN flags beyond the root package's.
const (
	dcpOpenNotifier         = 0x02
	dcpOpenNoValue          = 0x08
	dcpOpenNoValueDatatype  = 0x40
	dcpOpenDeletedUserXattr = 0x100
	dcpOpenSkipDeletes      = 0x200
	dcpOpenKnown            = 0x01 | 0x04 | dcpOpenNoValue | 0x20 | dcpOpenNoValueDatatype | dcpOpenDeletedUserXattr | dcpOpenSkipDeletes
)

// Stream request flags.
const (
	dcpTakeover   = 0x01
	dcpDiskOnly   = 0x02
	dcpToLatest   = 0x04
	dcpStrictUUID = 0x20
	dcpFromLatest = 0x40
)

// Snapshot marker types.
const (
	markerMemory     = 0x01
	markerDisk       = 0x02
	markerCheckpoint = 0x04
)

// Stream end reasons (dcp_stream_end_status.h).
const (
	streamEndOK     = 0
	streamEndClosed = 1
	streamEndState  = 2
	streamEndSlow   = 4
)

// dcpServer serves the DCP commands and knows every bucket's producers
// by name.
type dcpServer struct {
	h       *handler
	minNoop time.Duration
	mu      sync.Mutex
	names   map[dcpName]*dcpProducer
}

type dcpName struct {
	b    *bucket
	name string
}

// registerDCP registers the DCP commands, and refuses SELECT_BUCKET on a
// DCP connection as kv_engine does. It must come after SELECT_BUCKET's
// registration.
func (h *handler) registerDCP(m *memcached.ServeMux) {
	d := &dcpServer{h: h, minNoop: dcpMinNoop, names: map[dcpName]*dcpProducer{}}
	m.Handle(d, gm.UPR_OPEN, gm.UPR_CONTROL, gm.UPR_FAILOVERLOG, gm.UPR_STREAMREQ,
		gm.UPR_CLOSESTREAM, gm.UPR_BUFFERACK, gm.UPR_NOOP)
	if sel := m.Handler(gm.SELECT_BUCKET); sel != nil {
		m.HandleFunc(func(w memcached.ResponseWriter, req *gm.MCRequest) {
			if state(w).dcp != nil {
				w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
				return
			}
			sel.ServeMC(w, req)
		}, gm.SELECT_BUCKET)
	}
}

var _ memcached.Handler = (*dcpServer)(nil)

// ServeMC serves the DCP commands. Every one but DCP_OPEN and
// DCP_GET_FAILOVER_LOG needs a DCP connection (EINVAL otherwise, as
// kv_engine's validators answer).
func (d *dcpServer) ServeMC(w memcached.ResponseWriter, req *gm.MCRequest) {
	st := state(w)
	p := st.dcp
	switch req.Opcode {
	case gm.UPR_OPEN:
		d.open(w, req)
		return
	case gm.UPR_FAILOVERLOG:
		d.failoverLog(w, req)
		return
	}
	if p == nil {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	p.received()
	switch req.Opcode {
	case gm.UPR_CONTROL:
		d.control(w, req, p)
	case gm.UPR_STREAMREQ:
		d.streamRequest(w, req, p)
	case gm.UPR_CLOSESTREAM:
		d.closeStream(w, req, p)
	case gm.UPR_BUFFERACK:
		if len(req.Extras) != 4 || len(req.Key) != 0 || len(req.Body) != 0 {
			d.h.invalid(w, req)
			return
		}
		p.ack(binary.BigEndian.Uint32(req.Extras))
	case gm.UPR_NOOP:
		// A consumer's NOOP request: answered (a NOOP response from the
		// consumer would have magic 0x81, which the server does not
		// deliver to handlers).
		succeeded(w, req)
	}
}

// open serves DCP_OPEN.
func (d *dcpServer) open(w memcached.ResponseWriter, req *gm.MCRequest) {
	st := state(w)
	if len(req.Extras) != 8 || len(req.Key) == 0 || len(req.Key) > maxDCPName || len(req.Body) != 0 {
		d.h.invalid(w, req)
		return
	}
	if st.dcp != nil {
		w.WriteStatus(req, gm.EINVAL, []byte("The connection is already opened as a DCP connection"))
		return
	}
	flags := binary.BigEndian.Uint32(req.Extras[4:])
	if flags&^dcpOpenKnown != 0 || flags&dcpOpenNotifier != 0 {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	if flags&gm.DCP_PRODUCER == 0 {
		// gocache takes no consumer connections: it has no replicas to feed.
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	b := d.h.bucketFor(w, req)
	if b == nil {
		return
	}
	c := w.Conn()
	ctx, cancel := context.WithCancel(context.Background())
	p := &dcpProducer{
		d: d, c: c, b: b, name: string(req.Key), flags: flags,
		collections:  st.features.Has(gm.FeatureCollections),
		noopInterval: dcpDefaultNoop,
		streams:      map[uint16]*dcpStream{},
		wake:         make(chan struct{}, 1),
		ctx:          ctx, cancel: cancel,
		log: c.Logger().With("dcp", string(req.Key)),
	}
	key := dcpName{b, p.name}
	d.mu.Lock()
	old := d.names[key]
	d.names[key] = p
	d.mu.Unlock()
	if old != nil {
		old.log.Info("dcp: connection name reused, closing the old connection")
		old.kill()
	}
	st.dcp = p
	go p.run()
	succeeded(w, req)
}

// failoverLog serves DCP_GET_FAILOVER_LOG: n × [vbuuid(8), seqno(8)],
// newest first.
func (d *dcpServer) failoverLog(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 0 {
		d.h.invalid(w, req)
		return
	}
	b := d.h.bucketFor(w, req)
	if b == nil {
		return
	}
	if b.cache.State(req.VBucket) == cache.Missing {
		d.h.notMyVBucket(w, req)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: appendFailoverLog(nil, b.cache.FailoverLog(req.VBucket))}
	w.WriteResponse(&res)
}

func appendFailoverLog(dst []byte, log []cache.FailoverEntry) []byte {
	for _, e := range log {
		dst = binary.BigEndian.AppendUint64(dst, e.UUID)
		dst = binary.BigEndian.AppendUint64(dst, e.Seqno)
	}
	return dst
}

// control serves DCP_CONTROL with the keys of kv_engine's producer
// (DcpProducer::control): unknown keys and bad values get EINVAL, known
// features gocache does not have NOT_SUPPORTED.
func (d *dcpServer) control(w memcached.ResponseWriter, req *gm.MCRequest, p *dcpProducer) {
	if len(req.Extras) != 0 || len(req.Key) == 0 {
		d.h.invalid(w, req)
		return
	}
	key, value := string(req.Key), string(req.Body)
	status := gm.SUCCESS
	p.mu.Lock()
	switch key {
	case "connection_buffer_size":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			status = gm.EINVAL
			break
		}
		p.bufSize = uint32(n)
	case "enable_noop":
		p.noop = value == "true"
	case "set_noop_interval":
		f, err := strconv.ParseFloat(value, 32)
		iv := time.Duration(f * float64(time.Second))
		if err != nil || iv < d.minNoop {
			status = gm.EINVAL
			break
		}
		p.noopInterval = iv
	case "set_priority":
		if value != "high" && value != "medium" && value != "low" {
			status = gm.EINVAL
		}
	case "send_stream_end_on_client_close_stream":
		if value == "true" {
			p.streamEndOnClose = true // one way, as kv_engine
		}
	case "enable_expiry_opcode":
		// Expirations carry delete times: only with the open flag.
		p.expiryOpcode = value == "true" && p.flags&gm.DCP_OPEN_INCLUDE_DELETE_TIMES != 0
	case "supports_cursor_dropping", "supports_cursor_dropping_vulcan":
		p.cursorDropping = value == "true"
	case "supports_hifi_MFU", "consumer_name":
	case "backfill_order":
		if value != "round-robin" && value != "sequential" {
			status = gm.EINVAL
		}
	case "enable_out_of_order_snapshots":
		// Allowed, never used: every snapshot is in seqno order.
		if value != "true" && value != "true_with_seqno_advanced" {
			status = gm.EINVAL
		}
	case "include_deleted_user_xattrs":
		if value != "true" || p.flags&dcpOpenDeletedUserXattr == 0 {
			status = gm.EINVAL
		}
	case "v7_dcp_status_codes", "flatbuffers_system_events":
		if value != "true" {
			status = gm.EINVAL
		}
	case "max_marker_version":
		// A maximum: gocache sends version 1 markers.
		switch {
		case value != "2.2":
			status = gm.EINVAL
		case !p.collections:
			status = gm.NOT_SUPPORTED
		}
	case "force_value_compression":
		// Needs Snappy, which gocache never sends.
		status = gm.EINVAL
	case "stream_buffer_size", "enable_stream_id", "enable_sync_writes", "change_streams", "cache_transfer":
		status = gm.NOT_SUPPORTED
	default:
		status = gm.EINVAL
	}
	p.mu.Unlock()
	if status != gm.SUCCESS {
		p.log.Info("dcp: control refused", "key", key, "value", value, "status", status.String())
	}
	p.notify()
	w.WriteStatus(req, status, nil)
}

// streamRequest serves DCP_STREAM_REQ: validation and rollback as
// kv_engine's DcpProducer::streamRequest orders them; a stream that can
// start is handed to the producer's goroutine, which answers it.
func (d *dcpServer) streamRequest(w memcached.ResponseWriter, req *gm.MCRequest, p *dcpProducer) {
	if len(req.Extras) != 48 || len(req.Key) != 0 {
		d.h.invalid(w, req)
		return
	}
	if len(req.Body) != 0 {
		// A collections filter: not done yet.
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	e := req.Extras
	flags := binary.BigEndian.Uint32(e[0:])
	start, end := binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint64(e[16:])
	vbuuid := binary.BigEndian.Uint64(e[24:])
	snapStart, snapEnd := binary.BigEndian.Uint64(e[32:]), binary.BigEndian.Uint64(e[40:])
	c := p.b.cache
	vb := req.VBucket
	if flags&dcpTakeover != 0 {
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	if c.State(vb) != cache.Active {
		d.h.notMyVBucket(w, req)
		return
	}
	p.mu.Lock()
	_, exists := p.streams[vb]
	p.mu.Unlock()
	if exists {
		w.WriteStatus(req, gm.KEY_EEXISTS, nil)
		return
	}
	// The cursor first: every change after high reaches it.
	cur, err := c.Changes(vb)
	if err != nil {
		d.h.notMyVBucket(w, req)
		return
	}
	high, _ := c.HighSeqno(vb)
	log := c.FailoverLog(vb)
	if flags&dcpFromLatest != 0 {
		start, snapStart, snapEnd = high, high, high
		if vbuuid == 0 && len(log) > 0 {
			vbuuid = log[0].UUID
		}
	}
	if flags&(dcpToLatest|dcpDiskOnly) != 0 {
		end = high
	}
	fail := func(status gm.Status, body []byte) {
		cur.Close()
		w.WriteStatus(req, status, body)
	}
	if start > end || !(snapStart <= start && start <= snapEnd) {
		p.log.Info("dcp: stream request out of range", "vb", vb, "start", start, "end", end, "snap_start", snapStart, "snap_end", snapEnd)
		fail(gm.ERANGE, nil)
		return
	}
	if rollback, ok := needsRollback(log, start, high, vbuuid, snapStart, snapEnd, flags&dcpStrictUUID != 0); ok {
		p.log.Info("dcp: stream request needs rollback", "vb", vb, "start", start, "vbuuid", vbuuid, "rollback", rollback)
		fail(gm.ROLLBACK, binary.BigEndian.AppendUint64(nil, rollback))
		return
	}
	if start > high {
		fail(gm.ERANGE, nil)
		return
	}
	s := &dcpStream{vb: vb, opaque: req.Opaque, end: end, sent: start, snapEnd: start, cur: cur,
		backfillTo: high}
	s.resp = &gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: appendFailoverLog(nil, log)}
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		fail(gm.TMPFAIL, nil)
		return
	}
	if _, exists := p.streams[vb]; exists {
		p.mu.Unlock()
		fail(gm.KEY_EEXISTS, nil)
		return
	}
	p.streams[vb] = s
	p.order = append(p.order, s)
	if !p.streamed {
		p.streamed = true
		p.lastRecv = time.Now()
	}
	p.mu.Unlock()
	p.notify()
}

// needsRollback is kv_engine's FailoverTable::needsRollback without purge
// seqnos: the seqno to roll back to, and whether the consumer must.
func needsRollback(log []cache.FailoverEntry, start, high, vbuuid, snapStart, snapEnd uint64, strict bool) (uint64, bool) {
	if start == 0 && (!strict || vbuuid == 0) {
		return 0, false
	}
	upper := high
	found := false
	for i, e := range log { // newest first
		if e.UUID == vbuuid {
			if i > 0 {
				upper = log[i-1].Seqno
			}
			found = true
			break
		}
	}
	if !found {
		return 0, true
	}
	if start == snapStart {
		snapEnd = start
	}
	if snapEnd <= upper {
		return 0, false
	}
	if start == snapEnd {
		snapStart = start
	}
	if upper < snapStart {
		return upper, true
	}
	return snapStart, true
}

// closeStream serves DCP_CLOSE_STREAM: the producer's goroutine answers
// it, after whatever the stream had sent, and ends the stream.
func (d *dcpServer) closeStream(w memcached.ResponseWriter, req *gm.MCRequest, p *dcpProducer) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 0 {
		d.h.invalid(w, req)
		return
	}
	p.mu.Lock()
	s := p.streams[req.VBucket]
	if s != nil {
		delete(p.streams, req.VBucket)
		s.closing = true
		s.closeResp = &gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
	}
	p.mu.Unlock()
	if s == nil {
		w.WriteStatus(req, gm.KEY_ENOENT, nil)
		return
	}
	p.notify()
}

// dcpProducer is one producer connection. Its handlers (on the
// connection's goroutine) and its own goroutine (run) share it under mu;
// only run sends.
type dcpProducer struct {
	d           *dcpServer
	c           *memcached.Conn
	b           *bucket
	name        string
	flags       uint32
	collections bool
	log         *slog.Logger
	ctx         context.Context
	cancel      context.CancelFunc
	wake        chan struct{}

	mu               sync.Mutex
	streams          map[uint16]*dcpStream // by vbucket, open ones
	order            []*dcpStream          // every stream run has to visit, open or closing
	bufSize          uint32                // connection_buffer_size; 0: no flow control
	unacked          uint32
	noop             bool
	noopInterval     time.Duration
	streamEndOnClose bool
	expiryOpcode     bool
	cursorDropping   bool
	dead             bool      // run has ended
	streamed         bool      // a stream was requested: noops may start
	lastRecv         time.Time // the consumer's last message
}

// dcpStream is one vbucket's stream. Its fields are run's, but closing
// and closeResp, guarded by the producer's lock.
type dcpStream struct {
	vb     uint16
	opaque uint32
	end    uint64
	cur    *cache.Cursor
	resp   *gm.MCResponse // the stream request's success, to send first

	// backfillTo is the high seqno to backfill to, past snapEnd until the
	// backfill starts; bfNext to bfTo what it has still to read, in parts;
	// backfill the versions read and not sent.
	backfillTo   uint64
	bfNext, bfTo uint64
	backfill     []cache.Version
	// sent is the seqno of the last change sent (or the start);
	// snapEnd the end of the last snapshot marked.
	sent, snapEnd uint64
	changes       []cache.Change // read from the cursor, not sent
	pending       []*gm.MCRequest
	ended         bool

	closing   bool
	closeResp *gm.MCResponse
}

func (p *dcpProducer) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// received notes a message from the consumer.
func (p *dcpProducer) received() {
	p.mu.Lock()
	p.lastRecv = time.Now()
	p.mu.Unlock()
}

// ack serves a buffer acknowledgement.
func (p *dcpProducer) ack(n uint32) {
	p.mu.Lock()
	p.unacked -= min(n, p.unacked)
	p.mu.Unlock()
	p.notify()
}

// kill ends the producer and closes its connection (a name reused, a
// dead consumer).
func (p *dcpProducer) kill() {
	p.cancel()
	if nc := p.c.NetConn(); nc != nil {
		nc.Close()
	}
}

var errProducerEnded = errors.New("gocache: dcp producer ended")

// run sends what the producer's streams send, and its noops, until the
// connection ends.
func (p *dcpProducer) run() {
	defer p.cleanup()
	lastSent := time.Now()
	var noopSentAt time.Time
	noopPending := false
	var opaque uint32
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var cases []reflect.SelectCase
	for {
		sent, blocked, err := p.step()
		if err != nil || p.ctx.Err() != nil {
			return
		}
		now := time.Now()
		if sent {
			lastSent = now
		}
		p.mu.Lock()
		noop, iv, streamed, lastRecv := p.noop, p.noopInterval, p.streamed, p.lastRecv
		p.mu.Unlock()
		if noopPending && lastRecv.After(noopSentAt) {
			noopPending = false
		}
		wait := time.Hour
		if noop && streamed {
			if noopPending && now.Sub(lastRecv) >= 2*iv {
				p.log.Warn("dcp: closing a connection that answers no noop", "interval", iv, "silent", now.Sub(lastRecv))
				p.kill()
				return
			}
			if !noopPending && now.Sub(lastSent) >= iv {
				opaque++
				if err := p.c.Send(p.ctx, &gm.MCRequest{Opcode: gm.UPR_NOOP, Opaque: opaque}); err != nil {
					return
				}
				lastSent, noopSentAt, noopPending = now, now, true
			}
			if noopPending {
				wait = 2*iv - now.Sub(lastRecv)
			} else {
				wait = iv - now.Sub(lastSent)
			}
			wait = max(wait, time.Millisecond)
		}
		timer.Reset(wait)
		cases = append(cases[:0],
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.wake)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.c.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		if !blocked {
			// Every stream has sent all it had: wait for changes.
			p.mu.Lock()
			order := append([]*dcpStream(nil), p.order...)
			p.mu.Unlock()
			for _, s := range order {
				if s.cur != nil {
					cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.cur.Ready())})
				}
			}
		}
		if i, _, _ := reflect.Select(cases); i == 2 {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// cleanup ends every stream when the producer ends.
func (p *dcpProducer) cleanup() {
	p.cancel()
	p.mu.Lock()
	p.dead = true
	order := p.order
	p.order, p.streams = nil, map[uint16]*dcpStream{}
	p.mu.Unlock()
	for _, s := range order {
		if s.cur != nil {
			s.cur.Close()
		}
	}
	key := dcpName{p.b, p.name}
	p.d.mu.Lock()
	if p.d.names[key] == p {
		delete(p.d.names, key)
	}
	p.d.mu.Unlock()
}

// dcpTurn is how many messages a stream sends before the next one's turn.
const dcpTurn = 64

// step sends what the streams have, in turns, until none has more or flow
// control stops it (blocked). sent says whether anything was sent.
func (p *dcpProducer) step() (sent, blocked bool, err error) {
	for {
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			return sent, false, errProducerEnded
		}
		order := append([]*dcpStream(nil), p.order...)
		p.mu.Unlock()
		progress := false
		for _, s := range order {
			// A blocked stream still sends its answers (a stream
			// request's, a close's), which flow control does not count.
			n, blk, err := p.turn(s)
			if err != nil {
				return sent, false, err
			}
			if n > 0 {
				sent, progress = true, true
			}
			blocked = blocked || blk
		}
		if blocked || !progress {
			return sent, blocked, nil
		}
	}
}

// turn sends up to dcpTurn messages of stream s.
func (p *dcpProducer) turn(s *dcpStream) (n int, blocked bool, err error) {
	p.mu.Lock()
	closing, closeResp := s.closing, s.closeResp
	endOnClose := p.streamEndOnClose
	p.mu.Unlock()
	if closing {
		p.finish(s)
		if s.resp != nil {
			if err := p.c.Send(p.ctx, s.resp); err != nil {
				return 0, false, err
			}
		}
		if err := p.c.Send(p.ctx, closeResp); err != nil {
			return 0, false, err
		}
		if endOnClose {
			if err := p.send(s, p.streamEnd(s, streamEndClosed)); err != nil {
				return 1, false, err
			}
		}
		return 1, false, nil
	}
	if s.resp != nil {
		if err := p.c.Send(p.ctx, s.resp); err != nil {
			return 0, false, err
		}
		s.resp = nil
		n++
	}
	for ; n < dcpTurn && !s.ended; n++ {
		p.mu.Lock()
		full := p.bufSize != 0 && p.unacked >= p.bufSize
		p.mu.Unlock()
		if full {
			return n, true, nil
		}
		pkt := p.next(s)
		if pkt == nil {
			break
		}
		if err := p.send(s, pkt); err != nil {
			return n, false, err
		}
	}
	if s.ended {
		p.finish(s)
	}
	return n, false, nil
}

// send sends a stream message, counting it for flow control.
func (p *dcpProducer) send(s *dcpStream, pkt *gm.MCRequest) error {
	p.mu.Lock()
	if p.bufSize != 0 {
		p.unacked += uint32(pkt.Size())
	}
	p.mu.Unlock()
	return p.c.Send(p.ctx, pkt)
}

// finish removes a stream that ended or was closed.
func (p *dcpProducer) finish(s *dcpStream) {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	p.mu.Lock()
	for i, o := range p.order {
		if o == s {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	if p.streams[s.vb] == s {
		delete(p.streams, s.vb)
	}
	p.mu.Unlock()
}

// next returns the stream's next message, nil if it has none now: the
// backfill's marker and versions, then the cursor's changes, a marker
// before each batch, and the stream end once the end seqno is covered.
func (p *dcpProducer) next(s *dcpStream) *gm.MCRequest {
	c := p.b.cache
	for {
		switch {
		case s.backfillTo > s.snapEnd && s.snapEnd < s.end:
			from, to := s.snapEnd, min(s.backfillTo, s.end)
			s.bfNext, s.bfTo, s.snapEnd = from+1, to, to
			if !p.readBackfill(s) {
				continue
			}
			return p.marker(s, from, to, markerDisk|markerCheckpoint)
		case len(s.backfill) == 0 && s.bfNext <= s.bfTo:
			p.readBackfill(s)
			continue
		case len(s.backfill) > 0:
			v := s.backfill[0]
			s.backfill[0] = cache.Version{}
			s.backfill = s.backfill[1:]
			s.sent = v.Seqno
			kind := cache.Mutated
			if v.Deleted {
				kind = cache.Deleted
			}
			if pkt := p.doc(s, kind, v.Key, &v.Item, v.DeleteTime); pkt != nil {
				return pkt
			}
		case len(s.changes) > 0:
			ch := s.changes[0]
			s.changes[0] = cache.Change{}
			s.changes = s.changes[1:]
			s.sent = ch.Seqno
			if pkt := p.doc(s, ch.Kind, ch.Key, &ch.Item, time.Time{}); pkt != nil {
				return pkt
			}
		case s.snapEnd >= s.end:
			s.ended = true
			return p.streamEnd(s, streamEndOK)
		case c.State(s.vb) != cache.Active:
			s.ended = true
			return p.streamEnd(s, streamEndState)
		default:
			return p.readCursor(s)
		}
	}
}

// readBackfill reads the stream's next part of its backfill, and reports
// whether it has any version.
func (p *dcpProducer) readBackfill(s *dcpStream) bool {
	var err error
	s.backfill, err = p.b.cache.Backfill(s.vb, s.bfNext, s.bfTo, dcpBackfillPart, s.backfill[:0])
	switch {
	case err != nil || len(s.backfill) < dcpBackfillPart:
		s.bfNext = s.bfTo + 1
	default:
		s.bfNext = s.backfill[len(s.backfill)-1].Seqno + 1
	}
	return len(s.backfill) > 0
}

// readCursor reads the next batch of changes of the stream's cursor and
// returns its marker, nil if there is none.
func (p *dcpProducer) readCursor(s *dcpStream) *gm.MCRequest {
	c := p.b.cache
	changes, err := s.cur.Next(s.changes[:0], dcpBatch)
	if errors.Is(err, cache.ErrChangesLost) {
		s.cur.Close()
		s.cur = nil
		if !p.cursorDropping {
			p.log.Warn("dcp: stream too slow, changes lost", "vb", s.vb, "sent", s.sent)
			s.ended = true
			return p.streamEnd(s, streamEndSlow)
		}
		// Start again from what is stored, as kv_engine backfills a
		// stream whose cursor it dropped.
		p.log.Info("dcp: changes lost, backfilling again", "vb", s.vb, "sent", s.sent)
		cur, err := c.Changes(s.vb)
		if err != nil {
			s.ended = true
			return p.streamEnd(s, streamEndState)
		}
		s.cur = cur
		s.backfillTo, _ = c.HighSeqno(s.vb)
		return nil // next turn backfills
	}
	if err != nil {
		s.ended = true
		return p.streamEnd(s, streamEndState)
	}
	// Drop what the backfill covered and what is past the end.
	i := 0
	for i < len(changes) && changes[i].Seqno <= s.snapEnd {
		i++
	}
	changes = changes[i:]
	j := 0
	for j < len(changes) && changes[j].Seqno <= s.end {
		j++
	}
	changes = changes[:j]
	if len(changes) == 0 {
		s.changes = s.changes[:0]
		return nil
	}
	s.changes = changes
	from, to := changes[0].Seqno, changes[len(changes)-1].Seqno
	s.snapEnd = to
	return p.marker(s, from, to, markerMemory|markerCheckpoint)
}

// marker returns a snapshot marker (version 1): start, end, type.
func (p *dcpProducer) marker(s *dcpStream, start, end uint64, typ uint32) *gm.MCRequest {
	ex := make([]byte, 20)
	binary.BigEndian.PutUint64(ex[0:], start)
	binary.BigEndian.PutUint64(ex[8:], end)
	binary.BigEndian.PutUint32(ex[16:], typ)
	return &gm.MCRequest{Opcode: gm.UPR_SNAPSHOT, VBucket: s.vb, Opaque: s.opaque, Extras: ex}
}

// streamEnd returns a stream end with reason.
func (p *dcpProducer) streamEnd(s *dcpStream, reason uint32) *gm.MCRequest {
	return &gm.MCRequest{Opcode: gm.UPR_STREAMEND, VBucket: s.vb, Opaque: s.opaque,
		Extras: binary.BigEndian.AppendUint32(nil, reason)}
}

// doc returns the message of a document's change, nil for one the
// connection does not get (another collection than the default one for a
// connection that is not collections-aware; deletions with skip deletes).
func (p *dcpProducer) doc(s *dcpStream, kind cache.ChangeKind, key []byte, it *cache.Item, deleted time.Time) *gm.MCRequest {
	cid, name, ok := cache.SplitKey(key)
	if !ok || !p.collections && cid != 0 {
		return nil
	}
	if !p.collections {
		key = name
	}
	pkt := &gm.MCRequest{VBucket: s.vb, Opaque: s.opaque, Cas: it.CAS, Key: key}
	if kind == cache.Mutated {
		ex := make([]byte, 31)
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		binary.BigEndian.PutUint32(ex[16:], it.Flags)
		if !it.Expires.IsZero() {
			binary.BigEndian.PutUint32(ex[20:], uint32(it.Expires.Unix()))
		}
		pkt.Opcode, pkt.Extras = gm.UPR_MUTATION, ex
		pkt.Body, pkt.DataType = p.value(it)
		return pkt
	}
	if p.flags&dcpOpenSkipDeletes != 0 {
		return nil
	}
	if deleted.IsZero() {
		deleted = time.Now()
	}
	delTime := uint32(deleted.Unix())
	switch {
	case kind == cache.Expired && p.expiryOpcode:
		ex := make([]byte, 20)
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		binary.BigEndian.PutUint32(ex[16:], delTime)
		pkt.Opcode, pkt.Extras = gm.UPR_EXPIRATION, ex
	case p.flags&gm.DCP_OPEN_INCLUDE_DELETE_TIMES != 0:
		ex := make([]byte, 21)
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		binary.BigEndian.PutUint32(ex[16:], delTime)
		pkt.Opcode, pkt.Extras = gm.UPR_DELETION, ex
	default:
		ex := make([]byte, 18)
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		pkt.Opcode, pkt.Extras = gm.UPR_DELETION, ex
	}
	// A deleted document's value is its xattrs, for consumers that take
	// them.
	if p.flags&gm.DCP_OPEN_INCLUDE_XATTRS != 0 && p.flags&dcpOpenNoValue == 0 && it.Datatype&gm.DatatypeFlagXattrs != 0 {
		pkt.Body, pkt.DataType = it.Value, gm.DatatypeFlagXattrs
	}
	return pkt
}

// value returns a live document's value and datatype as the connection
// takes them: without its xattrs unless it opened with them, without a
// value with no value (keeping the datatype if it asked).
func (p *dcpProducer) value(it *cache.Item) ([]byte, uint8) {
	dt := it.Datatype & (gm.DatatypeFlagJSON | gm.DatatypeFlagXattrs)
	body := it.Value
	if p.flags&gm.DCP_OPEN_INCLUDE_XATTRS == 0 && dt&gm.DatatypeFlagXattrs != 0 {
		body = docBody(it)
		dt &^= gm.DatatypeFlagXattrs
	}
	if p.flags&(dcpOpenNoValue|dcpOpenNoValueDatatype) != 0 {
		if p.flags&dcpOpenNoValueDatatype == 0 {
			dt = 0
		}
		return nil, dt
	}
	return body, dt
}

// ServeMCResponse takes a client's responses: a DCP consumer's answers to
// the producer's NOOPs are its signs of life. Other responses are ignored.
func (h *handler) ServeMCResponse(c *memcached.Conn, res *gm.MCResponse) {
	st, ok := c.Data.(*connState)
	if !ok || st.dcp == nil {
		return
	}
	st.dcp.received()
}
