package gocache

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/sasl"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// DefaultBucket is the bucket a server has when none are named, and the one
// connections start in when it exists.
const DefaultBucket = "default"

// noBucket is the name SELECT_BUCKET takes to leave every bucket.
const noBucket = "@no bucket@"

// bucket is a named store. Its vbuckets number their changes; mutation
// tokens come from there.
type bucket struct {
	name     string
	cache    *cache.Cache
	manifest atomic.Pointer[manifest]
	// manifestMu orders manifest changes (setManifest).
	manifestMu sync.Mutex
	// replica is what Config.Replicator has of the bucket (replica.go).
	replica *ReplicaBucket
	log     *slog.Logger
	// eventsLost counts the system events a vbucket failed to record
	// (recordEvents).
	eventsLost atomic.Uint64
}

// newBucket returns a bucket whose store is configured by cfg, keys
// carrying their collection, with manifest m (nil: the default one),
// logging to log. It fails if memory would not take m's system events.
func newBucket(name string, cfg cache.Config, m *manifest, log *slog.Logger) (*bucket, error) {
	cfg.Collections = true
	cfg.TombstoneValue = systemXattrs
	if cfg.Slabs == nil {
		cfg.Slabs = &cache.SlabConfig{} // memcached's memory model, its defaults
	}
	b := &bucket{name: name, cache: cache.New(cfg), log: log}
	if m == nil {
		m = defaultManifest()
	} else {
		// Its collections' creations, as system events.
		evs := cacheEvents(defaultManifest(), m)
		if err := b.eventsFit(evs, -1); err != nil {
			b.cache.Close()
			return nil, fmt.Errorf("gocache: bucket %q: %w", name, err)
		}
		if err := b.recordEvents(evs, -1); err != nil {
			b.cache.Close()
			return nil, fmt.Errorf("gocache: bucket %q: %w", name, err)
		}
	}
	b.manifest.Store(m)
	return b, nil
}

// connState is what gocache keeps per connection, the one place it is
// kept: the server holds it for gocache as the connection's Data.
type connState struct {
	bucket   *bucket
	user     *sasl.User
	sasl     *sasl.Session
	failures int           // failed authentications in a row
	features gm.FeatureSet // negotiated with HELLO
	dcp      *dcpProducer  // set by DCP_OPEN (dcp.go)
	cluster  clusterConn   // the cluster map it knows, its subscription (cluster.go)
	keyBuf   [1 + maxKeyLen]byte
}

// state returns the connection's gocache state.
func state(w memcached.ResponseWriter) *connState { return w.Conn().Data.(*connState) }

// bucketFor returns the connection's bucket, or answers NO_BUCKET (see
// extended) and returns nil.
func (h *handler) bucketFor(w memcached.ResponseWriter, req *gm.MCRequest) *bucket {
	if b := state(w).bucket; b != nil {
		return b
	}
	h.extended(w, req, gm.NO_BUCKET)
	return nil
}

// selectBucket serves SELECT_BUCKET: the key names the bucket, or
// "@no bucket@" to leave buckets. A user limited to some buckets gets
// EACCESS for others.
func (h *handler) selectBucket(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Body) != 0 || len(req.Key) == 0 {
		h.invalid(w, req)
		return
	}
	st := state(w)
	name := string(req.Key)
	if name == noBucket {
		st.bucket = nil
		st.cluster.setBucket(nil)
		succeeded(w, req)
		return
	}
	if st.user != nil && !st.user.MayUse(name) {
		h.extended(w, req, gm.EACCESS)
		return
	}
	b, ok := h.srv.buckets[name]
	if !ok {
		h.extended(w, req, gm.NO_BUCKET)
		return
	}
	st.bucket = b
	st.cluster.setBucket(b)
	succeeded(w, req)
}
