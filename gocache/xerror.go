package gocache

import (
	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// extended answers req with a status that memcached's clients do not
// know (NO_BUCKET, EACCESS, the durability statuses) if the connection
// negotiated XERROR. Otherwise it closes the connection, as kv_engine
// does: a client that cannot read the status would misread it as success
// or as a status it knows.
func (h *handler) extended(w memcached.ResponseWriter, req *gm.MCRequest, status gm.Status) {
	h.extendedBody(w, req, status, nil)
}

// extendedBody is extended with a body for the status. As kv_engine
// (Connection::remapErrorCode), a few statuses are remapped for a client
// without XERROR instead: CAS_VALUE_INVALID is KEY_EEXISTS,
// UNKNOWN_COLLECTION and UNKNOWN_SCOPE are kept for clients that
// negotiated Collections and are EINVAL for others, and
// CANNOT_APPLY_COLLECTIONS_MANIFEST is EINTERNAL.
func (h *handler) extendedBody(w memcached.ResponseWriter, req *gm.MCRequest, status gm.Status, body []byte) {
	st := state(w)
	if st.features.Has(gm.FeatureXError) {
		w.WriteStatus(req, status, body)
		return
	}
	switch status {
	case gm.CAS_VALUE_INVALID:
		w.WriteStatus(req, gm.KEY_EEXISTS, msgExists)
		return
	case gm.UNKNOWN_COLLECTION, gm.UNKNOWN_SCOPE:
		if st.features.Has(gm.FeatureCollections) {
			w.WriteStatus(req, status, body)
		} else {
			w.WriteStatus(req, gm.EINVAL, msgInvalid)
		}
		return
	case gm.CANNOT_APPLY_COLLECTIONS_MANIFEST:
		w.WriteStatus(req, gm.EINTERNAL, body)
		return
	}
	h.srv.logger().Info("closing connection: extended status without XERROR",
		"remote", w.Conn().RemoteAddr().String(), "opcode", req.Opcode.String(), "status", status.String())
	w.Close()
}
