package mcbench

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// Reconnection backoff after a connection failure.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
	// maxFailures ends a connection after this many failures in a row on
	// runs that only Requests bound, which otherwise could retry forever.
	maxFailures = 5
)

// readerSize is the initial buffer of a connection's Reader.
const readerSize = 64 << 10

// opKind is what a slot's request does.
type opKind uint8

const (
	opGet opKind = iota
	opSet
	opDelete
	numOpKinds
)

var opNames = [numOpKinds]string{"get", "set", "delete"}

// plainOps and quietOps are the opcodes of each kind of operation by mode.
var (
	plainOps = [numOpKinds]gm.CommandCode{gm.GET, gm.SET, gm.DELETE}
	quietOps = [numOpKinds]gm.CommandCode{gm.GETKQ, gm.SETQ, gm.DELETEQ}
)

// slot is a request in flight.
type slot struct {
	sent     int64  // ns since the run's start
	hash     uint64 // of the key
	opaque   uint32
	key      uint32 // index
	kind     opKind
	answered bool // quiet mode
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// worker drives one connection from one goroutine: it writes the requests
// that fit, then reads at least one response and every other one already
// buffered, and repeats. Only live is read by other goroutines.
type worker struct {
	id  int
	r   *run
	cfg *Config

	conn net.Conn
	cr   countingReader
	rd   *gm.Reader
	dl   time.Time // the connection's deadline

	req              gm.MCRequest
	res              gm.MCResponse
	wbuf, kbuf, vbuf []byte
	extras           [8]byte // SET: flags, expiry 0
	rng              uint64
	seq              uint32 // next opaque

	slots []slot
	// Plain mode: slots is a FIFO of n requests from head.
	head, n int
	// Quiet mode: slots[:batchN] are the batch in flight when batchOpen;
	// their opaques start at base and the NOOP's is noop.
	batchN    int
	batchOpen bool
	base      uint32
	noop      uint32
	batchSent int64

	exhausted bool // no more of Config.Requests to claim
	failures  int  // in a row
	st        stats

	// live mirrors the counters the progress line shows.
	live struct {
		ops, problems atomic.Uint64
	}
}

func newWorker(r *run, id int) *worker {
	w := &worker{
		id:    id,
		r:     r,
		cfg:   &r.cfg,
		rng:   r.cfg.Seed*0x9e3779b97f4a7c15 + uint64(id)*0xd1b54a32d192ed03,
		slots: make([]slot, r.depth),
		seq:   1,
	}
	w.rd = gm.NewReaderSize(&w.cr, readerSize)
	binary.BigEndian.PutUint32(w.extras[:4], valueFlags)
	return w
}

// dial connects, replacing any previous connection.
func (w *worker) dial(timeout time.Duration) error {
	c, err := net.DialTimeout(w.cfg.Network, w.cfg.Addr, timeout)
	if err != nil {
		return err
	}
	w.conn, w.dl = c, time.Time{}
	w.cr.r = c
	w.rd.Reset(&w.cr)
	return nil
}

// close closes the connection, forgetting what was in flight.
func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	w.head, w.n = 0, 0
	w.batchOpen = false
	for i := range w.slots {
		w.slots[i].answered = false
	}
	w.wbuf = w.wbuf[:0]
}

// loop runs the connection until the run stops, reconnecting after
// failures.
func (w *worker) loop() {
	defer func() {
		w.close()
		w.st.bytesIn = w.cr.n
	}()
	backoff := minBackoff
	for {
		if w.conn == nil {
			if w.cfg.Duration == 0 && w.failures >= maxFailures {
				return
			}
			ns := w.r.now()
			if w.stopping(ns) {
				return
			}
			time.Sleep(time.Duration(min(int64(backoff), w.r.end.Load()-ns)))
			backoff = min(2*backoff, maxBackoff)
			timeout := w.r.dialTimeout()
			if w.stopping(w.r.now()) || timeout <= 0 {
				return
			}
			if err := w.dial(timeout); err != nil {
				w.failures++
				w.st.errs[errConnect]++
				w.st.sample(fmt.Sprintf("conn %d: connect: %v", w.id, err))
				w.publish()
				continue
			}
		}
		done, err := w.round()
		if err != nil {
			w.fail(err)
			continue
		}
		if done {
			return
		}
		w.failures, backoff = 0, minBackoff
	}
}

// fail counts a connection failure and closes the connection.
func (w *worker) fail(err error) {
	kind := classify(err)
	w.failures++
	w.st.errs[kind]++
	w.st.sample(fmt.Sprintf("conn %d: %s: %v", w.id, errKindNames[kind], err))
	w.close()
	w.publish()
}

// stopping reports whether no new requests are due.
func (w *worker) stopping(ns int64) bool {
	return w.exhausted || ns >= w.r.end.Load()
}

// inflight reports whether responses are awaited.
func (w *worker) inflight() bool {
	if w.cfg.Mode == Quiet {
		return w.batchOpen
	}
	return w.n > 0
}

// round writes the requests due, then reads and handles at least one
// response and all others already buffered. It reports done when nothing
// is in flight and nothing more is due.
func (w *worker) round() (done bool, err error) {
	now := time.Now()
	ns := int64(now.Sub(w.r.base))
	if !w.stopping(ns) {
		if err := w.fill(ns); err != nil {
			return false, err
		}
	}
	if !w.inflight() {
		return true, nil
	}
	w.arm(now, ns)
	if len(w.wbuf) > 0 {
		n, err := w.conn.Write(w.wbuf)
		w.st.bytesOut += uint64(n)
		w.wbuf = w.wbuf[:0]
		if err != nil {
			return false, err
		}
	}
	if err := w.rd.ReadResponse(&w.res); err != nil {
		return false, err
	}
	ns = w.r.now()
	for {
		if err := w.handle(&w.res, ns); err != nil {
			return false, err
		}
		if !w.inflight() || !w.rd.Ready() {
			break
		}
		if err := w.rd.ReadResponse(&w.res); err != nil {
			return false, err
		}
	}
	w.publish()
	return false, nil
}

// arm sets the connection's deadline to Timeout from now, capped at the
// run's hard stop. It moves the deadline only when it has fallen behind by
// an eighth of Timeout, so most rounds cost no timer update.
func (w *worker) arm(now time.Time, ns int64) {
	timeout := w.cfg.Timeout
	want := ns + int64(timeout)
	if hard := w.r.hardStop(); want > hard {
		want = hard
	}
	dl := w.r.base.Add(time.Duration(want))
	if w.dl.IsZero() || dl.Before(w.dl) || dl.Sub(w.dl) > timeout/8 {
		w.conn.SetDeadline(dl)
		w.dl = dl
	}
}

// publish updates the live counters.
func (w *worker) publish() {
	w.live.ops.Store(w.st.ops())
	w.live.problems.Store(w.st.errors() + w.st.mismatched())
}

// pick chooses the next operation and key.
func (w *worker) pick() (opKind, uint32) {
	x := splitmix(&w.rng)
	key := uint32((x & 0xffffffff) * uint64(w.r.keys.n) >> 32)
	switch op := x >> 32; {
	case op < w.r.getBelow:
		return opGet, key
	case op < w.r.setBelow:
		return opSet, key
	}
	return opDelete, key
}

// appendOp encodes a request for key with opcode op into wbuf and fills s;
// only a set carries extras and a value.
func (w *worker) appendOp(s *slot, kind opKind, op gm.CommandCode, key uint32, ns int64) error {
	w.kbuf = w.r.keys.appendKey(w.kbuf[:0], key)
	h := hashKey(w.kbuf)
	w.req.Opcode, w.req.Key, w.req.Opaque = op, w.kbuf, w.seq
	if kind == opSet {
		w.vbuf = w.r.vals.appendValue(w.vbuf[:0], h)
		w.req.Extras, w.req.Body = w.extras[:], w.vbuf
	} else {
		w.req.Extras, w.req.Body = nil, nil
	}
	var err error
	if w.wbuf, err = w.req.AppendTo(w.wbuf); err != nil {
		return err
	}
	*s = slot{sent: ns, hash: h, opaque: w.seq, key: key, kind: kind}
	w.seq++
	return nil
}

// appendNoop encodes a NOOP into wbuf and returns its opaque.
func (w *worker) appendNoop() uint32 {
	w.req.Opcode, w.req.Key, w.req.Extras, w.req.Body, w.req.Opaque = gm.NOOP, nil, nil, nil, w.seq
	w.wbuf, _ = w.req.AppendTo(w.wbuf) // cannot fail: no fields
	w.seq++
	return w.req.Opaque
}

// fill encodes the requests due: plain mode tops the pipeline up to Depth,
// quiet mode starts a batch when none is in flight.
func (w *worker) fill(ns int64) error {
	if w.cfg.Mode == Quiet {
		if w.batchOpen {
			return nil
		}
		n := w.r.claim(len(w.slots))
		if n == 0 {
			w.exhausted = true
			return nil
		}
		w.base = w.seq
		for i := range n {
			kind, key := w.pick()
			if err := w.appendOp(&w.slots[i], kind, quietOps[kind], key, ns); err != nil {
				return err
			}
		}
		w.noop = w.appendNoop()
		w.batchN, w.batchOpen, w.batchSent = n, true, ns
		return nil
	}
	free := len(w.slots) - w.n
	if free == 0 {
		return nil
	}
	n := w.r.claim(free)
	if n == 0 {
		w.exhausted = true
		return nil
	}
	for range n {
		kind, key := w.pick()
		i := w.head + w.n
		if i >= len(w.slots) {
			i -= len(w.slots)
		}
		if err := w.appendOp(&w.slots[i], kind, plainOps[kind], key, ns); err != nil {
			return err
		}
		w.n++
	}
	return nil
}

// handle accounts for one response.
func (w *worker) handle(res *gm.MCResponse, ns int64) error {
	if w.cfg.Mode == Quiet {
		return w.handleQuiet(res, ns)
	}
	return w.handlePlain(res, ns)
}

// handlePlain matches a response to the oldest request in flight: a
// connection answers in order.
func (w *worker) handlePlain(res *gm.MCResponse, ns int64) error {
	if w.n == 0 {
		return fmt.Errorf("%w: %s opaque %d", errUnsolicited, res.Opcode, res.Opaque)
	}
	s := &w.slots[w.head]
	if w.head++; w.head == len(w.slots) {
		w.head = 0
	}
	w.n--
	w.st.lat.Record(time.Duration(ns - s.sent))
	if res.Opaque != s.opaque {
		w.mismatch(mmOpaque, s, fmt.Sprintf("opaque %d, want %d", res.Opaque, s.opaque))
	}
	if res.Opcode != plainOps[s.kind] {
		w.mismatch(mmOpcode, s, "opcode "+res.Opcode.String())
	}
	switch s.kind {
	case opGet:
		w.st.gets++
		w.got(res, s, false)
	case opSet:
		w.st.sets++
		if res.Status != gm.SUCCESS {
			w.status(res.Status)
		}
	case opDelete:
		w.st.deletes++
		w.deleted(res)
	}
	return nil
}

// handleQuiet matches a response to the batch by opaque; the NOOP closes
// the batch, its unanswered gets being misses, its unanswered sets stored
// and its unanswered deletes done.
func (w *worker) handleQuiet(res *gm.MCResponse, ns int64) error {
	if !w.batchOpen {
		return fmt.Errorf("%w: %s opaque %d", errUnsolicited, res.Opcode, res.Opaque)
	}
	if res.Opcode == gm.NOOP {
		if res.Opaque != w.noop {
			w.mismatch(mmOpaque, nil, fmt.Sprintf("NOOP opaque %d, want %d", res.Opaque, w.noop))
		}
		if res.Status != gm.SUCCESS {
			w.status(res.Status)
		}
		w.finishBatch(ns)
		return nil
	}
	i := res.Opaque - w.base
	if i >= uint32(w.batchN) || w.slots[i].answered {
		w.mismatch(mmOpaque, nil, fmt.Sprintf("%s opaque %d, want one of %d..%d once",
			res.Opcode, res.Opaque, w.base, w.base+uint32(w.batchN)-1))
		return nil
	}
	s := &w.slots[i]
	s.answered = true
	if res.Opcode != quietOps[s.kind] {
		w.mismatch(mmOpcode, s, "opcode "+res.Opcode.String())
	}
	switch s.kind {
	case opGet:
		w.got(res, s, true)
	case opSet:
		if res.Status != gm.SUCCESS {
			w.status(res.Status)
		}
	case opDelete:
		w.deleted(res)
	}
	return nil
}

// finishBatch accounts for the batch the NOOP answer closed.
func (w *worker) finishBatch(ns int64) {
	w.st.lat.Record(time.Duration(ns - w.batchSent))
	w.st.batches++
	for i := range w.slots[:w.batchN] {
		s := &w.slots[i]
		switch s.kind {
		case opGet:
			w.st.gets++
			if !s.answered {
				w.st.misses++
			}
		case opSet:
			w.st.sets++
		case opDelete:
			w.st.deletes++
		}
		s.answered = false
	}
	w.batchOpen = false
}

// got accounts for a get's answer, verifying a hit under Config.Check;
// withKey says the answer carries the key.
func (w *worker) got(res *gm.MCResponse, s *slot, withKey bool) {
	switch res.Status {
	case gm.SUCCESS:
		w.st.hits++
	case gm.KEY_ENOENT:
		w.st.misses++
		return
	default:
		w.status(res.Status)
		return
	}
	if !w.cfg.Check {
		return
	}
	if len(res.Extras) != 4 || binary.BigEndian.Uint32(res.Extras) != valueFlags {
		w.mismatch(mmFlags, s, fmt.Sprintf("flags % x, want %08x", res.Extras, valueFlags))
	}
	if withKey && hashKey(res.Key) != s.hash {
		w.mismatch(mmKey, s, fmt.Sprintf("key %q", res.Key))
	}
	if !w.r.vals.equal(res.Body, s.hash) {
		w.mismatch(mmValue, s, w.describeValue(res.Body, s.hash))
	}
}

// deleted accounts for a delete's answer: KEY_ENOENT is a miss.
func (w *worker) deleted(res *gm.MCResponse) {
	switch res.Status {
	case gm.SUCCESS:
	case gm.KEY_ENOENT:
		w.st.delMisses++
	default:
		w.status(res.Status)
	}
}

// describeValue says how got differs from the value of hash h.
func (w *worker) describeValue(got []byte, h uint64) string {
	want := w.r.vals.appendValue(nil, h)
	if len(got) != len(want) {
		return fmt.Sprintf("value of %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("value byte %d is %#02x, want %#02x", i, got[i], want[i])
		}
	}
	return "value differs"
}

// status counts an unexpected status.
func (w *worker) status(st gm.Status) {
	if w.st.statuses == nil {
		w.st.statuses = make(map[gm.Status]uint64)
	}
	w.st.statuses[st]++
}

// mismatch counts a mismatch and keeps its description; s, if known, is
// the request answered.
func (w *worker) mismatch(kind mismatchKind, s *slot, what string) {
	w.st.mismatches[kind]++
	if len(w.st.samples) >= maxSamples {
		return
	}
	req := ""
	if s != nil {
		req = fmt.Sprintf(" %s %s (opaque %d)", opNames[s.kind], w.r.keys.appendKey(nil, s.key), s.opaque)
	}
	w.st.sample(fmt.Sprintf("conn %d: %s mismatch:%s: %s", w.id, mismatchNames[kind], req, what))
}
