package gocache

import (
	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// frames checks a request's framing extras. Only clients that negotiated
// AltRequest may send them; a malformed frame is EINVAL (and the
// connection closed). It answers and returns false for frames gocache
// refuses, and reports whether the request asks to keep the item's
// expiry.
func (h *handler) frames(w memcached.ResponseWriter, req *gm.MCRequest) (preserveExpiry, ok bool) {
	if len(req.FramingExtras) == 0 {
		return false, true
	}
	if !state(w).features.Has(gm.FeatureAltRequest) {
		h.invalid(w, req)
		return false, false
	}
	for i := range req.FramingExtras {
		f := &req.FramingExtras[i]
		if err := f.Validate(); err != nil {
			h.invalid(w, req)
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
				h.extended(w, req, gm.DURABILITY_INVALID_LEVEL)
				return false, false
			}
		case gm.FrameImpersonate, gm.FrameExtraPrivilege:
			h.extended(w, req, gm.EACCESS)
			return false, false
		default: // a stream id outside DCP
			h.invalid(w, req)
			return false, false
		}
	}
	return preserveExpiry, true
}
