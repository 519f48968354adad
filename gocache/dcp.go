package gocache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	flatbuffers "github.com/google/flatbuffers/go"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// DCP, the producer side, as kv_engine defines it (docs/dcp/documentation/):
// DCP_OPEN makes a connection a producer; DCP_CONTROL sets its options;
// DCP_STREAM_REQ opens a stream of one vbucket, answered with the failover
// log (or ROLLBACK with the seqno to roll back to), which then sends a
// disk snapshot of what the vbucket holds from the start seqno (the
// newest version of each key, deletions included) and then memory
// snapshots of its changes as they come (cache.Cursor, opened before the
// backfill reads the store, so that nothing falls between them), until the
// end seqno (DCP_STREAM_END) or DCP_CLOSE_STREAM. A stream leaves the
// producer before its STREAM_END is sent: a request for the same stream
// that follows the end is served.
//
// On a collections-aware connection (HELLO Collections) a stream carries
// every collection's documents, keys with their collection id, and the
// system events of the collections manifest (dcp_events.go), or, with
// the stream request's JSON value, those of some collections or one scope
// (dcp_filter.go); a filtered stream that skips the end of a snapshot
// sends DCP_SEQNO_ADVANCED; with enable_out_of_order_snapshots, a first
// backfill of one collection is an OSO snapshot (DCP_OSO_SNAPSHOT begin,
// documents in key order, end); with max_marker_version=2.2 disk snapshot
// markers are version 2.2, with the purge seqno. With enable_stream_id a
// connection has streams by (vbucket, stream id), several per vbucket,
// each message tagged with a stream-id frame (magic 0x08).
//
// Each producer connection has one goroutine (dcpProducer.run) that sends
// everything its streams send, and the answers that must be ordered with
// them (a stream request's success, a close), through Conn.Send, in
// batches of about 64 KiB: the connection's queue is bounded in bytes, so
// a consumer that does not read stalls only its own producer. It visits
// only the streams that are ready (a cursor's callback, cache.ChangesFunc,
// queues its stream and wakes the goroutine), and reads the backfills of
// all the streams that wait for one in one walk of the cache
// (cache.BackfillMany, in parts bounded in total: dcpBackfillBudget). With connection_buffer_size the producer
// also stops once that many bytes (24 + body of each message but NOOPs)
// are unacknowledged, until DCP_BUFFER_ACKNOWLEDGEMENT. With enable_noop
// it sends a DCP_NOOP when it has sent nothing for set_noop_interval, and
// closes a connection from which nothing has come for two intervals while
// a NOOP is unanswered.
//
// gocache has no disk: a "disk" snapshot reads memory. Each vbucket keeps
// a purge seqno (cache.PurgeSeqno: tombstones purged, removals that left
// none), and a stream request that resumes from below it is rolled back to
// 0, as kv_engine rolls back a consumer that could miss purged deletions.

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
	// dcpBackfillPart is the most versions a stream's backfill reads in
	// one walk of the cache (see dcpBackfillBudget).
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

// Stream request flags (dcp_add_stream_flags.h).
const (
	dcpTakeover      = 0x01
	dcpDiskOnly      = 0x02
	dcpToLatest      = 0x04
	dcpNoValueFlag   = 0x08 // retired for DCP_OPEN's no value: refused, as kv_engine
	dcpActiveOnly    = 0x10 // gocache streams active vbuckets only anyway
	dcpStrictUUID    = 0x20
	dcpFromLatest    = 0x40
	dcpIgnorePurged  = 0x80
	dcpCacheTransfer = 0x100
	dcpStreamFlags   = dcpTakeover | dcpDiskOnly | dcpToLatest | dcpActiveOnly | dcpStrictUUID | dcpFromLatest | dcpIgnorePurged | dcpCacheTransfer
)

// Snapshot marker types.
const (
	markerMemory     = 0x01
	markerDisk       = 0x02
	markerCheckpoint = 0x04
)

// OSO snapshot flags.
const (
	osoStart = 0x01
	osoEnd   = 0x02
)

// Stream end reasons (dcp_stream_end_status.h).
const (
	streamEndOK          = 0
	streamEndClosed      = 1
	streamEndState       = 2
	streamEndSlow        = 4
	streamEndRollback    = 6
	streamEndFilterEmpty = 7
)

// enable_out_of_order_snapshots values.
const (
	osoOff = iota
	osoOn
	osoWithSeqnoAdvanced
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
		snappy:       st.features.Has(gm.FeatureSnappy),
		noopInterval: dcpDefaultNoop,
		streams:      map[dcpStreamKey]*dcpStream{},
		wake:         make(chan struct{}, 1),
		ctx:          ctx, cancel: cancel,
		log: c.Logger().With("dcp", string(req.Key)),
	}
	p.stats.created = time.Now()
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
		p.bufSize.Store(uint32(n))
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
		// Accepted: one goroutine per producer, no priorities to set.
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
	case "supports_hifi_MFU":
		// Accepted: gocache sends no MFU values.
	case "consumer_name":
		if value == "" {
			status = gm.EINVAL
		}
	case "backfill_order":
		// Accepted: a producer's streams backfill in turns, whichever.
		if value != "round-robin" && value != "sequential" {
			status = gm.EINVAL
		}
	case "enable_out_of_order_snapshots":
		// One way, as kv_engine.
		switch value {
		case "true":
			p.oso = osoOn
		case "true_with_seqno_advanced":
			p.oso = osoWithSeqnoAdvanced
		default:
			status = gm.EINVAL
		}
	case "include_deleted_user_xattrs":
		if value != "true" || p.flags&dcpOpenDeletedUserXattr == 0 {
			status = gm.EINVAL
		}
	case "v7_dcp_status_codes":
		// Failed responses that concern one stream (KEY_EEXISTS,
		// KEY_ENOENT) then close the connection too (see response).
		if value != "true" {
			status = gm.EINVAL
			break
		}
		p.v7Status.Store(true)
	case "flatbuffers_system_events":
		if value != "true" {
			status = gm.EINVAL
			break
		}
		p.flatbuffers = true
	case "enable_stream_id":
		// One way, as kv_engine; streams are then by stream id.
		if value != "true" {
			status = gm.EINVAL
			break
		}
		p.streamIDs = true
	case "max_marker_version":
		// Disk snapshot markers of version 2.2, with the purge seqno:
		// only on a collections-aware connection, as kv_engine.
		switch {
		case value != "2.2":
			status = gm.EINVAL
		case !p.collections:
			status = gm.NOT_SUPPORTED
		default:
			p.markerV22 = true
		}
	case "force_value_compression":
		// Values sent Snappy-compressed: only to a connection that
		// negotiated Snappy, as kv_engine.
		if !p.snappy {
			status = gm.EINVAL
			break
		}
		p.compress = value == "true"
	case "stream_buffer_size", "enable_sync_writes", "change_streams", "cache_transfer":
		// No per-stream buffers, no pending (synchronous) writes to send,
		// no history kept, no cache transfer.
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
	if len(req.Body) != 0 && !p.collections {
		// A value needs a collections-aware connection (kv_engine's
		// validator); the connection is left open.
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	e := req.Extras
	flags := binary.BigEndian.Uint32(e[0:])
	start, end := binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint64(e[16:])
	vbuuid := binary.BigEndian.Uint64(e[24:])
	snapStart, snapEnd := binary.BigEndian.Uint64(e[32:]), binary.BigEndian.Uint64(e[40:])
	c := p.b.cache
	vb := req.VBucket
	if flags&^dcpStreamFlags != 0 {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	if flags&(dcpTakeover|dcpCacheTransfer) != 0 {
		// No vbucket moves, no cache transfer.
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	if c.State(vb) != cache.Active {
		d.h.notMyVBucket(w, req)
		return
	}
	m := p.b.manifest.Load()
	opt, err := parseStreamValue(req.Body, p.collections, m)
	switch {
	case errors.Is(err, errFilterUnknownCollection):
		d.h.unknownCollection(w, req, p.b)
		return
	case errors.Is(err, errFilterUnknownScope):
		d.h.extendedBody(w, req, gm.UNKNOWN_SCOPE, fmt.Appendf(nil, `{"manifest_uid":"%x"}`, m.uid))
		return
	case errors.Is(err, errFilterStreamID):
		w.WriteStatus(req, gm.DCP_STREAMID_INVALID, nil)
		return
	case err != nil:
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	// The stream id: the value's "sid", or a stream-id frame.
	fsid, hasFrame, ok := requestStreamID(req)
	switch {
	case !ok || hasFrame && opt.hasSID && fsid != opt.sid:
		d.h.invalid(w, req)
		return
	case hasFrame:
		opt.sid, opt.hasSID = fsid, fsid != 0
	}
	p.mu.Lock()
	streamIDs := p.streamIDs
	key := dcpStreamKey{vb, opt.sid}
	_, exists := p.streams[key]
	p.mu.Unlock()
	if opt.hasSID != streamIDs {
		// Required with enable_stream_id, refused without.
		w.WriteStatus(req, gm.DCP_STREAMID_INVALID, nil)
		return
	}
	if exists {
		w.WriteStatus(req, gm.KEY_EEXISTS, nil)
		return
	}
	// The cursor first: every change after high reaches it. Its changes
	// make the stream ready once it is registered.
	var hook atomic.Pointer[dcpStream]
	onReady := func() {
		if s := hook.Load(); s != nil {
			p.ready(s)
		}
	}
	cur, err := c.ChangesFunc(vb, onReady)
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
	fail := func(status gm.Status, body []byte) {
		cur.Close()
		w.WriteStatus(req, status, body)
	}
	if start > end || !(snapStart <= start && start <= snapEnd) {
		p.log.Info("dcp: stream request out of range", "vb", vb, "start", start, "end", end, "snap_start", snapStart, "snap_end", snapEnd)
		fail(gm.ERANGE, nil)
		return
	}
	rb := rollbackCheck{log: log, start: start, high: high, vbuuid: vbuuid, snapStart: snapStart, snapEnd: snapEnd,
		strict: flags&dcpStrictUUID != 0, purge: c.PurgeSeqno(vb), remotePurge: opt.remotePurge}
	if flags&dcpIgnorePurged != 0 {
		rb.purge = 0
	}
	if opt.filter.filtered() {
		rb.collHigh, rb.hasCollHigh = opt.filter.highSeqno(c, vb), true
	}
	if rollback, ok := rb.needed(); ok {
		p.log.Info("dcp: stream request needs rollback", "vb", vb, "start", start, "vbuuid", vbuuid, "purge", rb.purge, "rollback", rollback)
		fail(gm.ROLLBACK, binary.BigEndian.AppendUint64(nil, rollback))
		return
	}
	switch {
	case flags&dcpDiskOnly != 0:
		end = high
	case flags&dcpToLatest != 0 && opt.filter.mode == filterPassthrough:
		end = high
	case flags&dcpToLatest != 0:
		end = opt.filter.highSeqno(c, vb)
	}
	if start > end || start > high {
		fail(gm.ERANGE, nil)
		return
	}
	s := &dcpStream{vb: vb, sid: opt.sid, opaque: req.Opaque, end: end, sent: start, snapEnd: start, read: start, cur: cur,
		backfillTo: high, filter: opt.filter, frames: streamIDFrames(opt.sid), initial: start == 0, onReady: onReady,
		ignorePurged: flags&dcpIgnorePurged != 0}
	s.oso = p.oso != osoOff && start == 0 && high > 0 && end >= high && opt.filter.oso()
	s.resp = &gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: appendFailoverLog(nil, log)}
	s.stats.requested(flags, start, vbuuid, snapStart, snapEnd, high > start && start < end)
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		fail(gm.TMPFAIL, nil)
		return
	}
	if _, exists := p.streams[key]; exists {
		p.mu.Unlock()
		fail(gm.KEY_EEXISTS, nil)
		return
	}
	p.streams[key] = s
	p.order = append(p.order, s)
	if !p.streamed {
		p.streamed = true
		p.lastRecv = time.Now()
	}
	p.mu.Unlock()
	hook.Store(s)
	p.ready(s)
}

// rollbackCheck is what kv_engine's FailoverTable::needsRollback weighs.
type rollbackCheck struct {
	log                                     []cache.FailoverEntry
	start, high, vbuuid, snapStart, snapEnd uint64
	strict                                  bool
	// purge is the vbucket's purge seqno (0 with ignore purged
	// tombstones), remotePurge the one the consumer last saw ("purge_seqno"
	// of the request's value).
	purge, remotePurge uint64
	// collHigh is, for a filtered stream (hasCollHigh), the high seqno
	// of its collections.
	collHigh    uint64
	hasCollHigh bool
}

// needed returns the seqno to roll back to, and whether the consumer
// must.
func (r *rollbackCheck) needed() (uint64, bool) {
	if r.start == 0 && (!r.strict || r.vbuuid == 0) {
		return 0, false
	}
	// A consumer behind the purge seqno may have missed deletions: from
	// 0, unless it has all of its collections' changes, or saw this
	// purge seqno already.
	collectionsDone := r.hasCollHigh && r.start >= r.collHigh && r.collHigh <= r.purge
	if r.start < r.purge && r.start != 0 && !collectionsDone && r.remotePurge != r.purge {
		return 0, true
	}
	return needsRollback(r.log, r.start, r.high, r.vbuuid, r.snapStart, r.snapEnd, r.strict)
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
// it, after whatever the stream had sent, and ends the stream. With
// enable_stream_id the request names the stream with a stream-id frame.
func (d *dcpServer) closeStream(w memcached.ResponseWriter, req *gm.MCRequest, p *dcpProducer) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 0 {
		d.h.invalid(w, req)
		return
	}
	sid, hasSID, ok := requestStreamID(req)
	if !ok {
		d.h.invalid(w, req)
		return
	}
	p.mu.Lock()
	if hasSID != p.streamIDs || hasSID && sid == 0 {
		p.mu.Unlock()
		w.WriteStatus(req, gm.DCP_STREAMID_INVALID, nil)
		return
	}
	s := p.streams[dcpStreamKey{req.VBucket, sid}]
	others := false
	if s != nil {
		delete(p.streams, dcpStreamKey{req.VBucket, sid})
		s.closing = true
		s.closeResp = &gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
	} else if hasSID {
		for k := range p.streams {
			others = others || k.vb == req.VBucket
		}
	}
	p.mu.Unlock()
	switch {
	case s == nil && others:
		// The vbucket has streams, none with this id.
		w.WriteStatus(req, gm.DCP_STREAMID_INVALID, nil)
	case s == nil:
		w.WriteStatus(req, gm.KEY_ENOENT, nil)
	default:
		p.push(s)
	}
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
	snappy      bool // the connection negotiated Snappy
	log         *slog.Logger
	ctx         context.Context
	cancel      context.CancelFunc
	wake        chan struct{}

	// readyMu guards readyQ: the streams run is to visit, each once
	// (dcpStream.queued), pushed by their cursors' callbacks, the stream
	// request and the close.
	readyMu sync.Mutex
	readyQ  []*dcpStream

	mu               sync.Mutex
	streams          map[dcpStreamKey]*dcpStream // open ones
	order            []*dcpStream                // every stream not finished, open or closing
	bufSize          atomic.Uint32               // connection_buffer_size; 0: no flow control
	unacked          atomic.Uint32
	noop             bool
	noopInterval     time.Duration
	streamEndOnClose bool
	expiryOpcode     bool
	cursorDropping   bool
	streamIDs        bool      // enable_stream_id
	oso              int       // enable_out_of_order_snapshots: osoOff...
	flatbuffers      bool      // flatbuffers_system_events
	markerV22        bool      // max_marker_version=2.2
	compress         bool      // force_value_compression
	dead             bool      // run has ended
	streamed         bool      // a stream was requested: noops may start
	lastRecv         time.Time // the consumer's last message

	// rt is run's copy of the options, taken under mu at each step.
	rt dcpRunOptions
	// fb builds FlatBuffers system events (run's).
	fb *flatbuffers.Builder
	// Run's: the messages encoded and not yet given to Conn.Send; the
	// streams that flow control stopped, and those waiting for the next
	// backfill walk (all still queued); the walk's requests and the
	// vbuckets it names.
	batch   dcpSendBuf
	queue   []*dcpStream // step's
	msgs    dcpMsgs
	blocked []*dcpStream
	bfWait  []*dcpStream
	bfReqs  []cache.BackfillRequest
	bfSpans []uint64
	bfVBs   []uint64

	// v7Status: v7_dcp_status_codes; noopOpaque: the opaque of the last
	// NOOP sent (0: none).
	v7Status   atomic.Bool
	noopOpaque atomic.Uint32

	stats producerStats // dcp_stats.go
}

// dcpRunOptions are the options that shape what streams send.
type dcpRunOptions struct {
	expiryOpcode, cursorDropping, flatbuffers, markerV22, compress, endOnClose bool
	oso                                                                        int
}

// dcpStreamKey names a stream: its vbucket and stream id (0 without
// enable_stream_id).
type dcpStreamKey struct{ vb, sid uint16 }

// dcpStream is one stream of a vbucket. Its fields are run's, but closing
// and closeResp, guarded by the producer's lock.
type dcpStream struct {
	vb     uint16
	sid    uint16         // 0: none
	frames []gm.FrameInfo // the framing extras of its messages: its stream id
	opaque uint32
	end    uint64
	cur    *cache.Cursor
	resp   *gm.MCResponse // the stream request's success, to send first
	filter *dcpFilter
	// onReady is its cursors' callback; queued says it is in the
	// producer's ready queue, or in run's blocked or waiting lists, and
	// is visited; done that it ended (run's).
	onReady func()
	queued  atomic.Bool
	done    bool

	// backfillTo is the high seqno to backfill to, past read until the
	// backfill starts; bfNext to bfTo what it has still to read, in parts;
	// backfill the part read, sent up to bfAt (kept for the next part
	// until the backfill is sent).
	backfillTo   uint64
	bfNext, bfTo uint64
	backfill     []cache.Version
	bfAt         int
	// bfWant: the stream waits for the producer's next backfill walk;
	// bfFirst: it reads the first part of a backfill from bfFrom, which
	// a marker starts if it has anything; bfOSO: the whole of an OSO
	// backfill.
	bfWant, bfFirst, bfOSO bool
	bfFrom                 uint64
	// inBackfill: a backfill's snapshot is being sent; osoSnap: an OSO
	// one; oso: the stream's first backfill is to be OSO; initial: the
	// stream is from 0 and its first backfill not done; ignorePurged: it
	// was requested with DCP_ADD_STREAM_FLAG_IGNORE_PURGED_TOMBSTONES.
	inBackfill, osoSnap, oso, initial, ignorePurged bool
	// sent is the seqno of the last change sent (or the start); read
	// the last one read, sent or filtered out; snapEnd the end of the
	// last snapshot marked.
	sent, read, snapEnd uint64
	changes             []cache.Change  // the cursor's buffer
	pending             []*gm.MCRequest // messages to send before anything else
	// stop: the stream is to end, with stopReason, once pending is sent.
	stop       bool
	stopReason uint32
	ended      bool

	closing   bool
	closeResp *gm.MCResponse

	stats streamStats // dcp_stats.go
}

func (p *dcpProducer) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ready queues stream s for run, unless it is queued already, and wakes
// run: its cursor's callback, called with the vbucket's lock held, so it
// only takes readyMu.
func (p *dcpProducer) ready(s *dcpStream) {
	if s.queued.Load() || !s.queued.CompareAndSwap(false, true) {
		return
	}
	p.readyMu.Lock()
	p.readyQ = append(p.readyQ, s)
	p.readyMu.Unlock()
	p.notify()
}

// push queues stream s for run even if it is queued (a close, which
// must be answered while the stream waits for a walk or flow control).
func (p *dcpProducer) push(s *dcpStream) {
	s.queued.Store(true)
	p.readyMu.Lock()
	p.readyQ = append(p.readyQ, s)
	p.readyMu.Unlock()
	p.notify()
}

// received notes a message from the consumer.
func (p *dcpProducer) received() {
	p.mu.Lock()
	p.lastRecv = time.Now()
	p.mu.Unlock()
}

// ack serves a buffer acknowledgement.
func (p *dcpProducer) ack(n uint32) {
	for {
		u := p.unacked.Load()
		if p.unacked.CompareAndSwap(u, u-min(n, u)) {
			break
		}
	}
	if p.bufSize.Load() != 0 {
		p.stats.ackedBytes.Add(uint64(n))
	}
	p.notify()
}

// full reports whether flow control stops the streams' data.
func (p *dcpProducer) full() bool {
	b := p.bufSize.Load()
	return b != 0 && p.unacked.Load() >= b
}

// kill ends the producer and closes its connection (a name reused, a
// dead consumer).
func (p *dcpProducer) kill() {
	p.cancel()
	p.c.Close(nil)
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
	for {
		sent, err := p.step()
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
				p.noopOpaque.Store(opaque)
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
		p.stats.noopWait.Store(noopPending)
		timer.Reset(wait)
		// A stream with something to send, an acknowledgement, an option
		// or a close wakes it.
		select {
		case <-p.wake:
		case <-p.ctx.Done():
		case <-p.c.Done():
			return
		case <-timer.C:
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
	p.order, p.streams = nil, map[dcpStreamKey]*dcpStream{}
	p.mu.Unlock()
	for _, s := range order {
		if s.cur != nil {
			s.cur.Close()
		}
	}
	p.readyMu.Lock()
	p.readyQ = nil
	p.readyMu.Unlock()
	p.blocked, p.bfWait = nil, nil
	key := dcpName{p.b, p.name}
	p.d.mu.Lock()
	if p.d.names[key] == p {
		delete(p.d.names, key)
	}
	p.d.mu.Unlock()
}

// dcpTurn is how many messages a stream sends before the next one's turn.
const dcpTurn = 64

// dcpSendBatch is how many bytes of messages run encodes before it hands
// them to Conn.Send as one packet (a batch may be a message larger).
const dcpSendBatch = 64 << 10

// turnResult says what a stream's turn left it waiting for.
type turnResult uint8

const (
	turnIdle     turnResult = iota // its cursor's next change
	turnMore                       // nothing: it has more to send
	turnBlocked                    // flow control
	turnBackfill                   // the next backfill walk
	turnDone                       // nothing: it ended
)

// step visits the ready streams in turns, dcpTurn messages at a time,
// and reads the backfills they wait for in one walk of the cache for all
// of them, until none is ready or flow control stops them. It sends what
// they sent in batches. sent says whether anything was sent.
func (p *dcpProducer) step() (sent bool, err error) {
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		return false, errProducerEnded
	}
	p.rt = dcpRunOptions{expiryOpcode: p.expiryOpcode, cursorDropping: p.cursorDropping, flatbuffers: p.flatbuffers,
		markerV22: p.markerV22, compress: p.compress, oso: p.oso, endOnClose: p.streamEndOnClose}
	p.mu.Unlock()
	queue := p.queue[:0]
	defer func() { p.queue = queue[:0] }()
	for {
		if len(p.blocked) > 0 && !p.full() {
			queue = append(queue, p.blocked...)
			clear(p.blocked)
			p.blocked = p.blocked[:0]
		}
		p.readyMu.Lock()
		queue = append(queue, p.readyQ...)
		clear(p.readyQ)
		p.readyQ = p.readyQ[:0]
		p.readyMu.Unlock()
		if len(queue) == 0 {
			if len(p.bfWait) == 0 || p.full() {
				break
			}
			queue = p.walk(queue)
			continue
		}
		for i, s := range queue {
			queue[i] = nil
			n, res, err := p.turn(s)
			sent = sent || n > 0
			if err != nil {
				return sent, err
			}
			if res == turnIdle || res == turnDone || s.queued.Swap(true) {
				// Idle, ended, or queued again by its cursor meanwhile.
				continue
			}
			switch res {
			case turnMore:
				p.readyMu.Lock()
				p.readyQ = append(p.readyQ, s)
				p.readyMu.Unlock()
			case turnBlocked:
				p.blocked = append(p.blocked, s)
			case turnBackfill:
				p.bfWait = append(p.bfWait, s)
			}
		}
		queue = queue[:0]
	}
	return sent, p.flush()
}

// turn sends up to dcpTurn messages of stream s.
func (p *dcpProducer) turn(s *dcpStream) (n int, res turnResult, err error) {
	if s.done {
		return 0, turnDone, nil
	}
	// Changes from now on queue it again.
	s.queued.Store(false)
	p.mu.Lock()
	closing, closeResp := s.closing, s.closeResp
	p.mu.Unlock()
	if closing {
		p.finish(s)
		if s.resp != nil {
			if err := p.emit(s.resp); err != nil {
				return 0, turnDone, err
			}
		}
		if err := p.emit(closeResp); err != nil {
			return 0, turnDone, err
		}
		if p.rt.endOnClose {
			if err := p.send(s, p.streamEnd(s, streamEndClosed)); err != nil {
				return 1, turnDone, err
			}
		}
		return 1, turnDone, nil
	}
	if s.resp != nil {
		if err := p.emit(s.resp); err != nil {
			return 0, turnDone, err
		}
		s.resp = nil
		n++
	}
	for ; n < dcpTurn; n++ {
		// A blocked stream still sends its answers (a stream request's,
		// a close's), which flow control does not count.
		if p.full() {
			p.stats.pause()
			return n, turnBlocked, nil
		}
		pkt := p.next(s)
		switch {
		case pkt == nil && s.bfWant:
			return n, turnBackfill, nil
		case pkt == nil:
			return n, turnIdle, nil
		case s.ended:
			// The stream leaves the producer before its end is sent: a
			// request for it that follows the end finds it gone.
			p.finish(s)
			return n + 1, turnDone, p.send(s, pkt)
		}
		if err := p.send(s, pkt); err != nil {
			return n, turnDone, err
		}
	}
	return n, turnMore, nil
}

// send sends a stream message, counting it for flow control.
func (p *dcpProducer) send(s *dcpStream, pkt *gm.MCRequest) error {
	size := pkt.Size()
	if p.bufSize.Load() != 0 {
		p.unacked.Add(uint32(size))
	}
	p.stats.sent(&s.stats, pkt, size)
	err := p.emit(pkt)
	p.msgs.put(pkt)
	return err
}

// dcpMsgs keeps the messages of documents that were sent, for the next
// documents: a message and its extras cost no allocation of their own.
type dcpMsgs struct{ free []*gm.MCRequest }

// dcpMsgsKept is how many sent messages dcpMsgs keeps.
const dcpMsgsKept = 512

// get returns a message whose extras are n zero bytes. A message taken
// back by put has no field set but Opcode, Cas, Opaque, VBucket, DataType
// and Extras, which doc sets again.
func (m *dcpMsgs) get(n int) (*gm.MCRequest, []byte) {
	var pkt *gm.MCRequest
	if k := len(m.free); k > 0 {
		pkt = m.free[k-1]
		m.free[k-1] = nil
		m.free = m.free[:k-1]
	} else {
		pkt = &gm.MCRequest{Extras: make([]byte, 0, 32)}
	}
	ex := pkt.Extras[:n]
	clear(ex)
	return pkt, ex
}

// put takes back a document's message once it is encoded.
func (m *dcpMsgs) put(pkt *gm.MCRequest) {
	switch pkt.Opcode {
	case gm.UPR_MUTATION, gm.UPR_DELETION, gm.UPR_EXPIRATION:
	default:
		return
	}
	if len(m.free) < dcpMsgsKept && cap(pkt.Extras) >= 32 {
		// Nothing of the store kept; what doc sets of a message is all
		// that is set in it.
		pkt.Key, pkt.Body, pkt.FramingExtras, pkt.Extras = nil, nil, nil, pkt.Extras[:0]
		m.free = append(m.free, pkt)
	}
}

// dcpSendBuf is messages encoded one after another, sent as one packet.
type dcpSendBuf struct{ buf []byte }

func (b *dcpSendBuf) Size() int { return len(b.buf) }

func (b *dcpSendBuf) AppendTo(dst []byte) ([]byte, error) { return append(dst, b.buf...), nil }

// emit adds pkt to the batch, and sends the batch once it is
// dcpSendBatch bytes.
func (p *dcpProducer) emit(pkt memcached.Packet) error {
	n0 := len(p.batch.buf)
	buf, err := pkt.AppendTo(p.batch.buf)
	if err != nil {
		p.batch.buf = p.batch.buf[:n0]
		return err
	}
	p.batch.buf = buf
	if len(buf) >= dcpSendBatch {
		return p.flush()
	}
	return nil
}

// flush sends the batch.
func (p *dcpProducer) flush() error {
	if len(p.batch.buf) == 0 {
		return nil
	}
	p.stats.lastSent.Store(time.Now().UnixNano())
	err := p.c.Send(p.ctx, &p.batch)
	p.batch.buf = p.batch.buf[:0]
	if cap(p.batch.buf) > 4*dcpSendBatch {
		p.batch.buf = nil // after a large value
	}
	return err
}

// finish removes a stream that ended or was closed.
func (p *dcpProducer) finish(s *dcpStream) {
	s.done = true
	s.queued.Store(true) // its cursor's callbacks have nothing to queue
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	s.backfill = nil
	p.mu.Lock()
	for i, o := range p.order {
		if o == s {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	if k := (dcpStreamKey{s.vb, s.sid}); p.streams[k] == s {
		delete(p.streams, k)
	}
	p.mu.Unlock()
}

// next returns the stream's next message, nil if it has none now (or
// waits for the backfill walk, bfWant): the backfill's marker and
// versions, then the cursor's changes, a marker before each batch, and
// the stream end once the end seqno is covered.
func (p *dcpProducer) next(s *dcpStream) *gm.MCRequest {
	c := p.b.cache
	for {
		switch {
		case len(s.pending) > 0:
			pkt := s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
			return pkt
		case s.stop:
			s.ended = true
			return p.streamEnd(s, s.stopReason)
		case s.bfWant:
			return nil
		case s.backfillTo > s.read && s.read < s.end:
			// A backfill: the walk reads its first part (backfilled).
			from, to := s.read, min(s.backfillTo, s.end)
			s.bfNext, s.bfTo, s.read = from+1, to, to
			s.bfFrom, s.bfFirst, s.bfWant = from, true, true
			s.bfOSO, s.oso = s.oso, false
			return nil
		case s.bfAt < len(s.backfill):
			v := &s.backfill[s.bfAt]
			s.bfAt++
			kind := cache.Mutated
			if v.Deleted {
				kind = cache.Deleted
			}
			if pkt, _ := p.change(s, kind, v.Key, &v.Item, v.DeleteTime); pkt != nil {
				s.sent = max(s.sent, v.Seqno)
				return pkt
			}
		case s.bfNext <= s.bfTo:
			// The part is sent: the next one is read into its buffer.
			clear(s.backfill)
			s.backfill, s.bfAt, s.bfWant = s.backfill[:0], 0, true
			return nil
		case s.backfill != nil:
			clear(s.backfill)
			s.backfill, s.bfAt = nil, 0
		case s.inBackfill:
			// The backfill is sent: an OSO snapshot ends; a stream that
			// filtered out the end of its disk snapshot learns where it
			// ended.
			s.inBackfill, s.initial = false, false
			if s.osoSnap {
				s.osoSnap = false
				end := p.osoMarker(s, osoEnd)
				if p.rt.oso == osoWithSeqnoAdvanced && s.sent != s.bfTo {
					s.pending = append(s.pending, end)
					s.sent = s.bfTo
					return p.seqnoAdvanced(s, s.bfTo)
				}
				return end
			}
			if p.collections && s.sent < s.snapEnd {
				s.sent = s.snapEnd
				return p.seqnoAdvanced(s, s.snapEnd)
			}
		case s.read >= s.end:
			s.ended = true
			return p.streamEnd(s, streamEndOK)
		case c.State(s.vb) != cache.Active:
			s.ended = true
			return p.streamEnd(s, streamEndState)
		case !p.readCursor(s):
			return nil
		}
	}
}

// Backfill walks: each reads, in one cache.BackfillMany, the next part
// of every waiting stream's backfill, so that the cost of a walk of the
// cache is shared by all the streams that backfill at once. The parts
// are bounded in total: dcpBackfillBudget versions (about 18 MiB of
// cache.Version) shared between the streams of a walk, at least
// dcpBackfillMin and at most dcpBackfillPart each, what a stream's range
// of seqnos cannot use going to the others. An OSO backfill, which must
// be sorted whole, is read whole.
const (
	dcpBackfillBudget = 128 << 10
	dcpBackfillMin    = 64
)

// bfShare returns the most versions each of the walk's streams (reqs, of
// streams ss) may read so that together they read about
// dcpBackfillBudget, a stream that may hold fewer (a short range of
// seqnos) leaving the rest to the others; OSO backfills, read whole, are
// not counted.
func (p *dcpProducer) bfShare(reqs []cache.BackfillRequest, ss []*dcpStream) int {
	spans := p.bfSpans[:0]
	for i := range reqs {
		if !ss[i].bfOSO {
			spans = append(spans, min(reqs[i].To-reqs[i].From, dcpBackfillPart-1)+1)
		}
	}
	p.bfSpans = spans[:0]
	if len(spans) == 0 {
		return dcpBackfillPart
	}
	slices.Sort(spans)
	budget := uint64(dcpBackfillBudget)
	for i, n := range spans {
		left := uint64(len(spans) - i)
		if n*left > budget {
			return int(min(max(budget/left, dcpBackfillMin), dcpBackfillPart))
		}
		budget -= n
	}
	return dcpBackfillPart
}

// walk reads the next part of the backfill of each stream waiting for
// one (at most one stream per vbucket a walk: the others wait for the
// next), and appends them to queue.
func (p *dcpProducer) walk(queue []*dcpStream) []*dcpStream {
	if p.bfVBs == nil {
		p.bfVBs = make([]uint64, (1<<16)/64)
	}
	reqs := p.bfReqs[:0]
	first := len(queue)
	var later []*dcpStream
	for _, s := range p.bfWait {
		switch {
		case s.done:
			continue
		case p.bfVBs[s.vb/64]&(1<<(s.vb%64)) != 0:
			later = append(later, s)
			continue
		}
		p.bfVBs[s.vb/64] |= 1 << (s.vb % 64)
		reqs = append(reqs, cache.BackfillRequest{VBucket: s.vb, From: s.bfNext, To: s.bfTo, Versions: s.backfill[:0]})
		queue = append(queue, s)
	}
	clear(p.bfWait)
	p.bfWait = append(p.bfWait[:0], later...)
	share := p.bfShare(reqs, queue[first:])
	for i := range reqs {
		if !queue[first+i].bfOSO {
			reqs[i].Max = int(min(reqs[i].To-reqs[i].From, dcpBackfillPart-1)) + 1 // no more than it may hold
			reqs[i].Max = min(reqs[i].Max, share)
		}
	}
	err := p.b.cache.BackfillMany(reqs)
	for i, s := range queue[first:] {
		p.bfVBs[s.vb/64] = 0
		p.backfilled(s, reqs[i].Versions, reqs[i].Max, err)
	}
	clear(reqs)
	p.bfReqs = reqs[:0]
	return queue
}

// backfilled takes a part of the stream's backfill that a walk read, of
// at most max versions (0: all, for an OSO snapshot): the versions to
// send, and the marker first if they start a snapshot.
func (p *dcpProducer) backfilled(s *dcpStream, vs []cache.Version, max int, err error) {
	s.bfWant = false
	first := s.bfFirst
	s.bfFirst = false
	if err != nil {
		clear(vs)
		vs = vs[:0]
	}
	s.backfill, s.bfAt = vs, 0
	s.stats.readBackfill(vs)
	if s.bfOSO {
		s.bfOSO = false
		s.bfNext = s.bfTo + 1
		if p.keepOSO(s) {
			s.inBackfill, s.osoSnap = true, true
			s.pending = append(s.pending, p.osoMarker(s, osoStart))
		}
		return
	}
	switch {
	case err != nil || len(vs) < max:
		s.bfNext = s.bfTo + 1
	default:
		s.bfNext = vs[len(vs)-1].Seqno + 1
	}
	if first && len(vs) > 0 {
		s.inBackfill, s.snapEnd = true, s.bfTo
		s.pending = append(s.pending, p.marker(s, s.bfFrom, s.bfTo, markerDisk|markerCheckpoint))
	}
}

// keepOSO keeps of the stream's whole backfill, for an OSO snapshot, the
// versions of its collection (and the collection's system events), in
// key order. It reports whether it kept any.
func (p *dcpProducer) keepOSO(s *dcpStream) bool {
	kept := s.backfill[:0]
	for _, v := range s.backfill {
		if s.osoKeeps(v.Key, v.Deleted, v.Value) {
			kept = append(kept, v)
		}
	}
	clear(s.backfill[len(kept):])
	s.backfill = kept
	slices.SortFunc(s.backfill, func(a, b cache.Version) int { return bytes.Compare(a.Key, b.Key) })
	return len(s.backfill) > 0
}

// osoKeeps reports whether an OSO backfill keeps a version: a document
// of the filter's collection, or one of its system events.
func (s *dcpStream) osoKeeps(key []byte, deleted bool, value []byte) bool {
	if id, ok := cache.IsSystemKey(key); ok {
		ev, err := parseSysEvent(id, deleted, value)
		return err == nil && ev.collection() && s.filter.cids[ev.cid]
	}
	cid, _, ok := cache.SplitKey(key)
	return ok && s.filter.cids[cid]
}

// readCursor reads the next batch of changes of the stream's cursor into
// pending (a marker, the changes the stream sends, a SEQNO_ADVANCED if it
// sends not the last), and reports whether it read anything or ended.
func (p *dcpProducer) readCursor(s *dcpStream) bool {
	c := p.b.cache
	changes, err := s.cur.Next(s.changes[:0], dcpBatch)
	s.stats.readMemory(changes)
	if errors.Is(err, cache.ErrChangesLost) {
		s.cur.Close()
		s.cur = nil
		// What was lost and is no longer there to backfill (a flush,
		// purged tombstones) ends the stream for the consumer to roll
		// back, as kv_engine's backfill from below the purge seqno does;
		// what is still stored is backfilled again where the consumer
		// supports cursor dropping, as kv_engine does for a stream whose
		// cursor it dropped, and ends the stream as too slow otherwise.
		if purge := c.PurgeSeqno(s.vb); s.read > 0 && purge > s.read && !s.ignorePurged {
			p.log.Info("dcp: changes lost past the purge seqno, rollback", "vb", s.vb, "read", s.read, "purge", purge)
			s.stop, s.stopReason = true, streamEndRollback
			return true
		}
		if !p.rt.cursorDropping {
			p.log.Warn("dcp: stream too slow, changes lost", "vb", s.vb, "sent", s.sent)
			s.stop, s.stopReason = true, streamEndSlow
			return true
		}
		p.log.Info("dcp: changes lost, backfilling again", "vb", s.vb, "sent", s.sent)
		cur, err := c.ChangesFunc(s.vb, s.onReady)
		if err != nil {
			s.stop, s.stopReason = true, streamEndState
			return true
		}
		s.cur = cur
		s.backfillTo, _ = c.HighSeqno(s.vb)
		return true // next backfills
	}
	if err != nil {
		s.stop, s.stopReason = true, streamEndState
		return true
	}
	// Drop what the backfill covered and what is past the end.
	i := 0
	for i < len(changes) && changes[i].Seqno <= s.read {
		i++
	}
	j := i
	for j < len(changes) && changes[j].Seqno <= s.end {
		j++
	}
	defer func() { clear(changes); s.changes = changes[:0] }()
	if i == j {
		return len(changes) > 0 // more may follow
	}
	// The marker goes first, once the batch's range is known.
	n0 := len(s.pending)
	s.pending = append(s.pending, nil)
	var from, to, hidden uint64
	for k := i; k < j && !s.stop; k++ {
		ch := &changes[k]
		s.read = ch.Seqno
		pkt, hide := p.change(s, ch.Kind, ch.Key, &ch.Item, time.Time{})
		switch {
		case pkt != nil:
			if from == 0 {
				from = ch.Seqno
			}
			to = ch.Seqno
			s.pending = append(s.pending, pkt)
		case hide:
			hidden = ch.Seqno
		}
	}
	if to != 0 {
		s.sent = to
	}
	switch {
	case hidden > to && p.collections:
		// The snapshot ends with a change the stream takes but does not
		// send: it learns the seqno moved (kv_engine's MB-48368 when
		// nothing else is sent).
		if to == 0 {
			from = hidden
		}
		s.pending = append(s.pending, p.seqnoAdvanced(s, hidden))
		to, s.sent = hidden, hidden
	case to == 0:
		s.pending = s.pending[:n0]
		return true
	}
	s.snapEnd = to
	s.pending[n0] = p.marker(s, from, to, markerMemory|markerCheckpoint)
	return true
}

// marker returns a snapshot marker: version 1 (start, end, type in the
// extras), or with max_marker_version=2.2 for a disk snapshot version
// 2.2 (extras: the version byte 2; value: start, end, type, max visible
// seqno, high completed seqno, purge seqno, high prepared seqno). gocache
// has no prepares: the max visible seqno is the end, as kv_engine's when
// a snapshot holds no prepare, and the other seqnos of synchronous
// replication are 0, as kv_engine sends them to consumers without it.
func (p *dcpProducer) marker(s *dcpStream, start, end uint64, typ uint32) *gm.MCRequest {
	pkt := &gm.MCRequest{Opcode: gm.UPR_SNAPSHOT, VBucket: s.vb, Opaque: s.opaque, FramingExtras: s.frames}
	if p.rt.markerV22 && typ&markerDisk != 0 {
		v := make([]byte, 52)
		binary.BigEndian.PutUint64(v[0:], start)
		binary.BigEndian.PutUint64(v[8:], end)
		binary.BigEndian.PutUint32(v[16:], typ)
		binary.BigEndian.PutUint64(v[20:], end) // max visible
		binary.BigEndian.PutUint64(v[36:], min(p.b.cache.PurgeSeqno(s.vb), end))
		pkt.Extras, pkt.Body = []byte{2}, v
		return pkt
	}
	ex := make([]byte, 20)
	binary.BigEndian.PutUint64(ex[0:], start)
	binary.BigEndian.PutUint64(ex[8:], end)
	binary.BigEndian.PutUint32(ex[16:], typ)
	pkt.Extras = ex
	return pkt
}

// osoMarker returns a DCP_OSO_SNAPSHOT with flags (osoStart, osoEnd).
func (p *dcpProducer) osoMarker(s *dcpStream, flags uint32) *gm.MCRequest {
	return &gm.MCRequest{Opcode: gm.DCP_OSO_SNAPSHOT, VBucket: s.vb, Opaque: s.opaque, FramingExtras: s.frames,
		Extras: binary.BigEndian.AppendUint32(nil, flags)}
}

// seqnoAdvanced returns a DCP_SEQNO_ADVANCED to seqno.
func (p *dcpProducer) seqnoAdvanced(s *dcpStream, seqno uint64) *gm.MCRequest {
	return &gm.MCRequest{Opcode: gm.DCP_SEQNO_ADV, VBucket: s.vb, Opaque: s.opaque, FramingExtras: s.frames,
		Extras: binary.BigEndian.AppendUint64(nil, seqno)}
}

// streamEnd returns a stream end with reason.
func (p *dcpProducer) streamEnd(s *dcpStream, reason uint32) *gm.MCRequest {
	return &gm.MCRequest{Opcode: gm.UPR_STREAMEND, VBucket: s.vb, Opaque: s.opaque, FramingExtras: s.frames,
		Extras: binary.BigEndian.AppendUint32(nil, reason)}
}

// change returns the message of a change (or a backfill's version) of
// the stream's vbucket, nil if the stream does not send it; hidden says
// the stream takes it without sending it (a collection's modification
// without flatbuffers_system_events), which moves its seqno. A system
// event that leaves the filter empty stops the stream after it.
func (p *dcpProducer) change(s *dcpStream, kind cache.ChangeKind, key []byte, it *cache.Item, deleted time.Time) (pkt *gm.MCRequest, hidden bool) {
	if id, ok := cache.IsSystemKey(key); ok {
		return p.sysEvent(s, id, kind, it)
	}
	cid, _, ok := cache.SplitKey(key)
	if !ok || !s.filter.doc(cid) {
		return nil, false
	}
	return p.doc(s, kind, key, it, deleted), false
}

// sysEvent returns the DCP_SYSTEM_EVENT of the system event id, if the
// stream takes it (see change).
func (p *dcpProducer) sysEvent(s *dcpStream, id []byte, kind cache.ChangeKind, it *cache.Item) (*gm.MCRequest, bool) {
	if len(id) > 0 && id[0] == sysKeyModify && kind != cache.Mutated {
		return nil, false // a dropped collection's modification, retired
	}
	ev, err := parseSysEvent(id, kind != cache.Mutated, it.Value)
	if err != nil {
		p.log.Warn("dcp: system event skipped", "vb", s.vb, "seqno", it.Seqno, "err", err)
		return nil, false
	}
	if ev.uid == 0 && len(it.Value) == 0 {
		// A drop kept without its value (no tombstones).
		ev.uid = p.b.manifest.Load().uid
	}
	take := s.filter.event(&ev)
	if s.filter.empty() {
		s.stop, s.stopReason = true, streamEndFilterEmpty
	}
	switch {
	case !take:
		return nil, false
	case ev.event == sysCollectionModify && !p.rt.flatbuffers:
		return nil, true
	}
	pkt := &gm.MCRequest{Opcode: gm.DCP_SYSTEM_EVENT, VBucket: s.vb, Opaque: s.opaque, FramingExtras: s.frames, Key: ev.key()}
	ex := make([]byte, 13)
	binary.BigEndian.PutUint64(ex, it.Seqno)
	binary.BigEndian.PutUint32(ex[8:], ev.event)
	if p.rt.flatbuffers {
		if p.fb == nil {
			p.fb = flatbuffers.NewBuilder(128)
		}
		ex[12] = 2
		pkt.Body = bytes.Clone(ev.flatBuffer(p.fb))
	} else {
		pkt.Body, ex[12], _ = ev.appendLegacy(nil)
	}
	pkt.Extras = ex
	return pkt, false
}

// doc returns the message of a document's change that the stream's
// filter takes (see change), nil for a deletion the stream skips; a
// connection that is not collections-aware gets keys without their
// collection id.
func (p *dcpProducer) doc(s *dcpStream, kind cache.ChangeKind, key []byte, it *cache.Item, deleted time.Time) *gm.MCRequest {
	if kind != cache.Mutated && p.flags&dcpOpenSkipDeletes != 0 && s.inBackfill && s.initial {
		// Skip deletes in initial backfill: the backfill of a stream
		// from 0 only, as kv_engine.
		return nil
	}
	if !p.collections {
		_, key, _ = cache.SplitKey(key)
	}
	pkt, ex := p.msgs.get(31)
	// Field by field: a kept message has only these set (dcpMsgs.put), and
	// clearing the whole of it costs more than the rest of the encoding.
	pkt.VBucket, pkt.Opaque, pkt.Cas, pkt.Key, pkt.FramingExtras = s.vb, s.opaque, it.CAS, key, s.frames
	pkt.Body, pkt.DataType = nil, 0
	if kind == cache.Mutated {
		ex = ex[:31]
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
	if deleted.IsZero() {
		deleted = time.Now()
	}
	delTime := uint32(deleted.Unix())
	switch {
	case kind == cache.Expired && p.rt.expiryOpcode:
		ex = ex[:20]
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		binary.BigEndian.PutUint32(ex[16:], delTime)
		pkt.Opcode, pkt.Extras = gm.UPR_EXPIRATION, ex
	case p.flags&gm.DCP_OPEN_INCLUDE_DELETE_TIMES != 0:
		ex = ex[:21]
		binary.BigEndian.PutUint64(ex[0:], it.Seqno)
		binary.BigEndian.PutUint64(ex[8:], it.Rev)
		binary.BigEndian.PutUint32(ex[16:], delTime)
		pkt.Opcode, pkt.Extras = gm.UPR_DELETION, ex
	default:
		ex = ex[:18]
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
	if p.rt.compress && len(body) > 0 {
		// force_value_compression.
		body, dt = snappy.Encode(nil, body), dt|gm.DatatypeFlagCompressed
	}
	return body, dt
}

// ServeMCResponse takes a client's responses: a TAP consumer's
// acknowledgements (tap.go); a DCP consumer's, signs of life, unless one
// answers what the producer does not send or fails in a way that
// concerns more than one stream, which closes the connection, as
// kv_engine closes it. Other responses are ignored.
func (h *handler) ServeMCResponse(c *memcached.Conn, res *gm.MCResponse) {
	if tapResponse(h, c, res) {
		return
	}
	st, ok := c.Data.(*connState)
	if !ok || st.dcp == nil {
		return
	}
	p := st.dcp
	p.received()
	if !p.response(res) {
		p.log.Warn("dcp: closing a connection on an unexpected response", "opcode", res.Opcode.String(),
			"status", res.Status.String(), "opaque", res.Opaque)
		p.kill()
	}
}

// response reports whether a producer's connection goes on after a
// response of its consumer, by kv_engine's rule (DcpProducer::
// handleResponse): a snapshot marker's or a vbucket state's, any; a
// stream end's, success or KEY_ENOENT (the consumer closed the stream);
// the pending NOOP's, any; one of another DCP message, success; a failed
// status that concerns one stream only (NOT_MY_VBUCKET, stream not found,
// opaque no match, and without v7_dcp_status_codes KEY_EEXISTS and but
// for commits and aborts KEY_ENOENT) is tolerated. A response to an
// opcode that is not DCP's closes the connection.
func (p *dcpProducer) response(res *gm.MCResponse) bool {
	switch res.Opcode {
	case gm.DCP_SET_VBUCKET_STATE, gm.UPR_SNAPSHOT:
		return true
	case gm.UPR_STREAMEND:
		if res.Status == gm.SUCCESS || res.Status == gm.KEY_ENOENT {
			return true
		}
	case gm.UPR_NOOP:
		if o := p.noopOpaque.Load(); o != 0 && res.Opaque == o {
			return true
		}
	case gm.UPR_OPEN, gm.UPR_ADDSTREAM, gm.UPR_CLOSESTREAM, gm.UPR_STREAMREQ, gm.UPR_FAILOVERLOG,
		gm.UPR_MUTATION, gm.UPR_DELETION, gm.UPR_EXPIRATION, gm.UPR_BUFFERACK, gm.UPR_CONTROL,
		gm.DCP_SYSTEM_EVENT, gm.GET_ERROR_MAP, gm.DCP_PREPARE, gm.DCP_COMMIT, gm.DCP_ABORT:
		if res.Status == gm.SUCCESS {
			return true
		}
	default:
		return false
	}
	const streamNotFound, opaqueNoMatch = gm.Status(0x0a), gm.Status(0x0b)
	switch res.Status {
	case gm.NOT_MY_VBUCKET, streamNotFound, opaqueNoMatch:
		return true
	case gm.KEY_EEXISTS:
		return !p.v7Status.Load()
	case gm.KEY_ENOENT:
		return !p.v7Status.Load() && res.Opcode != gm.DCP_COMMIT && res.Opcode != gm.DCP_ABORT
	}
	return false
}
