package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ChangeKind says what a change did to its key.
type ChangeKind uint8

// Kinds of change.
const (
	Mutated ChangeKind = iota + 1 // stored, or touched (a new expiry)
	Deleted                       // deleted; also a store that failed for size or memory and so removed the old value
	Expired                       // removed because its time had passed
	Evicted                       // removed to make room (LRU)
)

func (k ChangeKind) String() string {
	switch k {
	case Mutated:
		return "mutated"
	case Deleted:
		return "deleted"
	case Expired:
		return "expired"
	case Evicted:
		return "evicted"
	}
	return "unknown"
}

// Change is one change of a vbucket, as a Cursor reads it: the key and the
// item the change left. A removal has no value (but one that left a
// deleted item with a value: a deleted document, a dropped system event);
// its CAS, seqno and revision are the removal's. Key and Value are
// shared with the store and must not be modified.
type Change struct {
	Kind ChangeKind
	Key  []byte
	Item
}

// Errors of a Cursor.
var (
	// ErrChangesLost: changes the cursor had not read are gone: it fell
	// further behind than its vbucket's change log could grow (see
	// Config.ChangeLog), or the cache was flushed.
	// A follower must start again from the items stored now.
	ErrChangesLost = errors.New("cache: changes lost")
	// ErrCursorClosed: the cursor was closed.
	ErrCursorClosed = errors.New("cache: cursor closed")
)

// DefaultChangeLog is how many changes a vbucket keeps for its cursors
// unless Config.ChangeLog says otherwise.
const DefaultChangeLog = 1024

// logEntry is one change in a vbucket's log. it is immutable in what a
// change reads of it (key, value, flags, datatype); the fields a touch
// changes in place are copied.
type logEntry struct {
	seqno, cas, rev uint64
	exp             int64
	it              *item
	kind            ChangeKind
	// value: a deletion that left a deleted item with a value (a deleted
	// document, a dropped system event), which the change reads.
	value bool
}

// changeLog is a vbucket's recent changes, kept while a cursor follows the
// vbucket: a ring in which the change numbered n is at n modulo its
// length. Changes are numbered before they are logged, so they may arrive
// out of order, and a change numbered may not be there yet: a cursor reads
// up to the first one missing. It is guarded by the vbucket's lock.
//
// The ring starts with Config.ChangeLog entries. When a change would push
// out one that a cursor has not read, the ring doubles instead, up to
// logGrowth times its first length, while the cache's budget of grown
// entries (logBudget times the first length, for all vbuckets) lasts: a
// reader that falls behind for a moment (not scheduled for a few
// milliseconds while a writer runs at full speed) does not lose changes,
// and the memory a log holds stays bounded.
type changeLog struct {
	ring    []logEntry
	first   uint64 // the oldest seqno the ring may still hold
	cursors []*Cursor
	base    int           // the ring's first length
	budget  *atomic.Int64 // the cache's grown entries still to give
}

// How far change logs grow (see changeLog).
const (
	logGrowth = 16
	logBudget = 64
)

func (l *changeLog) add(e logEntry) {
	n := uint64(len(l.ring))
	if e.seqno < l.first {
		return // numbered before the log began, or already pushed out
	}
	if e.seqno-l.first >= n {
		if l.behind(e.seqno-n+1) && l.grow() {
			n = uint64(len(l.ring))
		}
		if e.seqno-l.first >= n {
			first := e.seqno - n + 1
			old := l.first
			l.first = first
			// A cursor whose next change is pushed out learns it now:
			// that change may never be logged. It has lost changes
			// (Next would find it so): it no longer holds the log
			// grown (behind, shrink).
			for _, cur := range l.cursors {
				if cur.next >= old && cur.next < first {
					cur.lost = true
					cur.notify()
				}
			}
		}
	}
	l.ring[e.seqno%n] = e
	// Only a cursor that reads this change next has something new to read;
	// the others were told when their next change came.
	for _, cur := range l.cursors {
		if cur.next == e.seqno {
			cur.notify()
		}
	}
}

// behind reports whether a cursor has not read every change before first.
func (l *changeLog) behind(first uint64) bool {
	for _, cur := range l.cursors {
		if !cur.lost && !cur.closed && cur.next < first {
			return true
		}
	}
	return false
}

// grow doubles the ring if it may; it reports whether it did.
func (l *changeLog) grow() bool {
	n := len(l.ring)
	if 2*n > logGrowth*l.base {
		return false
	}
	// A load first: once the budget is spent, a log whose cursor lags
	// asks at every change, and a failed Add costs two writes of a
	// counter every vbucket shares.
	if l.budget.Load() < int64(n) {
		return false
	}
	if l.budget.Add(-int64(n)) < 0 {
		l.budget.Add(int64(n))
		return false
	}
	ring := make([]logEntry, 2*n)
	for i := range l.ring {
		if e := &l.ring[i]; e.it != nil && e.seqno >= l.first {
			ring[e.seqno%uint64(len(ring))] = *e
		}
	}
	l.ring = ring
	return true
}

// shrink halves a grown ring while it keeps at least twice what its
// cursors still have to read (from the oldest change a cursor that has
// lost nothing reads next up to high, the vbucket's high seqno), and
// gives what it shrank by back to the cache's budget: when the lagging
// cursor the log grew for is closed (a DCP stream's cursor dropped, its
// stream closed) while other cursors follow the vbucket, which would
// otherwise hold the budget for as long as the vbucket has a cursor (a
// replica's feed: always).
func (l *changeLog) shrink(high uint64) {
	n := len(l.ring)
	if n <= l.base {
		return
	}
	low := high + 1
	for _, cur := range l.cursors {
		if !cur.lost && !cur.closed && cur.next >= l.first && cur.next < low {
			low = cur.next
		}
	}
	need := high + 1 - low
	for n > l.base && uint64(n/2) >= 2*need {
		n /= 2
	}
	if n == len(l.ring) {
		return
	}
	first := l.first
	if high+1 > uint64(n) {
		first = max(first, high+1-uint64(n)) // <= low: need <= n/2
	}
	ring := make([]logEntry, n)
	for i := range l.ring {
		if e := &l.ring[i]; e.it != nil && e.seqno >= first {
			ring[e.seqno%uint64(n)] = *e
		}
	}
	l.budget.Add(int64(len(l.ring) - n))
	l.ring, l.first = ring, first
}

// release gives the entries the ring grew by back to the cache's budget.
func (l *changeLog) release() {
	l.budget.Add(int64(len(l.ring) - l.base))
	l.ring = nil
}

// at returns the change numbered seqno, nil if it is not in the log (yet).
func (l *changeLog) at(seqno uint64) *logEntry {
	e := &l.ring[seqno%uint64(len(l.ring))]
	if e.seqno != seqno || e.it == nil {
		return nil
	}
	return e
}

// lose drops every change up to high and tells the cursors.
func (l *changeLog) lose(high uint64) {
	clear(l.ring)
	l.first = high + 1
	for _, cur := range l.cursors {
		cur.lost = true
		cur.notify()
	}
}

// Cursor follows the changes of one vbucket in seqno order, from the first
// change after it was opened. The vbucket keeps its recent changes for its
// cursors (Config.ChangeLog of them); a cursor that falls further behind
// has lost changes. A Cursor is safe for concurrent use, though its changes
// come in order only to one reader.
type Cursor struct {
	v     *vbucket
	wake  chan struct{}
	ready func() // ChangesFunc's; nil for Changes
	// Guarded by v.mu:
	next   uint64 // seqno of the next change to read
	lost   bool
	closed bool
}

// Changes opens a cursor on vbucket vb's changes, from its next change on.
// Close it when done: while cursors are open, the vbucket keeps its recent
// changes, and the values they stored, in memory. It fails with
// ErrNoVBucket for a vbucket id not below VBuckets.
func (c *Cache) Changes(vb uint16) (*Cursor, error) {
	return c.ChangesFunc(vb, nil)
}

// ChangesFunc is Changes with a callback: ready, if not nil, is called
// when the cursor comes to have something to read (the change it reads
// next logged, changes lost, the cursor closed, its vbucket's state
// changed), so that one reader of many cursors learns which have
// something to read without waiting on each. It is not called again for
// the changes logged after that one: a reader that leaves changes unread
// (Next's max) must come back to the cursor without waiting for it. It is
// called with the vbucket's lock held, on the goroutine that changed the
// vbucket: it must be quick, must not block, and must not call into the
// Cache.
func (c *Cache) ChangesFunc(vb uint16, ready func()) (*Cursor, error) {
	if int(vb) >= len(c.vbs) {
		return nil, ErrNoVBucket
	}
	v := &c.vbs[vb]
	cur := &Cursor{v: v, wake: make(chan struct{}, 1), ready: ready}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.log == nil {
		v.log = &changeLog{ring: make([]logEntry, c.logSize), base: c.logSize, budget: &c.logBudget}
		// Before high is read: a change numbered after that is logged.
		v.logging.Store(true)
		v.log.first = v.high.Load() + 1
	}
	v.log.cursors = append(v.log.cursors, cur)
	cur.next = v.high.Load() + 1
	return cur, nil
}

func (cur *Cursor) notify() {
	select {
	case cur.wake <- struct{}{}:
	default:
	}
	if cur.ready != nil {
		cur.ready()
	}
}

// wake signals every cursor, for a change that is not in the log (the
// vbucket's state).
func (l *changeLog) wake() {
	for _, cur := range l.cursors {
		cur.notify()
	}
}

// Next appends to dst the changes not yet read, oldest first, at most max
// of them (max <= 0: all), and returns it. It returns dst as it was when
// there are none. Once changes are lost it fails with ErrChangesLost, and
// keeps failing.
func (cur *Cursor) Next(dst []Change, max int) ([]Change, error) {
	v := cur.v
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case cur.closed:
		return dst, ErrCursorClosed
	case cur.lost || cur.next < v.log.first:
		cur.lost = true
		return dst, ErrChangesLost
	}
	for n := 0; max <= 0 || n < max; n++ {
		e := v.log.at(cur.next)
		if e == nil {
			break
		}
		ch := Change{Kind: e.kind, Key: e.it.key(),
			Item: Item{CAS: e.cas, Seqno: e.seqno, Rev: e.rev}}
		if e.kind == Mutated || e.value {
			ch.Value, ch.Flags, ch.Datatype = e.it.value(), e.it.flags, e.it.datatype
			if e.exp != 0 {
				ch.Expires = time.Unix(0, e.exp)
			}
		}
		dst = append(dst, ch)
		cur.next++
	}
	return dst, nil
}

// Wait blocks until there is a change to read, changes are lost, the
// cursor is closed, or ctx ends (its error).
func (cur *Cursor) Wait(ctx context.Context) error {
	for {
		v := cur.v
		v.mu.Lock()
		ready := cur.closed || cur.lost || cur.next < v.log.first || v.log.at(cur.next) != nil
		v.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-cur.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the cursor; once a vbucket has no cursors it lets go of its
// change log.
func (cur *Cursor) Close() {
	v := cur.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur.closed {
		return
	}
	cur.closed = true
	cur.notify()
	l := v.log
	for i, other := range l.cursors {
		if other == cur {
			l.cursors = append(l.cursors[:i], l.cursors[i+1:]...)
			break
		}
	}
	if len(l.cursors) == 0 {
		v.logging.Store(false)
		l.release()
		v.log = nil
		return
	}
	// The others may not need what the log grew by for this one.
	l.shrink(v.high.Load())
}
