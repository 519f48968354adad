package gocache

import (
	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// DCP opcodes (0x50 to 0x65) that a gocache connection never serves: the
// messages a producer sends to its consumer (stream end, markers,
// mutations, system events, ...) and the consumer's own commands (add
// stream, set vbucket state). kv_engine's producer disconnects a client
// that sends them (ConnHandler's "doesn't support the dcp ... API"), a
// connection that is no DCP connection gets EINVAL (its validators), the
// obsolete DCP_FLUSH NOT_SUPPORTED, and DCP_SEQNO_ACKNOWLEDGED EINVAL from
// a producer without synchronous replication.

// The range of DCP's opcodes.
const (
	dcpFirstOp = gm.UPR_OPEN
	dcpLastOp  = gm.DCP_OSO_SNAPSHOT
)

// registerDCPRefused answers the DCP opcodes that have no handler of their
// own. It must come after registerDCP.
func (h *handler) registerDCPRefused(m *memcached.ServeMux) {
	for op := dcpFirstOp; op <= dcpLastOp; op++ {
		if m.Handler(op) == nil {
			m.HandleFunc(h.refuseDCP, op)
		}
	}
}

// refuseDCP answers a DCP opcode that no handler serves, as kv_engine's
// producer does.
func (h *handler) refuseDCP(w memcached.ResponseWriter, req *gm.MCRequest) {
	switch {
	case req.Opcode == gm.UPR_FLUSH:
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
	case state(w).dcp == nil, req.Opcode == gm.DCP_SEQNO_ACK:
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
	default:
		h.srv.logger().Info("dcp: closing a producer connection: it sent a message no producer takes",
			"remote", w.Conn().RemoteAddr().String(), "opcode", req.Opcode.String())
		w.Close()
	}
}
