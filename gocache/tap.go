package gocache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// TAP, the producer side, as kv_engine's docs/TAP.md and ep-engine's TAP
// producer defined it before Couchbase 5.0 removed it. TAP_CONNECT (its
// extras: 4 bytes of flags, or none for no flags; its body: the values of
// the flags that carry one, in the order of their bits) makes the
// connection a TAP producer, which is never answered on success: the
// stream begins. Every message the producer sends is a request whose
// opaque numbers it (1, 2, ...) and whose extras start with TAP's 8 bytes
// (engine-specific length, TAP flags, TTL 255, 3 reserved):
//
//   - TAP_MUTATION (extras 16: the 8, item flags, expiry as a Unix time),
//     TAP_DELETE (extras 8): a document of the default collection, from
//     the backfill or a live change (deletions, expirations and evictions
//     alike are TAP_DELETEs); CAS is the change's.
//   - TAP_OPAQUE (engine-specific: a 4-byte code): ENABLE_AUTO_NACK first
//     for a consumer that acknowledges, ENABLE_CHECKPOINT_SYNC for one that
//     asked for checkpoints, INITIAL_VBUCKET_STREAM and CLOSE_BACKFILL
//     around each vbucket's backfill, CLOSE_TAP_STREAM before a dump or a
//     takeover closes.
//   - TAP_CHECKPOINT_START and _END (the mutation layout, key
//     "checkpoint_start" or "checkpoint_end", value the 8-byte checkpoint
//     id) around each part sent of a vbucket, with CHECKPOINT.
//   - TAP_VBUCKET_SET (engine-specific: the 4-byte state): pending for each
//     listed vbucket first, active for each at the end of a takeover.
//   - TAP_FLUSH when a flush emptied the bucket while the feed was open.
//
// The flags. BACKFILL's date (8 bytes) is compared with the current time,
// as ep-engine did: a date in the future (all ones, say) sends only the
// changes after the connect, any other date everything stored (the live
// documents: the consumer resets the vbucket at INITIAL_VBUCKET_STREAM;
// gocache keeps no modification times); without BACKFILL everything
// stored is sent too. DUMP sends what is stored, and the changes made
// while it was sent, then CLOSE_TAP_STREAM. LIST_VBUCKETS (a 2-byte
// count, then the ids; 0 means every vbucket) filters the vbuckets.
// TAKEOVER_VBUCKETS ends like DUMP, but first, for each listed vbucket,
// sets it dead here, sends what it changed until then and TAP_VBUCKET_SET
// active (without a list, no vbucket changes state).
//
// SUPPORT_ACK: the producer asks for an acknowledgement (the TAP_ACK
// flag) on each control message, which nothing follows until it is
// acknowledged (nor CLOSE_BACKFILL until the backfill is), on every
// 1000th message, on the last one before it goes idle and on the one that
// fills its window (10000 messages or 16 MiB unacknowledged); a response
// acknowledges its message and every one before it; TMPFAIL or EBUSY has
// the producer send that message and those after it again, after a
// pause; any other status closes the connection. CLOSE_TAP_STREAM asks
// for none.
//
// REQUEST_KEYS_ONLY leaves values out (TAP_FLAG_NO_VALUE). CHECKPOINT's
// body (optional: a 2-byte count, then vbucket id and last checkpoint id
// pairs) gives where each vbucket's checkpoint ids continue.
// FIX_FLAG_BYTEORDER marks mutations with TAP_FLAG_NETWORK_BYTE_ORDER:
// item flags are always big-endian. REGISTERED_CLIENT names a consumer
// whose position is kept when its connection ends: for each vbucket, its
// UUID and the seqno of the last change acknowledged (with SUPPORT_ACK)
// or handed to the connection (without: what was in its queue when it
// broke is lost), for at most 1024 consumers per server, the oldest
// dropped first. When it connects again, each vbucket whose UUID is
// unchanged resumes after that seqno (deletions included, while their
// tombstones last) whatever the backfill date; a connect of that name
// without the flag drops the registration. A name connected twice closes
// the older connection.
//
// Malformed connects (extras of another length, unknown flags, values
// shorter than their flags need, vbucket ids past the bucket's) are
// answered EINVAL with the reason, and the connection is closed, as
// kv_engine closed it. A second connect on a TAP or DCP connection is
// answered EINVAL.
//
// Each producer has one goroutine (tapProducer.run) that reads the
// bucket through cache.Backfill and cache.Cursor (opened before the
// backfill reads, so that nothing falls between them) and sends through
// Conn.Send: the connection's queue is bounded in bytes, so a consumer
// that reads slowly stalls only its own producer. One that keeps it
// blocked (its queue full, or its window unacknowledged) for five
// minutes, or falls more than the bucket's change log behind, is cut,
// with the reason logged and its connection reset. A feed of every vbucket
// keeps every vbucket's change log while it lasts (ChangeLog entries of
// 48 bytes each). Its backfill reads the vbuckets in parts, the next
// part of every vbucket still to backfill in one walk of the cache
// (cache.BackfillMany), at most tapBackfillBudget versions a walk.

// Limits and defaults, kv_engine's where it had one.
const (
	tapAckInterval  = 1000     // tap_ack_interval
	tapAckWindow    = 10       // tap_ack_window_size, in intervals
	tapAckBytes     = 16 << 20 // unacknowledged bytes kept for sending again
	tapGrace        = 5 * time.Minute
	tapBackoff      = time.Second // before sending again after TMPFAIL
	tapCloseWait    = 10 * time.Second
	tapBatch        = 256  // changes read from a cursor at a time
	tapBackfillPart = 4096 // the most versions of one vbucket a walk reads
	// tapBackfillBudget is how many versions a walk reads, shared by the
	// vbuckets it reads, each at least tapBackfillMin.
	tapBackfillBudget = 64 << 10
	tapBackfillMin    = 64
	tapMaxRegistered  = 1024
	tapTTL            = 0xff
)

// tapKnownFlags are the TAP_CONNECT flags gocache takes.
const tapKnownFlags = gm.BACKFILL | gm.DUMP | gm.LIST_VBUCKETS | gm.TAKEOVER_VBUCKETS |
	gm.SUPPORT_ACK | gm.REQUEST_KEYS_ONLY | gm.CHECKPOINT | gm.REGISTERED_CLIENT | gm.FIX_FLAG_BYTEORDER

var (
	tapCheckpointStartKey = []byte("checkpoint_start")
	tapCheckpointEndKey   = []byte("checkpoint_end")
)

// Errors of a TAP producer.
var (
	// errTapConnect: a malformed TAP_CONNECT.
	errTapConnect = errors.New("gocache: bad TAP_CONNECT")
	// errTapNack: the consumer refused a message.
	errTapNack = errors.New("gocache: tap consumer refused a message")
	// errTapLost: the consumer fell behind the change log.
	errTapLost = errors.New("gocache: tap consumer fell behind the change log")
	// errTapEnded: the connection, or the producer, ended.
	errTapEnded = errors.New("gocache: tap producer ended")
	// errTapResend: messages are to be sent again (TMPFAIL).
	errTapResend = errors.New("gocache: tap messages to send again")
)

// tapServer serves TAP_CONNECT and knows every TAP producer: by
// connection, for their consumers' acknowledgements, and by bucket and
// name.
type tapServer struct {
	h *handler
	// Limits; tests shrink them.
	ackInterval, ackWindow uint32
	ackBytes               int
	grace, backoff         time.Duration
	closeWait              time.Duration

	mu         sync.Mutex
	conns      map[*memcached.Conn]*tapProducer
	names      map[tapName]*tapProducer
	registered map[tapName]*tapRegistration
	flushes    map[*bucket]*tapFlushes
}

type tapName struct {
	b    *bucket
	name string
}

// tapRegistration is what is kept of a registered consumer.
type tapRegistration struct {
	vbs   map[uint16]tapPosition
	saved time.Time
}

type tapPosition struct{ uuid, seqno uint64 }

// tapFlushes counts a bucket's flushes, begun and done, so that a
// producer whose cursors lost their changes can tell a flush from falling
// behind.
type tapFlushes struct{ begun, done atomic.Uint64 }

// registerTap registers TAP_CONNECT, and wraps FLUSH so that TAP
// producers learn of flushes. It must come after FLUSH's registration.
func (h *handler) registerTap(m *memcached.ServeMux) {
	t := &tapServer{h: h,
		ackInterval: tapAckInterval, ackWindow: tapAckWindow, ackBytes: tapAckBytes,
		grace: tapGrace, backoff: tapBackoff, closeWait: tapCloseWait,
		conns: map[*memcached.Conn]*tapProducer{}, names: map[tapName]*tapProducer{},
		registered: map[tapName]*tapRegistration{}, flushes: map[*bucket]*tapFlushes{},
	}
	m.Handle(t, gm.TAP_CONNECT)
	if fl := m.Handler(gm.FLUSH); fl != nil {
		m.HandleFunc(func(w memcached.ResponseWriter, req *gm.MCRequest) {
			b := state(w).bucket
			if b == nil || !tapImmediateFlush(req) {
				fl.ServeMC(w, req)
				return
			}
			f := t.flushesOf(b)
			f.begun.Add(1)
			defer f.done.Add(1)
			fl.ServeMC(w, req)
		}, gm.FLUSH, gm.FLUSHQ)
	}
}

// tapImmediateFlush reports whether req flushes at once (no delay, or
// one of a second). A delayed flush, done later, is not seen: a producer
// whose cursors it empties is cut as one that fell behind.
func tapImmediateFlush(req *gm.MCRequest) bool {
	return len(req.Extras) == 0 || len(req.Extras) == 4 && binary.BigEndian.Uint32(req.Extras) <= 1
}

func (t *tapServer) flushesOf(b *bucket) *tapFlushes {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.flushes[b]
	if f == nil {
		f = &tapFlushes{}
		t.flushes[b] = f
	}
	return f
}

// tapResponse hands a TAP consumer's response (an acknowledgement) to its
// producer, and reports whether the connection has one.
func tapResponse(h *handler, c *memcached.Conn, res *gm.MCResponse) bool {
	t, ok := h.mux.Handler(gm.TAP_CONNECT).(*tapServer)
	if !ok {
		return false
	}
	t.mu.Lock()
	p := t.conns[c]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.ack(res.Opaque, res.Status)
	return true
}

// tapConnect is a parsed TAP_CONNECT.
type tapConnect struct {
	name        string
	flags       gm.TapConnectFlag
	backfill    uint64            // BACKFILL's date
	vbuckets    []uint16          // LIST_VBUCKETS's, nil for every vbucket
	checkpoints map[uint16]uint64 // CHECKPOINT's last checkpoint ids
}

// parseTapConnect parses and checks a TAP_CONNECT for a bucket of nvb
// vbuckets. What follows the values of the flags is ignored, as kv_engine
// ignored it.
func parseTapConnect(req *gm.MCRequest, nvb int) (tapConnect, error) {
	tc := tapConnect{name: string(req.Key)}
	switch len(req.Extras) {
	case 0:
	case 4:
		tc.flags = gm.TapConnectFlag(binary.BigEndian.Uint32(req.Extras))
	default:
		return tc, fmt.Errorf("%w: extras of %d bytes, not 4", errTapConnect, len(req.Extras))
	}
	if unknown := tc.flags &^ tapKnownFlags; unknown != 0 {
		return tc, fmt.Errorf("%w: unknown flags 0x%x", errTapConnect, uint32(unknown))
	}
	body := req.Body
	if tc.flags&gm.BACKFILL != 0 {
		if len(body) < 8 {
			return tc, fmt.Errorf("%w: backfill date of %d bytes, not 8", errTapConnect, len(body))
		}
		tc.backfill, body = binary.BigEndian.Uint64(body), body[8:]
	}
	if tc.flags&gm.LIST_VBUCKETS != 0 {
		if len(body) < 2 {
			return tc, fmt.Errorf("%w: no vbucket count", errTapConnect)
		}
		n := int(binary.BigEndian.Uint16(body))
		body = body[2:]
		if 2*n > len(body) {
			return tc, fmt.Errorf("%w: %d vbuckets listed in %d bytes", errTapConnect, n, len(body))
		}
		if n > 0 {
			seen := make(map[uint16]bool, n)
			tc.vbuckets = make([]uint16, 0, n)
			for i := range n {
				vb := binary.BigEndian.Uint16(body[2*i:])
				if int(vb) >= nvb {
					return tc, fmt.Errorf("%w: vbucket %d of %d", errTapConnect, vb, nvb)
				}
				if !seen[vb] {
					seen[vb] = true
					tc.vbuckets = append(tc.vbuckets, vb)
				}
			}
		}
		body = body[2*n:]
	}
	if tc.flags&gm.CHECKPOINT != 0 && len(body) >= 2 {
		n := int(binary.BigEndian.Uint16(body))
		body = body[2:]
		if 10*n > len(body) {
			return tc, fmt.Errorf("%w: %d checkpoint ids in %d bytes", errTapConnect, n, len(body))
		}
		tc.checkpoints = make(map[uint16]uint64, n)
		for i := range n {
			tc.checkpoints[binary.BigEndian.Uint16(body[10*i:])] = binary.BigEndian.Uint64(body[10*i+2:])
		}
	}
	if tc.flags&gm.REGISTERED_CLIENT != 0 && tc.name == "" {
		return tc, fmt.Errorf("%w: a registered client needs a name", errTapConnect)
	}
	return tc, nil
}

var _ memcached.Handler = (*tapServer)(nil)

// ServeMC serves TAP_CONNECT.
func (t *tapServer) ServeMC(w memcached.ResponseWriter, req *gm.MCRequest) {
	c := w.Conn()
	t.mu.Lock()
	taken := t.conns[c] != nil
	t.mu.Unlock()
	if taken || state(w).dcp != nil {
		w.WriteStatus(req, gm.EINVAL, []byte("The connection is already a TAP or DCP connection"))
		return
	}
	b := t.h.bucketFor(w, req)
	if b == nil {
		return
	}
	tc, err := parseTapConnect(req, b.cache.VBuckets())
	if err != nil {
		c.Logger().Info("tap: connect refused", "reason", err)
		w.WriteStatus(req, gm.EINVAL, []byte(err.Error()))
		w.Close()
		return
	}
	t.start(c, b, tc, state(w).features.Has(gm.FeatureJSON))
}

// start makes c a producer of b as tc asks.
func (t *tapServer) start(c *memcached.Conn, b *bucket, tc tapConnect, json bool) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &tapProducer{
		t: t, c: c, b: b, name: tc.name, flags: tc.flags, json: json,
		ackMode: tc.flags&gm.SUPPORT_ACK != 0, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}), ackedPos: map[uint16]uint64{},
		log: c.Logger().With("tap", tc.name),
	}
	key := tapName{b, tc.name}
	f := t.flushesOf(b)
	t.mu.Lock()
	var old *tapProducer
	if tc.name != "" {
		old = t.names[key]
		t.names[key] = p
	}
	t.conns[c] = p
	t.mu.Unlock()
	if old != nil {
		old.log.Info("tap: connection name reused, closing the old connection")
		old.kill()
		// Its position is kept as it ends, which is soon.
		select {
		case <-old.done:
		case <-time.After(time.Second):
		}
	}
	t.mu.Lock()
	var reg *tapRegistration
	if tc.flags&gm.REGISTERED_CLIENT != 0 {
		reg = t.registered[key]
	} else if tc.name != "" {
		delete(t.registered, key)
	}
	t.mu.Unlock()
	p.flushSeen = f.done.Load()

	vbs := tc.vbuckets
	if vbs == nil {
		vbs = make([]uint16, b.cache.VBuckets())
		for i := range vbs {
			vbs[i] = uint16(i)
		}
	}
	backfill := tc.flags&gm.BACKFILL == 0 || tc.backfill <= uint64(time.Now().Unix())
	c0 := b.cache
	for _, id := range vbs {
		cur, err := c0.ChangesFunc(id, p.notify) // the cursor first: every change after high reaches it
		if err != nil {
			continue // parseTapConnect checked the ids
		}
		high, uuid := c0.HighSeqno(id)
		v := &tapVB{id: id, cur: cur, uuid: uuid, live: high, bfNext: 1, bfTo: high, checkpoint: tc.checkpoints[id]}
		if pos, ok := reg.position(id); ok && pos.uuid == uuid && pos.seqno <= high {
			v.bfNext = pos.seqno + 1 // resumed: no reset, deletions too
		} else {
			v.full = backfill
			if !backfill {
				v.bfNext = high + 1
			}
		}
		p.vbs = append(p.vbs, v)
	}
	p.listed = tc.vbuckets != nil
	p.log.Debug("tap: connected", "flags", tc.flags.String(), "vbuckets", len(p.vbs), "backfill", backfill, "resumed", reg != nil)
	go p.watch()
	go p.run()
}

func (r *tapRegistration) position(vb uint16) (tapPosition, bool) {
	if r == nil {
		return tapPosition{}, false
	}
	pos, ok := r.vbs[vb]
	return pos, ok
}

// tapProducer is one TAP producer connection. Its goroutine (run) owns
// the vbuckets' state and sends; the acknowledgements, taken on the
// connection's goroutine, are shared under mu.
type tapProducer struct {
	t       *tapServer
	c       *memcached.Conn
	b       *bucket
	name    string
	flags   gm.TapConnectFlag
	json    bool
	ackMode bool
	listed  bool
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	// bfReqs and bfVBs are readBackfills' (run's).
	bfReqs []cache.BackfillRequest
	bfVBs  []*tapVB
	done   chan struct{} // closed once cleaned up

	vbs       []*tapVB
	seqno     uint32  // the last message's number
	held      *tapMsg // a data message not sent yet (ack mode): the next tells whether it is the last
	scratch   tapMsg  // the message being built, without acks
	flushSeen uint64  // the bucket's flushes done when last looked
	blockedAt atomic.Int64
	blockedOn atomic.Pointer[string]

	mu       sync.Mutex
	sent     []*tapMsg // sent, not acknowledged (ack mode), oldest first
	sentSize int
	waitFor  uint32 // a control message's number: nothing is sent until it is acknowledged
	again    bool   // TMPFAIL: send the unacknowledged messages again
	nack     gm.Status
	ackedPos map[uint16]uint64 // per vbucket, the seqno of the last change acknowledged
}

// tapVB is one vbucket of a feed.
type tapVB struct {
	id   uint16
	cur  *cache.Cursor
	uuid uint64
	// live: the changes up to it are covered (by the backfill, or sent);
	// the cursor's are sent from the next.
	live uint64
	// bfNext..bfTo is what is left to backfill; full for a backfill of
	// everything (the consumer resets the vbucket; no deletions).
	bfNext, bfTo uint64
	full         bool
	checkpoint   uint64
	// versions is a part of the backfill read and not sent (read says
	// so).
	versions []cache.Version
	read     bool
	changes  []cache.Change
}

// backfilling reports whether v has a backfill to send.
func (v *tapVB) backfilling() bool { return v.read || v.bfNext <= v.bfTo }

// tapMsg is one message, kept until acknowledged in ack mode.
type tapMsg struct {
	req      gm.MCRequest
	ext      [16]byte
	val      [8]byte
	vb       uint16
	doc      uint64 // the change's seqno; 0 for a control message
	explicit bool   // a control message: nothing follows until it is acknowledged
	flags    uint16 // TAP flags but TAP_ACK
}

func (p *tapProducer) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// kill ends the producer and closes its connection (a name reused, a
// consumer cut).
func (p *tapProducer) kill() {
	p.cancel()
	p.c.Close(nil)
}

// ack takes the consumer's response to message seqno.
func (p *tapProducer) ack(seqno uint32, status gm.Status) {
	defer p.notify()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := -1
	for j, m := range p.sent {
		if m.req.Opaque == seqno {
			i = j
			break
		}
	}
	if i < 0 {
		p.log.Debug("tap: acknowledgement of no message waiting for one", "seqno", seqno, "status", status.String())
		return
	}
	switch status {
	case gm.SUCCESS:
		p.dropLocked(i + 1)
	case gm.TMPFAIL, gm.EBUSY:
		p.dropLocked(i)
		p.again = true
	default:
		p.dropLocked(i)
		p.nack = status
	}
}

// dropLocked forgets the first n messages sent, acknowledged.
func (p *tapProducer) dropLocked(n int) {
	for _, m := range p.sent[:n] {
		if m.doc != 0 {
			p.ackedPos[m.vb] = m.doc
		}
		if m.req.Opaque == p.waitFor {
			p.waitFor = 0
		}
		p.sentSize -= m.req.Size()
	}
	k := copy(p.sent, p.sent[n:])
	clear(p.sent[k:])
	p.sent = p.sent[:k]
}

// run streams until the feed ends, then cleans up.
func (p *tapProducer) run() {
	defer p.cleanup()
	err := p.stream()
	switch {
	case err == nil:
	case errors.Is(err, errTapEnded), p.ctx.Err() != nil:
		p.log.Debug("tap: ended", "reason", err)
	default:
		p.log.Warn("tap: closing the connection", "reason", err)
		p.kill()
	}
}

// cleanup closes the cursors, forgets the producer and keeps a registered
// consumer's position.
func (p *tapProducer) cleanup() {
	defer close(p.done)
	p.cancel()
	for _, v := range p.vbs {
		if v.cur != nil {
			v.cur.Close()
		}
	}
	t := p.t
	key := tapName{p.b, p.name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[p.c] == p {
		delete(t.conns, p.c)
	}
	if p.name != "" && t.names[key] == p {
		delete(t.names, key)
	}
	if p.flags&gm.REGISTERED_CLIENT == 0 {
		return
	}
	reg := &tapRegistration{vbs: map[uint16]tapPosition{}, saved: time.Now()}
	p.mu.Lock()
	for _, v := range p.vbs {
		pos, ok := v.live, true
		if p.ackMode {
			pos, ok = p.ackedPos[v.id]
		}
		if ok {
			reg.vbs[v.id] = tapPosition{v.uuid, pos}
		}
	}
	p.mu.Unlock()
	t.registered[key] = reg
	if len(t.registered) > tapMaxRegistered {
		var oldest tapName
		first := true
		for k, r := range t.registered {
			if first || r.saved.Before(t.registered[oldest].saved) {
				oldest, first = k, false
			}
		}
		delete(t.registered, oldest)
		p.log.Info("tap: too many registered clients, forgetting the oldest", "name", oldest.name)
	}
}

// watch cuts a consumer that keeps the producer blocked (its send queue
// full, or its window unacknowledged) for the grace period.
func (p *tapProducer) watch() {
	tick := time.NewTicker(max(p.t.grace/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.c.Done():
			return
		case <-tick.C:
		}
		at := p.blockedAt.Load()
		if at == 0 {
			continue
		}
		if d := time.Since(time.Unix(0, at)); d > p.t.grace {
			on := "?"
			if s := p.blockedOn.Load(); s != nil {
				on = *s
			}
			p.log.Warn("tap: consumer too slow, closing the connection", "waiting", on, "for", d.Round(time.Millisecond))
			p.kill()
			return
		}
	}
}

var (
	blockedSend = "the consumer to read"
	blockedAck  = "acknowledgements"
	blockedData = "changes"
)

func (p *tapProducer) block(on *string) {
	p.blockedOn.Store(on)
	p.blockedAt.Store(time.Now().UnixNano())
}

func (p *tapProducer) unblock() { p.blockedAt.Store(0) }

// stream sends the feed: the opening control messages, the backfills,
// then the live changes, or, for a dump or a takeover, the end.
func (p *tapProducer) stream() error {
	if p.ackMode {
		if err := p.control(gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_ENABLE_AUTO_NACK); err != nil {
			return err
		}
	}
	if p.flags&gm.CHECKPOINT != 0 {
		if err := p.control(gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC); err != nil {
			return err
		}
	}
	takeover := p.flags&gm.TAKEOVER_VBUCKETS != 0
	if takeover && p.listed {
		for _, v := range p.vbs {
			if err := p.control(gm.TAP_VBUCKET_SET, v.id, uint32(cache.Pending)); err != nil {
				return err
			}
		}
	}
	for _, v := range p.vbs {
		if v.full {
			if err := p.control(gm.TAP_OPAQUE, v.id, gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM); err != nil {
				return err
			}
		}
		if err := p.backfill(v); err != nil {
			return err
		}
		if v.full {
			v.full = false
			// After the backfill is acknowledged, as kv_engine.
			if err := p.allAcked(); err != nil {
				return err
			}
			if err := p.control(gm.TAP_OPAQUE, v.id, gm.TAP_OPAQUE_CLOSE_BACKFILL); err != nil {
				return err
			}
		}
	}
	if p.flags&gm.DUMP == 0 && !takeover {
		return p.live()
	}
	for _, v := range p.vbs {
		if err := p.catchUp(v); err != nil {
			return err
		}
	}
	if takeover && p.listed {
		for _, v := range p.vbs {
			if p.b.cache.State(v.id) == cache.Active {
				if err := p.b.cache.SetState(v.id, cache.Dead); err != nil {
					return err
				}
				p.log.Info("tap: vbucket dead, taken over", "vb", v.id)
			}
			if err := p.catchUp(v); err != nil {
				return err
			}
			if err := p.allAcked(); err != nil {
				return err
			}
			if err := p.control(gm.TAP_VBUCKET_SET, v.id, uint32(cache.Active)); err != nil {
				return err
			}
		}
	}
	if err := p.allAcked(); err != nil {
		return err
	}
	return p.end()
}

// end sends CLOSE_TAP_STREAM, which is not acknowledged, and closes the
// connection once the consumer had time to read it.
func (p *tapProducer) end() error {
	for _, v := range p.vbs {
		v.cur.Close()
	}
	m := p.opaqueMsg(gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_TAP_STREAM)
	m.req.Opaque = p.nextSeqno()
	if err := p.sendPacket(&m.req); err != nil {
		return err
	}
	t := time.NewTimer(p.t.closeWait)
	defer t.Stop()
	select {
	case <-p.c.Done():
	case <-p.ctx.Done():
	case <-t.C:
		p.kill()
	}
	return nil
}

// live sends the changes as they come, until the connection ends.
func (p *tapProducer) live() error {
	for {
		progress := false
		for _, v := range p.vbs {
			if v.backfilling() {
				if err := p.backfill(v); err != nil { // after a flush
					return err
				}
				progress = true
				continue
			}
			n, err := p.changes(v)
			if err != nil {
				return err
			}
			progress = progress || n
		}
		if progress {
			continue
		}
		if err := p.flushHeld(); err != nil {
			return err
		}
		// Every cursor signals p.wake (ChangesFunc), as acknowledgements do.
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			return errTapEnded
		case <-p.c.Done():
			return errTapEnded
		}
		if err := p.pending(); err != nil {
			return err
		}
	}
}

// pending acts on what the acknowledgements asked for: a refusal ends
// the feed, TMPFAIL sends the unacknowledged messages again.
func (p *tapProducer) pending() error {
	p.mu.Lock()
	nack, again := p.nack, p.again
	p.mu.Unlock()
	switch {
	case nack != 0:
		return fmt.Errorf("%w: status %s", errTapNack, nack)
	case again:
		return p.resend(nil)
	}
	return nil
}

// catchUp sends v's changes up to its high seqno now.
func (p *tapProducer) catchUp(v *tapVB) error {
	high, _ := p.b.cache.HighSeqno(v.id)
	for v.live < high {
		n, err := p.changes(v)
		if err != nil {
			return err
		}
		if n {
			continue
		}
		// Numbered, not yet logged: it comes.
		if err := p.flushHeld(); err != nil {
			return err
		}
		p.block(&blockedData)
		select {
		case <-v.cur.Ready():
		case <-p.ctx.Done():
			return errTapEnded
		case <-p.c.Done():
			return errTapEnded
		}
		p.unblock()
	}
	return nil
}

// backfill sends what v holds from bfNext to bfTo, in parts, within a
// checkpoint.
func (p *tapProducer) backfill(v *tapVB) error {
	started := false
	for v.backfilling() {
		if !v.read {
			p.readBackfills(v)
		}
		vs := v.versions
		v.read = false
		for i := range vs {
			ver := &vs[i]
			if ver.Deleted && v.full {
				continue
			}
			kind := cache.Mutated
			if ver.Deleted {
				kind = cache.Deleted
			}
			m := p.docMsg(v, kind, ver.Key, &ver.Item)
			if m == nil {
				continue
			}
			if !started {
				if err := p.checkpointStart(v); err != nil {
					return err
				}
				started = true
			}
			if err := p.data(m); err != nil {
				return err
			}
		}
		clear(vs)
		v.versions = vs[:0]
	}
	if started {
		return p.checkpointEnd(v)
	}
	return nil
}

// readBackfills reads the next part of v's backfill, and of every other
// vbucket that has a backfill to read and none read, in one walk.
func (p *tapProducer) readBackfills(v *tapVB) {
	reqs := p.bfReqs[:0]
	vbs := append(p.bfVBs[:0], v)
	for _, w := range p.vbs {
		if w != v && !w.read && w.bfNext <= w.bfTo {
			vbs = append(vbs, w)
		}
	}
	part := min(max(tapBackfillBudget/len(vbs), tapBackfillMin), tapBackfillPart)
	for _, w := range vbs {
		reqs = append(reqs, cache.BackfillRequest{VBucket: w.id, From: w.bfNext, To: w.bfTo, Max: part, Versions: w.versions[:0]})
	}
	err := p.b.cache.BackfillMany(reqs)
	for i, w := range vbs {
		vs := reqs[i].Versions
		switch {
		case err != nil:
			clear(vs)
			vs = vs[:0]
			w.bfNext = w.bfTo + 1
		case len(vs) < part:
			w.bfNext = w.bfTo + 1
		default:
			w.bfNext = vs[len(vs)-1].Seqno + 1
		}
		w.versions, w.read = vs, true
	}
	clear(reqs)
	clear(vbs)
	p.bfReqs, p.bfVBs = reqs[:0], vbs[:0]
}

// changes sends the next batch of v's cursor, within a checkpoint, and
// reports whether it read any.
func (p *tapProducer) changes(v *tapVB) (bool, error) {
	chs, err := v.cur.Next(v.changes[:0], tapBatch)
	switch {
	case errors.Is(err, cache.ErrChangesLost):
		return true, p.lost(v)
	case err != nil:
		return false, errTapEnded
	}
	v.changes = chs
	started := false
	for i := range chs {
		ch := &chs[i]
		if ch.Seqno <= v.live {
			continue // covered by the backfill
		}
		v.live = ch.Seqno
		m := p.docMsg(v, ch.Kind, ch.Key, &ch.Item)
		if m == nil {
			continue
		}
		if !started {
			if err := p.checkpointStart(v); err != nil {
				return true, err
			}
			started = true
		}
		if err := p.data(m); err != nil {
			return true, err
		}
	}
	clear(chs)
	if started {
		return true, p.checkpointEnd(v)
	}
	return len(chs) > 0, nil
}

// lost handles v's cursor losing its changes: after a flush, TAP_FLUSH
// and every vbucket starts again from what is stored (all of it is newer
// than the flush); otherwise the consumer fell behind and is cut.
func (p *tapProducer) lost(v *tapVB) error {
	f := p.t.flushesOf(p.b)
	// A flush under way finishes at once: wait for it, briefly.
	for i := 0; i < 1000 && f.begun.Load() != f.done.Load(); i++ {
		time.Sleep(time.Millisecond)
	}
	done := f.done.Load()
	if done == p.flushSeen {
		return fmt.Errorf("%w: vbucket %d after seqno %d", errTapLost, v.id, v.live)
	}
	p.flushSeen = done
	p.log.Info("tap: bucket flushed", "vb", v.id)
	if err := p.control(gm.TAP_FLUSH, 0, 0); err != nil {
		return err
	}
	for _, w := range p.vbs {
		w.cur.Close()
		cur, err := p.b.cache.ChangesFunc(w.id, p.notify)
		if err != nil {
			return err
		}
		w.cur = cur
		high, _ := p.b.cache.HighSeqno(w.id)
		w.bfNext, w.bfTo, w.live = w.live+1, high, high
		clear(w.versions) // read before the flush
		w.versions, w.read = w.versions[:0], false
	}
	return nil
}

// docMsg returns the message of a document's change, nil for a key of
// another collection than the default one (TAP knows no collections).
func (p *tapProducer) docMsg(v *tapVB, kind cache.ChangeKind, key []byte, it *cache.Item) *tapMsg {
	cid, name, ok := cache.SplitKey(key)
	if !ok || cid != 0 {
		return nil
	}
	m := p.newMsg()
	m.vb, m.doc = v.id, it.Seqno
	m.req = gm.MCRequest{VBucket: v.id, Cas: it.CAS, Key: name}
	keysOnly := p.flags&gm.REQUEST_KEYS_ONLY != 0
	if keysOnly {
		m.flags |= gm.TAP_NO_VALUE
	}
	if kind != cache.Mutated {
		m.req.Opcode, m.req.Extras = gm.TAP_DELETE, tapHeader(m.ext[:8], 0)
		return m
	}
	ex := tapHeader(m.ext[:16], 0)
	binary.BigEndian.PutUint32(ex[8:], it.Flags)
	if !it.Expires.IsZero() {
		binary.BigEndian.PutUint32(ex[12:], uint32(it.Expires.Unix()))
	}
	m.req.Opcode, m.req.Extras = gm.TAP_MUTATION, ex
	if p.flags&gm.FIX_FLAG_BYTEORDER != 0 {
		m.flags |= gm.TAP_FLAG_NETWORK_BYTE_ORDER
	}
	if !keysOnly {
		m.req.Body = docBody(it)
		if p.json {
			m.req.DataType = it.Datatype & gm.DatatypeFlagJSON
		}
	}
	return m
}

// tapHeader clears ex and writes TAP's header: no engine-specific data
// but engine bytes, the TTL.
func tapHeader(ex []byte, engine uint16) []byte {
	clear(ex)
	binary.BigEndian.PutUint16(ex, engine)
	ex[4] = tapTTL
	return ex
}

// newMsg returns a message to build: the producer's scratch one when
// nothing is kept, a new one in ack mode.
func (p *tapProducer) newMsg() *tapMsg {
	if p.ackMode {
		return &tapMsg{}
	}
	p.scratch = tapMsg{}
	return &p.scratch
}

// opaqueMsg returns a control message whose engine-specific data is a
// 4-byte value (TAP_OPAQUE's code, TAP_VBUCKET_SET's state), or a
// TAP_FLUSH.
func (p *tapProducer) opaqueMsg(op gm.CommandCode, vb uint16, value uint32) *tapMsg {
	m := &tapMsg{vb: vb, explicit: true}
	m.req = gm.MCRequest{Opcode: op, VBucket: vb}
	if op == gm.TAP_FLUSH {
		m.req.Extras = tapHeader(m.ext[:8], 0)
		return m
	}
	ex := tapHeader(m.ext[:12], 4)
	binary.BigEndian.PutUint32(ex[8:], value)
	m.req.Extras = ex
	return m
}

// control sends a control message: after the data before it, and, in ack
// mode, nothing after it until it is acknowledged.
func (p *tapProducer) control(op gm.CommandCode, vb uint16, value uint32) error {
	if err := p.flushHeld(); err != nil {
		return err
	}
	return p.put(p.opaqueMsg(op, vb, value), true)
}

func (p *tapProducer) checkpointStart(v *tapVB) error {
	if p.flags&gm.CHECKPOINT == 0 {
		return nil
	}
	v.checkpoint++
	return p.checkpointMsg(gm.TAP_CHECKPOINT_START, tapCheckpointStartKey, v)
}

func (p *tapProducer) checkpointEnd(v *tapVB) error {
	if p.flags&gm.CHECKPOINT == 0 {
		return nil
	}
	return p.checkpointMsg(gm.TAP_CHECKPOINT_END, tapCheckpointEndKey, v)
}

// checkpointMsg sends a checkpoint's start or end: the mutation layout
// with no flags, the key, the id as the value.
func (p *tapProducer) checkpointMsg(op gm.CommandCode, key []byte, v *tapVB) error {
	if err := p.flushHeld(); err != nil {
		return err
	}
	m := &tapMsg{vb: v.id, explicit: true}
	binary.BigEndian.PutUint64(m.val[:], v.checkpoint)
	m.req = gm.MCRequest{Opcode: op, VBucket: v.id, Key: key, Extras: tapHeader(m.ext[:16], 0), Body: m.val[:]}
	return p.put(m, true)
}

// data sends a document's message; in ack mode it is held until the next
// one, which tells whether it is the last of a run.
func (p *tapProducer) data(m *tapMsg) error {
	if !p.ackMode {
		return p.emit(m, false)
	}
	prev := p.held
	p.held = m
	if prev == nil {
		return nil
	}
	return p.put(prev, false)
}

// flushHeld sends the held message, as the last of its run.
func (p *tapProducer) flushHeld() error {
	m := p.held
	if m == nil {
		return nil
	}
	p.held = nil
	return p.put(m, true)
}

// put sends m, first sending again what TMPFAIL asked for.
func (p *tapProducer) put(m *tapMsg, last bool) error {
	err := p.emit(m, last)
	if err != errTapResend {
		return err
	}
	return p.resend([]*tapMsg{m})
}

// resend sends again, after the backoff, the unacknowledged messages from
// the one refused with TMPFAIL on, then more, in order; the others it
// had are acknowledged.
func (p *tapProducer) resend(more []*tapMsg) error {
	var pending []*tapMsg
	for {
		p.mu.Lock()
		p.again = false
		p.waitFor = 0
		pending = append(append([]*tapMsg(nil), p.sent...), pending...)
		clear(p.sent)
		p.sent, p.sentSize = p.sent[:0], 0
		p.mu.Unlock()
		pending = append(pending, more...)
		more = nil
		p.log.Debug("tap: sending again", "messages", len(pending))
		t := time.NewTimer(p.t.backoff)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return errTapEnded
		case <-p.c.Done():
			t.Stop()
			return errTapEnded
		}
		for len(pending) > 0 {
			err := p.emit(pending[0], len(pending) == 1)
			if err == errTapResend {
				break
			}
			if err != nil {
				return err
			}
			pending = pending[1:]
		}
		if len(pending) == 0 {
			return nil
		}
	}
}

// allAcked waits until every message sent is acknowledged (ack mode).
func (p *tapProducer) allAcked() error {
	if err := p.flushHeld(); err != nil {
		return err
	}
	for p.ackMode {
		err := p.wait(func() bool { return len(p.sent) == 0 })
		if err == errTapResend {
			if err := p.resend(nil); err != nil {
				return err
			}
			continue
		}
		return err
	}
	return nil
}

// wait waits until ready (called under mu) holds, the consumer refuses a
// message (errTapNack) or asks for messages again (errTapResend).
func (p *tapProducer) wait(ready func() bool) error {
	for {
		p.mu.Lock()
		nack, again, ok := p.nack, p.again, ready()
		p.mu.Unlock()
		switch {
		case nack != 0:
			return fmt.Errorf("%w: status %s", errTapNack, nack)
		case again:
			return errTapResend
		case ok:
			return nil
		}
		p.block(&blockedAck)
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			return errTapEnded
		case <-p.c.Done():
			return errTapEnded
		}
		p.unblock()
	}
}

// emit numbers and sends m: in ack mode once the window has room, asking
// for an acknowledgement where one is due, and keeping m until it comes.
func (p *tapProducer) emit(m *tapMsg, last bool) error {
	flags := m.flags
	if p.ackMode {
		t := p.t
		err := p.wait(func() bool {
			return p.waitFor == 0 && len(p.sent) < int(t.ackInterval*t.ackWindow) && p.sentSize < t.ackBytes
		})
		if err != nil {
			return err
		}
		m.req.Opaque = p.nextSeqno()
		size := m.req.Size()
		p.mu.Lock()
		if m.explicit || last || p.seqno%max(t.ackInterval, 1) == 0 ||
			len(p.sent)+1 >= int(t.ackInterval*t.ackWindow) || p.sentSize+size >= t.ackBytes {
			flags |= gm.TAP_ACK
		}
		if m.explicit {
			p.waitFor = p.seqno
		}
		p.sent = append(p.sent, m)
		p.sentSize += size
		p.mu.Unlock()
	} else {
		m.req.Opaque = p.nextSeqno()
	}
	binary.BigEndian.PutUint16(m.req.Extras[2:], flags)
	return p.sendPacket(&m.req)
}

// nextSeqno numbers the next message; 0, which means none, is skipped
// when the numbers wrap.
func (p *tapProducer) nextSeqno() uint32 {
	p.seqno++
	if p.seqno == 0 {
		p.seqno = 1
	}
	return p.seqno
}

// sendPacket sends pkt, marking the producer blocked while the queue is
// full.
func (p *tapProducer) sendPacket(pkt *gm.MCRequest) error {
	if err := p.c.TrySend(pkt); err == nil {
		return nil
	} else if !errors.Is(err, memcached.ErrQueueFull) {
		return fmt.Errorf("%w: %v", errTapEnded, err)
	}
	p.block(&blockedSend)
	defer p.unblock()
	if err := p.c.Send(p.ctx, pkt); err != nil {
		return fmt.Errorf("%w: %v", errTapEnded, err)
	}
	return nil
}
