package gocache

import (
	"crypto/rand"
	"encoding/binary"
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

// numVBuckets is the number of vbuckets mutation tokens count sequence
// numbers for.
const numVBuckets = 1024

// bucket is a named store. Mutation tokens (vbucket UUID and sequence
// number) are counted here, per vbucket; the change feed will move the
// sequence numbers into the store.
type bucket struct {
	name   string
	cache  *cache.Cache
	uuid   uint64
	seqnos [numVBuckets]atomic.Uint64
}

func newBucket(name string, cfg cache.Config) *bucket {
	var b [8]byte
	rand.Read(b[:])
	return &bucket{name: name, cache: cache.New(cfg), uuid: binary.BigEndian.Uint64(b[:])}
}

// token returns the mutation token extras of a new mutation in vb.
func (b *bucket) token(vb uint16, dst *[16]byte) []byte {
	binary.BigEndian.PutUint64(dst[:8], b.uuid)
	binary.BigEndian.PutUint64(dst[8:], b.seqnos[vb%numVBuckets].Add(1))
	return dst[:]
}

// connState is what gocache keeps per connection.
type connState struct {
	bucket   *bucket
	user     *sasl.User
	sasl     *sasl.Session
	failures int // failed authentications in a row
}

// state returns the connection's gocache state.
func state(c *memcached.Conn) *connState { return c.Data.(*connState) }

// bucketFor returns the connection's bucket, or answers NO_BUCKET (see
// extended) and returns nil.
func (h *handler) bucketFor(c *memcached.Conn, req *gm.MCRequest) *bucket {
	if b := state(c).bucket; b != nil {
		return b
	}
	h.extended(c, req, gm.NO_BUCKET)
	return nil
}

// selectBucket serves SELECT_BUCKET: the key names the bucket, or
// "@no bucket@" to leave buckets. A user limited to some buckets gets
// EACCESS for others.
func (h *handler) selectBucket(c *memcached.Conn, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Body) != 0 || len(req.Key) == 0 {
		h.invalid(c, req)
		return
	}
	st := state(c)
	name := string(req.Key)
	if name == noBucket {
		st.bucket, c.Bucket = nil, ""
		stored(c, req, 0)
		return
	}
	if st.user != nil && !st.user.MayUse(name) {
		h.extended(c, req, gm.EACCESS)
		return
	}
	b, ok := h.srv.buckets[name]
	if !ok {
		h.extended(c, req, gm.NO_BUCKET)
		return
	}
	st.bucket, c.Bucket = b, name
	stored(c, req, 0)
}
