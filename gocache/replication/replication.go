// Package replication feeds the replica vbuckets of a gocache server from
// other gocache nodes over DCP: every vbucket from one primary
// (Replicator.Primary), or in a vbucket cluster (gocache.Config.Cluster)
// each from the node the cluster map names active for it. A Replicator,
// set as the server's gocache.Config.Replicator, opens one DCP connection
// per source node and bucket with the client's Feed (collections-aware,
// with xattrs), streaming the vbuckets that node is the source of: each vbucket
// streams from its checkpoint in the cache (cache.ReplicaCheckpoint: the
// UUID of the failover log it adopted, its high seqno, its snapshot), so
// that after a cut connection it resumes where it stopped; a rollback
// empties the vbucket (cache.Rollback) and it streams again from 0. A
// vbucket that SET_VBUCKET makes active has its stream closed; one made a
// replica streams again; one whose source moves (SET_CLUSTER_CONFIG named
// another active) has its stream closed on the old source's connection
// and streams from the new source from its checkpoint, rolled back if the
// new source's failover log says its history branched off earlier.
package replication

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
)

// Reconnection backoff of a bucket's feed.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
	// retryEvery is how often vbuckets the primary refused are asked for
	// again.
	retryEvery = 5 * time.Second
)

// Replicator is a gocache.Replicator that feeds every bucket from the
// same bucket of other gocache nodes: of the one at Primary, or of each
// replica vbucket's source (gocache.ReplicaBucket.Source). It serves one
// gocache.Server; Status is safe to call while it runs.
type Replicator struct {
	// Primary is the address ("host:port") every vbucket streams from;
	// empty, each streams from the node the server's cluster map names
	// active for it.
	Primary string

	mu    sync.Mutex
	id    string // names the DCP connections
	feeds []*feed
}

var _ gocache.Replicator = (*Replicator)(nil)

// Status is the state of one bucket's replication from one source node
// (see Replicator.Status).
type Status struct {
	Bucket    string
	Primary   string // the source node's address
	Name      string // the DCP connection's name on the primary
	Connected bool   // a feed is open
	Connects  uint64 // feeds opened
	Streams   int    // vbucket streams open or requested
	Events    uint64 // changes applied
	Rollbacks uint64
	// OutOfOrder counts changes refused for a seqno not above the
	// vbucket's or outside its snapshot (each restarts the feed).
	OutOfOrder uint64
	LastError  string // why the last feed ended, "" if none has
}

// Status returns the state of each bucket's replication from each of its
// sources, by bucket name then source: of the buckets Replicate was
// called on, and the sources they have streamed from.
func (r *Replicator) Status() []Status {
	r.mu.Lock()
	feeds := slices.Clone(r.feeds)
	r.mu.Unlock()
	out := make([]Status, 0, len(feeds))
	for _, f := range feeds {
		f.mu.Lock()
		out = append(out, Status{Bucket: f.b.Name(), Primary: f.addr, Name: f.name, Connected: f.feed != nil,
			Connects: f.connects.Load(), Streams: len(f.streams), Events: f.events.Load(),
			Rollbacks: f.rollbacks.Load(), OutOfOrder: f.outOfOrder.Load(), LastError: f.lastErr})
		f.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.Primary, b.Primary))
	})
	return out
}

// Replicate feeds bucket b until ctx is done: each replica vbucket from
// its source, one feed per source, each opened again after it fails, with
// a backoff from 50 ms to 5 s that grows while feeds fail before they
// apply anything. When SET_VBUCKET or SET_CLUSTER_CONFIG changes the
// bucket, each vbucket's source is looked up again.
func (r *Replicator) Replicate(ctx context.Context, b *gocache.ReplicaBucket) {
	r.mu.Lock()
	if r.id == "" {
		var id [4]byte
		rand.Read(id[:])
		r.id = hex.EncodeToString(id[:])
	}
	r.mu.Unlock()
	n := b.Cache().VBuckets()
	br := &bucketRep{r: r, b: b, c: b.Cache(), owner: make([]atomic.Pointer[feed], n),
		applying: make([]sync.Mutex, n), feeds: map[string]*feed{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for _, f := range br.assign() {
			wg.Go(func() { f.run(ctx) })
		}
		for _, f := range br.feeds {
			select {
			case f.changed <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.StateChanged():
		}
	}
}

// bucketRep is the replication of one bucket: its feeds by source, and
// the feed each vbucket takes changes from.
type bucketRep struct {
	r     *Replicator
	b     *gocache.ReplicaBucket
	c     *cache.Cache
	owner []atomic.Pointer[feed] // by vbucket: the feed it streams on, nil if none
	// applying, by vbucket, is held by a feed while it checks that the
	// vbucket is its own and applies an event, and while a feed reads
	// the checkpoint its stream starts from: once the vbucket's source
	// moved, the new feed's stream starts after anything the old one
	// applied, and nothing more of the old one is applied.
	applying []sync.Mutex
	feeds    map[string]*feed // Replicate's goroutine's
}

// assign points each replica vbucket at the feed of its source, and
// returns the feeds it had to make. A feed left with no vbucket stays,
// idle, until one is its again.
func (br *bucketRep) assign() []*feed {
	var made []*feed
	for i := range br.owner {
		vb := uint16(i)
		var f *feed
		if br.c.State(vb) == cache.Replica {
			addr := br.r.Primary
			if addr == "" {
				addr = br.b.Source(vb)
			}
			if addr != "" {
				if f = br.feeds[addr]; f == nil {
					f = br.newFeed(addr)
					br.feeds[addr] = f
					made = append(made, f)
				}
			}
		}
		br.owner[vb].Store(f)
	}
	return made
}

// newFeed returns a feed of the bucket from the node at addr.
func (br *bucketRep) newFeed(addr string) *feed {
	b := br.b
	f := &feed{
		b: b, c: br.c, addr: addr, owner: br.owner, applying: br.applying,
		name:     "gocache-replica:" + br.r.id + ":" + b.Name(),
		manifest: make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
		refused:  make(chan struct{}, 1),
		streams:  map[uint16]bool{},
	}
	f.log = b.Logger().With("replica_of", addr, "bucket", b.Name())
	br.r.mu.Lock()
	br.r.feeds = append(br.r.feeds, f)
	br.r.mu.Unlock()
	return f
}

// feed feeds the replica vbuckets of one bucket whose source is one node.
type feed struct {
	b    *gocache.ReplicaBucket
	c    *cache.Cache
	addr string
	name string
	log  *slog.Logger
	// owner is the bucket's: the feed of each vbucket; this feed streams
	// the vbuckets that are its own.
	owner    []atomic.Pointer[feed]
	applying []sync.Mutex // the bucket's (bucketRep.applying)
	// changed is told when the vbuckets' states or sources changed;
	// refused when the source refused a vbucket's stream.
	changed, refused chan struct{}
	// manifest asks for the primary's manifest: a system event came
	// from a newer one than the bucket's; wantUID is the newest uid a
	// system event came from.
	manifest chan struct{}
	wantUID  atomic.Uint64

	mu      sync.Mutex
	feed    *mc.Feed
	streams map[uint16]bool // requested or open on feed; false: closing for a promotion
	lastErr string

	connects, events, rollbacks, outOfOrder atomic.Uint64

	// The feed goroutine's: keyBuf, and skip, the vbuckets whose stream
	// started from a seqno the vbucket no longer holds (the feed asks
	// again from a rollback's seqno, the vbucket rolled back to 0): their
	// events are dropped until the stream, being closed, ends, and is
	// asked for again from 0.
	keyBuf []byte
	skip   map[uint16]bool
}

// run feeds the bucket until ctx ends.
func (f *feed) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		if !f.anyMine() {
			select {
			case <-ctx.Done():
				return
			case <-f.changed:
				continue
			}
		}
		before := f.events.Load()
		err := f.session(ctx)
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.lastErr = ""
		if err != nil {
			f.lastErr = err.Error()
		}
		f.mu.Unlock()
		if f.events.Load() != before {
			backoff = minBackoff
		}
		f.log.Warn("replica: feed ended, reconnecting", "err", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// anyMine reports whether a vbucket streams on this feed.
func (f *feed) anyMine() bool {
	for i := range f.owner {
		if f.mine(uint16(i)) {
			return true
		}
	}
	return false
}

// mine reports whether vbucket vb streams on this feed: it is a replica
// whose source is this feed's node.
func (f *feed) mine(vb uint16) bool {
	return int(vb) < len(f.owner) && f.owner[vb].Load() == f && f.c.State(vb) == cache.Replica
}

// session opens one feed from the source, streams each of its vbuckets
// from its checkpoint and applies what comes until the feed ends.
func (f *feed) session(ctx context.Context) error {
	opts := mc.ClientOptions{
		Features: mc.Features{mc.FeatureCollections, mc.FeatureXattr, mc.FeatureXerror},
		Name:     f.name,
	}
	if f.b.Name() != gocache.DefaultBucket {
		opts.Bucket = f.b.Name()
	}
	c, err := mc.Dial(ctx, "tcp", f.addr, opts)
	if err != nil {
		return err
	}
	// Disk snapshots' markers of version 2.2 carry the primary's purge
	// seqno, which the replica takes.
	feed, err := mc.NewFeed(ctx, c, mc.FeedOptions{Name: f.name, Xattrs: true, Collections: true, MarkerV22: true})
	if err != nil {
		c.Close()
		return err
	}
	defer feed.Close()
	// Cancelling ctx closes the feed, which ends a write blocked on the
	// primary as well as Run.
	defer context.AfterFunc(ctx, func() { feed.Close() })()
	f.connects.Add(1)
	f.log.Info("replica: feed open")
	f.skip = map[uint16]bool{}
	f.mu.Lock()
	f.feed = feed
	clear(f.streams)
	f.mu.Unlock()
	f.addAll()
	if f.b.ManifestUID() < f.wantUID.Load() {
		f.askManifest() // a fetch failed before
	}
	retry := time.NewTicker(retryEvery)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer retry.Stop()
		var again <-chan time.Time // the manifest's next fetch, while it is behind
		backoff := minBackoff
		// A source that refused a vbucket is asked again soon, then less
		// often: after a map change it may not have promoted it yet.
		var soon <-chan time.Time
		refusedBackoff := minBackoff
		for {
			select {
			case <-stop:
				return
			case <-retry.C:
				f.addAll()
			case <-f.changed:
				refusedBackoff = minBackoff
				f.closeNotMine()
				f.addAll()
			case <-f.refused:
				if soon == nil {
					soon = time.After(refusedBackoff)
					refusedBackoff = min(2*refusedBackoff, retryEvery)
				}
			case <-soon:
				soon = nil
				f.addAll()
			case <-f.manifest:
			case <-again:
			}
			if f.b.ManifestUID() >= f.wantUID.Load() {
				again, backoff = nil, minBackoff
				continue
			}
			f.fetchManifest(ctx, opts)
			if f.b.ManifestUID() < f.wantUID.Load() {
				again = time.After(backoff)
				backoff = min(2*backoff, maxBackoff)
			}
		}
	})
	err = feed.Run(ctx, mc.FeedHandlerFunc(f.handle))
	close(stop)
	wg.Wait()
	f.mu.Lock()
	f.feed = nil
	clear(f.streams)
	f.mu.Unlock()
	if err == nil {
		err = errors.New("replication: every stream ended")
	}
	return err
}

// The stream requests and closes below are written with f.mu not held:
// the mutex only marks what is asked for, so that a write blocked on the
// primary holds up nothing but its caller (and ends when ctx closes the
// feed).

// closeNotMine closes the open streams of vbuckets that are no longer
// this feed's: SET_VBUCKET promoted them, or their source moved.
func (f *feed) closeNotMine() {
	f.mu.Lock()
	feed := f.feed
	var closing []uint16
	for vb, open := range f.streams {
		if open && !f.mine(vb) {
			f.streams[vb] = false
			closing = append(closing, vb)
		}
	}
	f.mu.Unlock()
	for _, vb := range closing {
		f.remove(feed, vb)
	}
}

// remove closes vbucket vb's stream on feed.
func (f *feed) remove(feed *mc.Feed, vb uint16) {
	if feed == nil {
		return
	}
	if err := feed.Remove(vb, 0); err != nil {
		f.log.Debug("replica: closing a vbucket's stream", "vb", vb, "err", err)
	}
}

// addAll requests the stream of every vbucket of this feed that has
// none.
func (f *feed) addAll() {
	f.mu.Lock()
	feed := f.feed
	var adding []uint16
	for i := range f.c.VBuckets() {
		vb := uint16(i)
		if _, ok := f.streams[vb]; !ok && f.mine(vb) && feed != nil {
			f.streams[vb] = true
			adding = append(adding, vb)
		}
	}
	f.mu.Unlock()
	for _, vb := range adding {
		f.add(feed, vb)
	}
}

// add requests vbucket vb's stream, marked as requested, from its
// checkpoint; a request not made is unmarked.
func (f *feed) add(feed *mc.Feed, vb uint16) {
	f.applying[vb].Lock()
	uuid, seqno, ss, se := f.c.ReplicaCheckpoint(vb)
	f.applying[vb].Unlock()
	spec := mc.StreamSpec{VBucket: vb, From: mc.Checkpoint{VBUUID: uuid, Seqno: seqno, SnapStart: ss, SnapEnd: se}}
	if err := feed.Add(spec); err != nil {
		f.log.Debug("replica: stream request", "vb", vb, "err", err)
		f.mu.Lock()
		if f.feed == feed {
			delete(f.streams, vb)
		}
		f.mu.Unlock()
	}
}

// ended forgets vbucket vb's stream, and reports whether it should be
// requested again: the vbucket is still this feed's.
func (f *feed) ended(vb uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.streams[vb]
	delete(f.streams, vb)
	return ok && f.mine(vb)
}

// closeAction is what handle does to a vbucket's stream once the event
// is applied (closing a stream waits for the source, so it is done
// without the vbucket's applying lock).
type closeAction uint8

const (
	keepStream closeAction = iota
	removeStream
	disownStream
)

// handle applies one event of the feed.
func (f *feed) handle(ctx context.Context, ev *mc.Event) error {
	vb := ev.VBucket
	if ev.Kind == mc.EventStreamEnd || int(vb) >= len(f.applying) {
		_, err := f.apply(ev)
		return err
	}
	f.applying[vb].Lock()
	act, err := f.apply(ev)
	f.applying[vb].Unlock()
	switch act {
	case removeStream:
		f.mu.Lock()
		feed := f.feed
		f.mu.Unlock()
		f.remove(feed, vb)
	case disownStream:
		f.disown(vb)
	}
	return err
}

// apply applies one event, and says what to do to its stream.
func (f *feed) apply(ev *mc.Event) (closeAction, error) {
	c, vb := f.c, ev.VBucket
	if f.skip[vb] && ev.Kind != mc.EventStreamEnd {
		return keepStream, nil
	}
	if ev.Kind != mc.EventStreamEnd && int(vb) < len(f.owner) && f.owner[vb].Load() != f {
		// Its source moved: its stream here is being closed (or is now),
		// and nothing more of it is applied from this node.
		return disownStream, nil
	}
	var err error
	switch ev.Kind {
	case mc.EventStreamStart:
		if _, high, _, _ := c.ReplicaCheckpoint(vb); high != ev.Checkpoint.Seqno {
			f.log.Info("replica: stream started elsewhere than the vbucket is, asking again", "vb", vb, "from", ev.Checkpoint.Seqno, "high", high)
			f.skip[vb] = true
			return removeStream, nil
		}
		log := make([]cache.FailoverEntry, len(ev.FailoverLog))
		for i, e := range ev.FailoverLog {
			log[i] = cache.FailoverEntry{UUID: e.VBUUID, Seqno: e.Seqno}
		}
		err = c.AdoptFailoverLog(vb, log)
	case mc.EventSnapshot:
		var purge uint64
		if ev.SnapFlags&snapDisk != 0 {
			purge = ev.PurgeSeqno // a memory snapshot's is not the producer's (kv_engine)
		}
		err = c.ReplicaSnapshot(vb, ev.SnapStart, ev.SnapEnd, purge)
	case mc.EventMutation, mc.EventDeletion, mc.EventExpiration:
		f.keyBuf = cache.CollectionKey(f.keyBuf[:0], ev.CollectionID, ev.Key)
		m := cache.Meta{CAS: ev.CAS, Rev: ev.RevSeqno, Flags: ev.Flags, Datatype: ev.Datatype, Deleted: ev.Kind != mc.EventMutation}
		if ev.Kind == mc.EventMutation && ev.Expiry != 0 {
			m.Expires = time.Unix(int64(ev.Expiry), 0)
		}
		err = c.Replicate(vb, f.keyBuf, ev.Value, ev.Seqno, m)
		if err == nil || errors.Is(err, cache.ErrTooLarge) || errors.Is(err, cache.ErrNoMemory) {
			f.events.Add(1)
		}
		if errors.Is(err, cache.ErrTooLarge) || errors.Is(err, cache.ErrNoMemory) {
			f.log.Warn("replica: change not kept", "vb", vb, "seqno", ev.Seqno, "err", err)
			err = nil
		}
	case mc.EventSystem:
		err = f.system(vb, ev)
	case mc.EventSeqnoAdvanced:
		err = c.AdvanceSeqno(vb, ev.Seqno)
	case mc.EventRollback:
		f.rollbacks.Add(1)
		f.log.Info("replica: rollback", "vb", vb, "to", ev.Seqno)
		// Rolled back to 0 whatever the seqno: the feed asks again from
		// ev.Seqno, and a stream that starts there is closed and asked
		// for from 0 (EventStreamStart above).
		_, err = c.Rollback(vb, ev.Seqno)
	case mc.EventStreamEnd:
		delete(f.skip, vb)
		again := f.ended(vb)
		switch {
		case ev.Reason == mc.StreamEndRefused && errors.Is(ev.Err, gm.ErrNotMyVBucket):
			f.log.Debug("replica: the source does not serve the vbucket", "vb", vb)
			select {
			case f.refused <- struct{}{}:
			default:
			}
		case ev.Reason == mc.StreamEndRefused:
			return keepStream, fmt.Errorf("replication: vbucket %d refused: %w", vb, ev.Err)
		case again:
			f.log.Info("replica: stream ended, asking again", "vb", vb, "reason", ev.Reason)
			f.mu.Lock()
			feed := f.feed
			if _, ok := f.streams[vb]; !ok && feed != nil {
				f.streams[vb] = true
			} else {
				feed = nil
			}
			f.mu.Unlock()
			if feed != nil {
				f.add(feed, vb)
			}
		}
	}
	if errors.Is(err, cache.ErrSeqnoOrder) {
		f.outOfOrder.Add(1)
	}
	if errors.Is(err, cache.ErrNotReplica) {
		// Promoted or deleted meanwhile: its stream is being closed, or
		// is now.
		return disownStream, nil
	}
	return keepStream, err
}

// disown closes vbucket vb's stream unless it is closing already.
func (f *feed) disown(vb uint16) {
	f.mu.Lock()
	var feed *mc.Feed
	if open := f.streams[vb]; open && f.feed != nil {
		f.streams[vb] = false
		feed = f.feed
	}
	f.mu.Unlock()
	f.remove(feed, vb)
}

// system applies a system event as the primary recorded it, and asks for
// the primary's manifest when the event comes from a newer one than the
// bucket's.
func (f *feed) system(vb uint16, ev *mc.Event) error {
	s := &ev.System
	e := gocache.SystemEvent{Seqno: ev.Seqno, CAS: ev.CAS, RevSeqno: ev.RevSeqno,
		Type: uint32(s.Type), ManifestUID: s.ManifestUID, ScopeID: s.ScopeID, CollectionID: s.CollectionID,
		Name: s.Name, MaxTTL: s.MaxTTL, HasMaxTTL: s.HasMaxTTL}
	err := f.b.ReplicateSystemEvent(vb, &e)
	if err == nil {
		f.events.Add(1)
	}
	if s.ManifestUID > f.b.ManifestUID() {
		for {
			old := f.wantUID.Load()
			if s.ManifestUID <= old || f.wantUID.CompareAndSwap(old, s.ManifestUID) {
				break
			}
		}
		f.askManifest()
	}
	return err
}

// askManifest asks for the primary's manifest.
func (f *feed) askManifest() {
	select {
	case f.manifest <- struct{}{}:
	default:
	}
}

// snapDisk is a snapshot marker's flag: a disk snapshot.
const snapDisk = 0x02

// fetchManifest reads the primary's collections manifest on a
// connection of its own and makes it the bucket's.
func (f *feed) fetchManifest(ctx context.Context, opts mc.ClientOptions) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := mc.Dial(ctx, "tcp", f.addr, opts)
	if err != nil {
		f.log.Warn("replica: manifest not read", "err", err)
		return
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })() // ends a read the primary does not answer
	res, err := c.GetCollectionsManifest()
	if err != nil {
		f.log.Warn("replica: manifest not read", "err", err)
		return
	}
	if err := f.b.SetManifest(res.Body); err != nil {
		f.log.Warn("replica: manifest not taken", "err", err)
		return
	}
	f.log.Info("replica: manifest taken", "uid", f.b.ManifestUID())
}
