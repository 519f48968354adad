package gocache

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// DCP statistics, under kv_engine's names (DcpProducer::addStats,
// ActiveStream::addStats, ConnAggStatBuilder; docs/dcp/documentation/
// statistics.md):
//
//   - STAT dcp: for each producer connection of the bucket
//     eq_dcpq:<name>:<stat>, then the bucket's ep_dcp_* totals, then for
//     each open stream eq_dcpq:<name>:stream_<vb>_<stat>. The request's
//     value may be kv_engine's options, {"stream_format": "legacy" (the
//     default), "json" (one eq_dcpq:<name>:stream_<vb> stat per stream, a
//     JSON object) or "skip" (no stream stats)}.
//   - STAT "dcpagg <separator>": the connections grouped by type, the part
//     of their name up to the separator (names without it are
//     "_unknown"), and all of them as <separator>total: <type>:count,
//     :producer_count, :items_sent, :items_remaining, :total_bytes, ...
//
// gocache reports only what it keeps: it has producers only (no
// consumers, no passive streams, no backoffs), no disk (its backfills read
// memory, as an ephemeral bucket's do: backfill_mem_items) and no limit
// on running backfills. "paused" is flow control's: a producer waiting
// for the consumer's acknowledgements (kv_engine's BufferLogFull). Items
// remaining are seqnos, from the last sent (or left out, as another
// collection's) to the vbucket's high seqno (or the stream's end): an
// upper bound, since a key changed twice is one item.

// producerStats are a producer connection's counters: set by its
// goroutine and handlers, read by STAT dcp on other connections.
type producerStats struct {
	created       time.Time // set before the producer is published
	itemsSent     atomic.Uint64
	bytesSent     atomic.Uint64
	ackedBytes    atomic.Uint64
	lastSent      atomic.Int64 // unix nanoseconds
	noopWait      atomic.Bool
	paused        atomic.Bool
	pausedCount   atomic.Uint64
	unpausedCount atomic.Uint64
}

// Stream states, as kv_engine names them.
const (
	streamBackfilling uint32 = iota
	streamInMemory
)

var streamStateNames = [...]string{streamBackfilling: "backfilling", streamInMemory: "in-memory"}

// streamStats are a stream's counters, set by its producer's goroutine.
// The request's fields are set before the stream is published.
type streamStats struct {
	flags                                uint32
	start, vbuuid, snapStart, snapEnd    uint64
	state                                atomic.Uint32
	inDisk                               atomic.Bool // the last marker sent was a disk one
	lastSent, lastSentSnapEnd, lastRead  atomic.Uint64
	handled                              atomic.Uint64 // every change up to it sent or left out
	backfillItems, backfillSent, memSent atomic.Uint64
}

// requested notes a stream request's parameters: what the stream was
// opened with, and whether it starts with a backfill.
func (ss *streamStats) requested(flags uint32, start, vbuuid, snapStart, snapEnd uint64, backfill bool) {
	ss.flags, ss.start, ss.vbuuid, ss.snapStart, ss.snapEnd = flags, start, vbuuid, snapStart, snapEnd
	ss.lastSent.Store(start)
	ss.lastRead.Store(start)
	if !backfill {
		ss.state.Store(streamInMemory)
	}
}

// readBackfill notes versions read by the stream's backfill.
func (ss *streamStats) readBackfill(vs []cache.Version) {
	ss.state.Store(streamBackfilling)
	if n := len(vs); n > 0 {
		ss.backfillItems.Add(uint64(n))
		ss.lastRead.Store(vs[n-1].Seqno)
	}
}

// readMemory notes changes read from the stream's cursor (none, maybe):
// the stream is in memory, and has handled what it read before (a stream
// reads its cursor once it has nothing else to send).
func (ss *streamStats) readMemory(chs []cache.Change) {
	ss.state.Store(streamInMemory)
	ss.handled.Store(ss.lastRead.Load())
	if n := len(chs); n > 0 {
		ss.lastRead.Store(chs[n-1].Seqno)
	}
}

// sent counts a stream message sent: its bytes, and the items (mutations,
// deletions, expirations, system events, seqno advances) by snapshot kind.
func (ps *producerStats) sent(ss *streamStats, pkt *gm.MCRequest, size int) {
	ps.bytesSent.Add(uint64(size)) // lastSent: once a batch (dcpProducer.flush)
	if ps.paused.Load() && ps.paused.CompareAndSwap(true, false) {
		ps.unpausedCount.Add(1)
	}
	switch pkt.Opcode {
	case gm.UPR_MUTATION, gm.UPR_DELETION, gm.UPR_EXPIRATION, gm.DCP_SYSTEM_EVENT, gm.DCP_SEQNO_ADV:
		ps.itemsSent.Add(1)
		if len(pkt.Extras) >= 8 {
			ss.lastSent.Store(binary.BigEndian.Uint64(pkt.Extras))
		}
		if ss.inDisk.Load() {
			ss.backfillSent.Add(1)
		} else {
			ss.memSent.Add(1)
		}
	case gm.UPR_SNAPSHOT:
		// Version 1: start, end, type in the extras; version 2: a
		// version byte in the extras, the same fields leading the value.
		m := pkt.Extras
		if len(m) == 1 {
			m = pkt.Body
		}
		if len(m) >= 20 {
			ss.lastSentSnapEnd.Store(binary.BigEndian.Uint64(m[8:]))
			ss.inDisk.Store(binary.BigEndian.Uint32(m[16:])&markerDisk != 0)
		}
	}
}

// pause notes that flow control stopped the producer.
func (ps *producerStats) pause() {
	if !ps.paused.Load() && ps.paused.CompareAndSwap(false, true) {
		ps.pausedCount.Add(1)
	}
}

// dcpStatName is the prefix of a connection's statistics.
func dcpStatName(name string) string { return "eq_dcpq:" + name }

// producerSnapshot is what STAT reads of one producer.
type producerSnapshot struct {
	p                *dcpProducer
	name             string // eq_dcpq:<name>
	bufSize, unacked uint32
	noop             bool
	noopInterval     time.Duration
	streamEndOnClose bool
	expiryOpcode     bool
	cursorDropping   bool
	streamIDs        bool
	dead             bool
	lastRecv         time.Time
	streams          []streamSnapshot
	closing          int // streams closed, not yet removed
	remaining        uint64
}

type streamSnapshot struct {
	s         *dcpStream
	remaining uint64
}

// producers returns the bucket's producers, by name.
func (d *dcpServer) producers(b *bucket) []*dcpProducer {
	d.mu.Lock()
	var ps []*dcpProducer
	for k, p := range d.names {
		if k.b == b {
			ps = append(ps, p)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(ps, func(a, b *dcpProducer) int { return strings.Compare(a.name, b.name) })
	return ps
}

// snapshot reads what the statistics of p report.
func (p *dcpProducer) snapshot() producerSnapshot {
	p.mu.Lock()
	ps := producerSnapshot{
		p: p, name: dcpStatName(p.name),
		bufSize: p.bufSize.Load(), unacked: p.unacked.Load(), noop: p.noop, noopInterval: p.noopInterval,
		streamEndOnClose: p.streamEndOnClose, expiryOpcode: p.expiryOpcode,
		cursorDropping: p.cursorDropping, streamIDs: p.streamIDs, dead: p.dead, lastRecv: p.lastRecv,
	}
	for _, s := range p.order {
		if s.closing {
			ps.closing++
			continue
		}
		ps.streams = append(ps.streams, streamSnapshot{s: s})
	}
	p.mu.Unlock()
	slices.SortFunc(ps.streams, func(a, b streamSnapshot) int { return int(a.s.vb) - int(b.s.vb) })
	c := p.b.cache
	for i := range ps.streams {
		ss := &ps.streams[i]
		high, _ := c.HighSeqno(ss.s.vb)
		st := &ss.s.stats
		if to, sent := min(high, ss.s.end), max(st.lastSent.Load(), st.handled.Load()); to > sent {
			ss.remaining = to - sent
		}
		ps.remaining += ss.remaining
	}
	return ps
}

// dcpServer returns the handler's DCP server, nil if it has none.
func (h *handler) dcpServer() *dcpServer {
	d, _ := h.mux.Handler(gm.UPR_OPEN).(*dcpServer)
	return d
}

// dcpStatsOptions is the value of a STAT dcp request.
type dcpStatsOptions struct {
	StreamFormat string `json:"stream_format"`
}

// dcpStats serves STAT dcp for the connection's bucket.
func (h *handler) dcpStats(w memcached.ResponseWriter, sw *statWriter, req *gm.MCRequest) bool {
	b := h.bucketFor(w, req)
	if b == nil {
		return false
	}
	format := "legacy"
	if len(req.Body) > 0 {
		var opt dcpStatsOptions
		// As kv_engine, options that do not parse are ignored.
		if json.Unmarshal(req.Body, &opt) == nil && (opt.StreamFormat == "json" || opt.StreamFormat == "skip") {
			format = opt.StreamFormat
		}
	}
	var snaps []producerSnapshot
	if d := h.dcpServer(); d != nil {
		for _, p := range d.producers(b) {
			snaps = append(snaps, p.snapshot())
		}
	}
	var items, bytes, remaining, backfilled, backfilling uint64
	for i := range snaps {
		ps := &snaps[i]
		writeProducerStats(sw, ps)
		items += ps.p.stats.itemsSent.Load()
		bytes += ps.p.stats.bytesSent.Load()
		remaining += ps.remaining
		for _, ss := range ps.streams {
			backfilled += ss.s.stats.backfillItems.Load()
			if ss.s.stats.state.Load() == streamBackfilling {
				backfilling++
			}
		}
	}
	sw.uint("ep_dcp_count", uint64(len(snaps)))
	sw.uint("ep_dcp_producer_count", uint64(len(snaps)))
	sw.uint("ep_dcp_consumer_count", 0)
	sw.uint("ep_dcp_total_bytes", bytes)
	sw.uint("ep_dcp_items_sent", items)
	sw.uint("ep_dcp_items_remaining", remaining)
	sw.uint("ep_dcp_backfill_memory", backfilled)
	sw.uint("ep_dcp_num_running_backfills", backfilling)
	if format == "skip" {
		return true
	}
	for i := range snaps {
		for _, ss := range snaps[i].streams {
			if format == "json" {
				writeStreamJSON(sw, snaps[i].name, ss)
			} else {
				writeStreamStats(sw, snaps[i].name, ss)
			}
		}
	}
	return true
}

// prefixed sends one statistic per call under a prefix.
type prefixed struct {
	w      *statWriter
	prefix string
	name   []byte
}

func (pw *prefixed) key(stat string) string {
	pw.name = append(append(pw.name[:0], pw.prefix...), stat...)
	return string(pw.name)
}

func (pw *prefixed) uint(stat string, v uint64) { pw.w.uint(pw.key(stat), v) }
func (pw *prefixed) str(stat, v string)         { pw.w.str(pw.key(stat), v) }
func (pw *prefixed) bool(stat string, v bool)   { pw.w.str(pw.key(stat), strconv.FormatBool(v)) }
func (pw *prefixed) time(stat string, t time.Time) {
	v := 0.0
	if !t.IsZero() {
		v = float64(t.UnixNano()) / 1e9
	}
	pw.w.buf = strconv.AppendFloat(pw.w.buf[:0], v, 'f', 3, 64)
	pw.w.send(pw.key(stat))
}

// writeProducerStats sends a producer's eq_dcpq:<name>:<stat>.
func writeProducerStats(sw *statWriter, ps *producerSnapshot) {
	st := &ps.p.stats
	pw := &prefixed{w: sw, prefix: ps.name + ":"}
	pw.str("type", "producer")
	pw.uint("created", uint64(st.created.Unix()))
	pw.bool("pending_disconnect", ps.dead || ps.p.ctx.Err() != nil)
	pw.bool("supports_ack", ps.bufSize != 0)
	paused := st.paused.Load()
	pw.bool("paused", paused)
	pw.uint("paused_count", st.pausedCount.Load())
	pw.uint("unpaused_count", st.unpausedCount.Load())
	if paused {
		pw.str("paused_current_reason", "BufferLogFull")
	}
	pw.uint("items_sent", st.itemsSent.Load())
	pw.uint("items_remaining", ps.remaining)
	pw.uint("total_bytes_sent", st.bytesSent.Load())
	var lastSent time.Time
	if ns := st.lastSent.Load(); ns != 0 {
		lastSent = time.Unix(0, ns)
	}
	pw.time("last_sent_time", lastSent)
	pw.time("last_receive_time", ps.lastRecv)
	pw.bool("noop_enabled", ps.noop)
	pw.str("noop_tx_interval", time2text(ps.noopInterval))
	pw.bool("noop_wait", st.noopWait.Load())
	pw.bool("force_value_compression", false)
	pw.bool("cursor_dropping", ps.cursorDropping)
	pw.bool("send_stream_end_on_client_close_stream", ps.streamEndOnClose)
	pw.bool("enable_expiry_opcode", ps.expiryOpcode)
	pw.bool("enable_stream_id", ps.streamIDs)
	pw.bool("synchronous_replication", false)
	pw.bool("synchronous_writes", false)
	if ps.bufSize != 0 {
		pw.uint("max_buffer_bytes", uint64(ps.bufSize))
		pw.uint("unacked_bytes", uint64(ps.unacked))
		pw.uint("total_acked_bytes", st.ackedBytes.Load())
		pw.str("flow_control", "enabled")
	} else {
		pw.str("flow_control", "disabled")
	}
	pw.uint("num_streams", uint64(len(ps.streams)+ps.closing))
	pw.uint("num_dead_streams", uint64(ps.closing))
}

// streamStat is one statistic of a stream.
type streamStat struct {
	name string
	v    any // uint64, string or bool
}

func streamStatList(ss streamSnapshot) []streamStat {
	s, st := ss.s, &ss.s.stats
	list := []streamStat{
		{"flags", uint64(st.flags)},
		{"opaque", uint64(s.opaque)},
		{"start_seqno", st.start},
		{"vb_uuid", st.vbuuid},
		{"snap_start_seqno", st.snapStart},
		{"snap_end_seqno", st.snapEnd},
		{"state", streamStateNames[st.state.Load()]},
		{"items_ready", ss.remaining > 0},
		{"end_seqno", s.end},
		{"backfill_mem_items", st.backfillItems.Load()},
		{"backfill_sent", st.backfillSent.Load()},
		{"memory_phase", st.memSent.Load()},
		{"last_sent_seqno", st.lastSent.Load()},
		{"last_sent_snap_end_seqno", st.lastSentSnapEnd.Load()},
		{"last_read_seqno", st.lastRead.Load()},
	}
	if s.sid != 0 {
		// As kv_engine, streams of one vbucket share their names; the
		// id tells them apart.
		list = append(list, streamStat{"filter_sid", "sid:" + strconv.Itoa(int(s.sid))})
	}
	return list
}

// writeStreamStats sends a stream's eq_dcpq:<name>:stream_<vb>_<stat>.
func writeStreamStats(sw *statWriter, name string, ss streamSnapshot) {
	pw := &prefixed{w: sw, prefix: name + ":stream_" + strconv.Itoa(int(ss.s.vb)) + "_"}
	for _, st := range streamStatList(ss) {
		switch v := st.v.(type) {
		case uint64:
			pw.uint(st.name, v)
		case string:
			pw.str(st.name, v)
		case bool:
			pw.bool(st.name, v)
		}
	}
}

// writeStreamJSON sends a stream's statistics as one JSON object,
// eq_dcpq:<name>:stream_<vb>.
func writeStreamJSON(sw *statWriter, name string, ss streamSnapshot) {
	list := streamStatList(ss)
	obj := make(map[string]any, len(list))
	for _, st := range list {
		obj[st.name] = st.v
	}
	buf, err := json.Marshal(obj)
	if err != nil {
		return
	}
	sw.buf = append(sw.buf[:0], buf...)
	sw.send(name + ":stream_" + strconv.Itoa(int(ss.s.vb)))
}

// connCounter is one group of dcpagg.
type connCounter struct {
	count, producers, streams, items, remaining, bytes, backfilled, paused, unpaused uint64
}

func (c *connCounter) add(o *connCounter) {
	c.count += o.count
	c.producers += o.producers
	c.streams += o.streams
	c.items += o.items
	c.remaining += o.remaining
	c.bytes += o.bytes
	c.backfilled += o.backfilled
	c.paused += o.paused
	c.unpaused += o.unpaused
}

// dcpConnType is the group of a connection named name (eq_dcpq:...) in
// dcpagg: what follows the first colon up to the separator, or, for a
// name made of "i" and "a" (a connector's unique id and user agent), the
// user agent's first word; "_unknown" without the separator.
func dcpConnType(name, sep string) string {
	_, rest, ok := strings.Cut(name, ":")
	if !ok {
		return ""
	}
	if strings.HasPrefix(rest, `"`) {
		if _, agent, ok := strings.Cut(name, `"a":"`); ok {
			if i := strings.IndexAny(agent, `"/`); i >= 0 {
				agent = agent[:i]
			}
			return agent
		}
	}
	typ, _, ok := strings.Cut(rest, sep)
	if !ok {
		return "_unknown"
	}
	return typ
}

// dcpAggStats serves STAT "dcpagg <sep>" for the connection's bucket.
func (h *handler) dcpAggStats(w memcached.ResponseWriter, sw *statWriter, req *gm.MCRequest, sep string) bool {
	b := h.bucketFor(w, req)
	if b == nil {
		return false
	}
	if len(sep) > 8 { // kv_engine's longest separator
		sep = sep[:8]
	}
	total := sep + "total"
	groups := map[string]*connCounter{total: {}}
	if d := h.dcpServer(); d != nil {
		for _, p := range d.producers(b) {
			ps := p.snapshot()
			st := &p.stats
			c := connCounter{count: 1, producers: 1, streams: uint64(len(ps.streams)),
				items: st.itemsSent.Load(), remaining: ps.remaining, bytes: st.bytesSent.Load(),
				paused: st.pausedCount.Load(), unpaused: st.unpausedCount.Load()}
			for _, ss := range ps.streams {
				c.backfilled += ss.s.stats.backfillItems.Load()
			}
			groups[total].add(&c)
			if typ := dcpConnType(ps.name, sep); typ != "" {
				if groups[typ] == nil {
					groups[typ] = &connCounter{}
				}
				groups[typ].add(&c)
			}
		}
	}
	for _, typ := range slices.Sorted(func(yield func(string) bool) {
		for k := range groups {
			if !yield(k) {
				return
			}
		}
	}) {
		c := groups[typ]
		pw := &prefixed{w: sw, prefix: typ + ":"}
		pw.uint("count", c.count)
		pw.uint("producer_count", c.producers)
		pw.uint("activestream_count", c.streams)
		pw.uint("items_backfilled_memory", c.backfilled)
		pw.uint("items_sent", c.items)
		pw.uint("items_remaining", c.remaining)
		pw.uint("total_bytes", c.bytes)
		pw.uint("paused_count", c.paused)
		pw.uint("unpaused_count", c.unpaused)
	}
	return true
}

// time2text writes a duration as kv_engine's cb::time2text does: in ns,
// us, ms or s, whichever first gives at most 9999, rounded; past 599 s as
// minutes and seconds, with hours if any ("2h:3m:4s").
func time2text(d time.Duration) string {
	units := [...]string{" ns", " us", " ms", " s"}
	t := math.Abs(float64(d))
	i := 0
	for t > 9999 && i < len(units)-1 {
		t /= 1000
		i++
	}
	if i < len(units)-1 || t <= 599 {
		return strconv.Itoa(int(math.Round(t))) + units[i]
	}
	h := int(t / 3600)
	t -= float64(h * 3600)
	m := int(t / 60)
	t -= float64(m * 60)
	s := strconv.Itoa(m) + "m:" + strconv.Itoa(int(math.Round(t))) + "s"
	if h > 0 {
		s = strconv.Itoa(h) + "h:" + s
	}
	return s
}
