package memcached

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// ClientContext carries per-call options of the key-value methods, as in
// the reference. Only the first ClientContext given to a method is read,
// except Compressed, which any of them may set.
//
// What a context may ask depends on the features HELLO turned on (see
// EnableFeatures), as in the reference. Without collections, CollId must
// be 0 (ErrNoCollections otherwise) and User is ignored; with them, every
// key is sent with its collection id (0 when there is no context).
// PreserveExpiry needs FeaturePreserveExpiry, and a DurabilityLevel
// FeatureSyncReplication; without them they fail with
// ErrPreserveExpiryNotSupported and ErrDurabilityNotSupported.
type ClientContext struct {
	// CollId is the collection of the key; 0 is the default collection.
	CollId uint32

	// User is a user to impersonate.
	User string

	// VbState selects the vbuckets of GET_ALL_VB_SEQNOS; nil means not
	// used.
	VbState *VbStateType

	// PreserveExpiry keeps the document's expiry on a mutation.
	PreserveExpiry bool

	// DurabilityLevel asks for synchronous replication of a mutation.
	DurabilityLevel gomemcached.DurabilityLvl

	// DurabilityTimeout bounds the durable write (sent in whole
	// milliseconds, at most 65535).
	DurabilityTimeout time.Duration

	// Compressed marks the value as Snappy-compressed JSON.
	Compressed bool

	// DocumentSubDocPaths makes sub-document paths document fields rather
	// than extended attributes.
	DocumentSubDocPaths bool

	// IncludeXATTRs includes extended attributes in random-document reads.
	IncludeXATTRs bool

	// BytesUsedCallback, if set, is called by the methods that support it
	// (StatsMap, StatsMapForSpecifiedStats) with the bytes sent and
	// received.
	BytesUsedCallback func(int)
}

// Copy returns a copy of the context without its callback and with VbState
// pointing to a copy (a zero VbStateType when nil), as the reference does.
func (this *ClientContext) Copy() *ClientContext {
	rv := &ClientContext{
		CollId:            this.CollId,
		User:              this.User,
		PreserveExpiry:    this.PreserveExpiry,
		DurabilityLevel:   this.DurabilityLevel,
		DurabilityTimeout: this.DurabilityTimeout,
		Compressed:        this.Compressed,
		VbState:           new(VbStateType),
	}
	if this.VbState != nil {
		*rv.VbState = *this.VbState
	}
	return rv
}

// InitExtras sizes req.Extras for the context: for GET_ALL_VB_SEQNOS, 4
// bytes of vbucket state when VbState is set and 4 more of collection id
// (8 when VbState is nil) when client negotiated collections. Other
// opcodes are left alone.
func (context *ClientContext) InitExtras(req *gomemcached.MCRequest, client *Client) {
	if req == nil || client == nil {
		return
	}
	n := 0
	if req.Opcode == gomemcached.GET_ALL_VB_SEQNOS {
		if context.VbState != nil {
			n += 4
		}
		if client.c.feat.collections.Load() {
			if context.VbState == nil {
				n += 8
			} else {
				n += 4
			}
		}
	}
	if n > 0 {
		req.Extras = make([]byte, n)
	}
}

// VbStateType is a vbucket state, as GET_ALL_VB_SEQNOS selects them.
type VbStateType uint8

// Vbucket states.
const (
	VbAlive   VbStateType = 0x00
	VbActive  VbStateType = 0x01
	VbReplica VbStateType = 0x02
	VbPending VbStateType = 0x03
	VbDead    VbStateType = 0x04
)

// applyContext applies the ClientContexts of a key-value call to r, with
// the reference's rules.
func (c *conn) applyContext(r *request, ctxs []*ClientContext) error {
	collections := c.feat.collections.Load()
	if len(ctxs) == 0 {
		if collections {
			r.cidLen = 1 // the default collection, id 0
		}
		return nil
	}
	var cid uint32
	if cc := ctxs[0]; cc != nil {
		cid = cc.CollId
		frames, err := c.contextFrames(cc, collections)
		if err != nil {
			return err
		}
		if frames != nil {
			r.frames = frames
		}
	}
	for _, cc := range ctxs {
		if cc != nil && cc.Compressed {
			r.datatype = gomemcached.DatatypeFlagJSON | gomemcached.DatatypeFlagCompressed
			break
		}
	}
	if !collections {
		if cid != 0 {
			return ErrNoCollections
		}
		return nil
	}
	var prefix [gomemcached.MaxCollectionIDLen]byte
	r.cidLen = copy(r.cid[:], gomemcached.AppendCollectionID(prefix[:0], cid))
	return nil
}

// contextFrames returns the framing extras a ClientContext asks for, nil
// if none.
func (c *conn) contextFrames(cc *ClientContext, collections bool) ([]byte, error) {
	var frames []byte
	// Impersonation is sent only to servers that negotiated collections,
	// which the reference takes as a sign they know it.
	if n := len(cc.User); collections && n > 0 && n <= gomemcached.MAX_USER_LEN {
		frames, _ = gomemcached.AppendFrame(frames, gomemcached.FrameImpersonate, []byte(cc.User))
	}
	if cc.PreserveExpiry {
		if !c.feat.preserveExpiry.Load() {
			return nil, ErrPreserveExpiryNotSupported
		}
		frames, _ = gomemcached.AppendFrame(frames, gomemcached.FramePreserveExpiry, nil)
	}
	if cc.DurabilityLevel >= gomemcached.DuraMajority {
		if !c.feat.syncRepl.Load() {
			return nil, ErrDurabilityNotSupported
		}
		data := []byte{byte(cc.DurabilityLevel)}
		if cc.DurabilityTimeout > 0 {
			ms := min(cc.DurabilityTimeout/time.Millisecond, math.MaxUint16-1)
			data = binary.BigEndian.AppendUint16(data, uint16(max(ms, 1)))
		}
		frames, _ = gomemcached.AppendFrame(frames, gomemcached.FrameDurability, data)
	}
	return frames, nil
}
