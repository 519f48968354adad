package gocache

import (
	"context"
	"errors"
	"log/slog"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Replicas. With Config.Replicator every vbucket of every bucket starts
// as an empty replica (in a Config.Cluster, those the map makes replicas
// here, each fed from the node the map names active: Source), fed by the
// Replicator (package
// gocache/replication streams it over DCP from another gocache) through
// a ReplicaBucket: the bucket's store, whose replica vbuckets take the
// primary's changes (cache.Replicate), its collections manifest, and word
// of SET_VBUCKET. Replica vbuckets answer GET_REPLICA (and plain GETs with
// Config.ReplicaReads) and refuse every other key command with
// NOT_MY_VBUCKET. SET_VBUCKET active promotes one: it starts a new
// failover entry and takes writes, and the Replicator, told, stops
// feeding it. SET_VBUCKET replica makes it a replica again.

// A Replicator feeds the replica vbuckets of a Server's buckets
// (Config.Replicator).
type Replicator interface {
	// Replicate feeds bucket b until ctx is done. New calls it once for
	// each bucket, each call in a goroutine of its own, once every
	// vbucket of b is an empty replica; Close and Shutdown cancel ctx and
	// wait for every call to return.
	Replicate(ctx context.Context, b *ReplicaBucket)
}

// ReplicaBucket is one bucket of a running Server as its Replicator sees
// it. Its methods are safe for concurrent use.
type ReplicaBucket struct {
	srv     *Server
	b       *bucket
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// Name returns the bucket's name.
func (b *ReplicaBucket) Name() string { return b.b.name }

// Cache returns the bucket's store, whose keys carry their collection ids
// (see Server.Cache).
func (b *ReplicaBucket) Cache() *cache.Cache { return b.b.cache }

// Logger returns the server's logger (Config.Logger, else slog.Default).
func (b *ReplicaBucket) Logger() *slog.Logger { return b.srv.logger() }

// StateChanged returns a channel that receives a value after SET_VBUCKET
// changes the state of one of the bucket's vbuckets, or
// SET_CLUSTER_CONFIG its cluster map, before it answers.
// Changes made before the value is received coalesce into it: read the
// states from Cache.
func (b *ReplicaBucket) StateChanged() <-chan struct{} { return b.changed }

// Source returns the address ("host:port") of the node that replica
// vbucket vb streams from: the node the bucket's cluster map
// (Config.Cluster) names active for vb; "" without a cluster, or if the
// map names no other node.
func (b *ReplicaBucket) Source(vb uint16) string {
	if m := b.srv.clusterMapOf(b.b); m != nil {
		return m.source(vb)
	}
	return ""
}

// ManifestUID returns the uid of the bucket's collections manifest.
func (b *ReplicaBucket) ManifestUID() uint64 { return b.b.manifest.Load().uid }

// SetManifest makes data, a collections manifest as
// GET_COLLECTIONS_MANIFEST returns it, the bucket's unless the bucket's
// is newer, dropping the collections it no longer has. It records system
// events in active vbuckets only: replicas take theirs from
// ReplicateSystemEvent.
func (b *ReplicaBucket) SetManifest(data []byte) error {
	m, err := parseManifest(data)
	if err == nil {
		err = b.b.setManifest(m)
	}
	if errors.Is(err, errAhead) {
		return nil
	}
	return err
}

// SystemEvent is a collections manifest change as a DCP stream delivers
// it (DCP_SYSTEM_EVENT).
type SystemEvent struct {
	Seqno, CAS, RevSeqno uint64
	// Type is the event's id on the wire: 0 a collection created, 1
	// dropped, 3 a scope created, 4 dropped, 5 a collection modified.
	Type         uint32
	ManifestUID  uint64
	ScopeID      uint32
	CollectionID uint32 // collection events
	Name         []byte // creations and modifications
	MaxTTL       uint32
	HasMaxTTL    bool
}

// ReplicateSystemEvent records e in replica vbucket vb as the primary
// recorded it, under the same key and seqno (see dcp_events.go), so that
// the vbucket, once promoted, streams it as the primary did; a
// collection's event is also the collection's high seqno. A collection's
// drop does in the vbucket what it does on the primary: the collection's
// documents and its modification's event go (unnumbered), whatever the
// bucket's manifest says yet. An event of another type only advances the
// vbucket's seqno. Its errors are cache.Replicate's.
func (b *ReplicaBucket) ReplicateSystemEvent(vb uint16, e *SystemEvent) error {
	se := sysEvent{event: e.Type, uid: e.ManifestUID, scope: e.ScopeID, cid: e.CollectionID,
		maxTTL: e.MaxTTL, ttlValid: e.HasMaxTTL, name: string(e.Name)}
	switch se.event {
	case sysCollectionCreate, sysCollectionDrop, sysScopeCreate, sysScopeDrop, sysCollectionModify:
	default:
		return b.b.cache.AdvanceSeqno(vb, e.Seqno)
	}
	ce := cache.SystemEvent{ID: se.id(), Value: se.record(), Collection: se.cid, InCollection: se.collection(),
		Deleted: se.event == sysCollectionDrop || se.event == sysScopeDrop}
	var retire []byte
	if se.event == sysCollectionDrop {
		mod := sysEvent{event: sysCollectionModify, cid: se.cid, scope: se.scope}
		retire = mod.id()
	}
	return b.b.cache.ReplicateEvent(vb, ce, e.Seqno, cache.Meta{CAS: e.CAS, Rev: e.RevSeqno}, retire)
}

// startReplication makes every vbucket of every bucket an empty replica,
// or in a cluster those the map made replicas, and starts
// Config.Replicator on each bucket.
func (s *Server) startReplication() {
	for _, b := range s.buckets {
		// Empty replicas: without what the bucket recorded as active (its
		// manifest's system events). A cluster's map set the states.
		c := b.cache
		for vb := range c.VBuckets() {
			if s.cluster == nil {
				c.SetState(uint16(vb), cache.Replica)
			}
			if c.State(uint16(vb)) == cache.Replica {
				c.Rollback(uint16(vb), 0)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		rb := &ReplicaBucket{srv: s, b: b, changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		b.replica = rb
		go func() {
			defer close(rb.done)
			s.cfg.Replicator.Replicate(ctx, rb)
		}()
	}
}

// stopReplication stops every bucket's Replicate and waits for it.
func (s *Server) stopReplication() {
	for _, b := range s.buckets {
		if rb := b.replica; rb != nil {
			rb.cancel()
			<-rb.done
		}
	}
}

// vbucketChanged tells a bucket's Replicator that one of its vbuckets
// changed state (SET_VBUCKET).
func (s *Server) vbucketChanged(b *bucket, _ uint16, _ cache.VBState) {
	if b.replica == nil {
		return
	}
	select {
	case b.replica.changed <- struct{}{}:
	default:
	}
}

// getReplica serves GET_REPLICA: GET from a replica vbucket, which only
// it reads (NOT_MY_VBUCKET for any other).
func (h *handler) getReplica(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, true, false) {
		h.invalid(w, req)
		return
	}
	d, ok := h.docTargetIn(w, req, cache.Replica)
	if !ok {
		return
	}
	it, ok := d.b.cache.GetReplica(d.vb, d.key)
	if !ok {
		w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
		return
	}
	h.writeItem(w, req, &it, false, true)
}

// getFromReplica serves a GET of a replica vbucket (Config.ReplicaReads)
// and reports whether it did: false, having answered nothing, for a
// vbucket that is not a replica.
func (h *handler) getFromReplica(w memcached.ResponseWriter, req *gm.MCRequest) bool {
	b := state(w).bucket
	if b == nil || b.cache.State(req.VBucket) != cache.Replica {
		return false
	}
	if !shape(req, 0, true, false) {
		h.invalid(w, req)
		return true
	}
	d, ok := h.docTargetIn(w, req, cache.Replica)
	if !ok {
		return true
	}
	it, found := d.b.cache.GetReplica(d.vb, d.key)
	h.answerGet(w, req, &it, found)
	return true
}
