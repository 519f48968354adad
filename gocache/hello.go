package gocache

import (
	"encoding/binary"

	"github.com/golang/snappy"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// HELLO features gocache supports (couchbase/kv_engine feature.h).
const (
	featureTCPNoDelay    = 0x03
	featureMutationSeqno = 0x04
	featureXError        = 0x07
	featureSelectBucket  = 0x08
	featureSnappy        = 0x0a
	featureJSON          = 0x0b
	featureAltRequest    = 0x10
)

var supportedFeatures = map[uint16]bool{
	featureTCPNoDelay: true, featureMutationSeqno: true, featureXError: true, featureSelectBucket: true,
	featureSnappy: true, featureJSON: true, featureAltRequest: true,
}

// hello serves HELLO: the key is the client's name, the value a list of
// features; the answer lists those gocache supports, which the connection
// then has (replacing what an earlier HELLO negotiated).
func (h *handler) hello(c *memcached.Conn, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Body)%2 != 0 {
		h.invalid(c, req)
		return
	}
	c.Features.Clear()
	accepted := make([]byte, 0, len(req.Body))
	for b := req.Body; len(b) > 0; b = b[2:] {
		f := binary.BigEndian.Uint16(b)
		if supportedFeatures[f] && !c.Features.Has(f) {
			c.Features.Add(f)
			accepted = binary.BigEndian.AppendUint16(accepted, f)
		}
	}
	if len(req.Key) > 0 {
		h.srv.logger().Debug("hello", "remote", c.RemoteAddr().String(), "agent", string(req.Key))
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: accepted}
	c.WriteResponse(&res)
}

// extended answers req with a status that memcached's clients do not
// know (NO_BUCKET, EACCESS, the durability statuses) if the connection
// negotiated XERROR. Otherwise it closes the connection, as kv_engine
// does: a client that cannot read the status would misread it as success
// or as a status it knows.
func (h *handler) extended(c *memcached.Conn, req *gm.MCRequest, status gm.Status) {
	if c.Features.Has(featureXError) {
		c.WriteStatus(req, status, nil)
		return
	}
	h.srv.logger().Info("closing connection: extended status without XERROR",
		"remote", c.RemoteAddr().String(), "opcode", req.Opcode.String(), "status", status.String())
	c.Close()
}

// storedValue returns the value and datatype to store for a mutation: a
// Snappy value is inflated (only clients that negotiated Snappy may send
// one), the JSON flag is kept only for clients that negotiated JSON (as
// memcached, gocache otherwise ignores the datatype), and XATTRs are
// refused. ok is false when the request must be refused with EINVAL.
func storedValue(c *memcached.Conn, req *gm.MCRequest) (value []byte, datatype uint8, ok bool) {
	value, dt := req.Body, req.DataType
	if dt&gm.DatatypeFlagXattrs != 0 {
		return nil, 0, false
	}
	if dt&gm.DatatypeFlagCompressed != 0 {
		if !c.Features.Has(featureSnappy) {
			return nil, 0, false
		}
		n, err := snappy.DecodedLen(value)
		if err != nil || n > gm.MaxBodyLen {
			return nil, 0, false
		}
		if value, err = snappy.Decode(nil, value); err != nil {
			return nil, 0, false
		}
	}
	if c.Features.Has(featureJSON) {
		datatype = dt & gm.DatatypeFlagJSON
	}
	return value, datatype, true
}

// sentDatatype is the datatype a stored item is answered with: its JSON
// flag for clients that negotiated JSON. Values are stored inflated, so
// nothing is ever sent compressed.
func sentDatatype(c *memcached.Conn, stored uint8) uint8 {
	if c.Features.Has(featureJSON) {
		return stored & gm.DatatypeFlagJSON
	}
	return 0
}

// frames checks a request's framing extras. Only clients that negotiated
// AltRequest may send them; a malformed frame is EINVAL (and the
// connection closed). It answers and returns false for frames gocache
// refuses, and reports whether the request asks to keep the item's
// expiry.
func (h *handler) frames(c *memcached.Conn, req *gm.MCRequest) (preserveExpiry, ok bool) {
	if len(req.FramingExtras) == 0 {
		return false, true
	}
	if !c.Features.Has(featureAltRequest) {
		h.invalid(c, req)
		return false, false
	}
	for i := range req.FramingExtras {
		f := &req.FramingExtras[i]
		if err := f.Validate(); err != nil {
			h.invalid(c, req)
			return false, false
		}
		switch f.ObjId {
		case gm.FrameBarrier, gm.FrameOpenTracing:
		case gm.FramePreserveExpiry:
			preserveExpiry = true
		case gm.FrameDurability:
			// One node and no disk: a majority of one is met by the
			// write itself; persistence cannot be.
			if lvl, _, _, _ := f.GetDurabilityRequirements(); lvl != gm.DuraMajority {
				h.extended(c, req, gm.DURABILITY_INVALID_LEVEL)
				return false, false
			}
		case gm.FrameImpersonate, gm.FrameExtraPrivilege:
			h.extended(c, req, gm.EACCESS)
			return false, false
		default: // a stream id outside DCP
			h.invalid(c, req)
			return false, false
		}
	}
	return preserveExpiry, true
}
