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

// extendedBody is extended with a body for the status.
func (h *handler) extendedBody(w memcached.ResponseWriter, req *gm.MCRequest, status gm.Status, body []byte) {
	if state(w).features.Has(gm.FeatureXError) {
		w.WriteStatus(req, status, body)
		return
	}
	h.srv.logger().Info("closing connection: extended status without XERROR",
		"remote", w.Conn().RemoteAddr().String(), "opcode", req.Opcode.String(), "status", status.String())
	w.Close()
}
