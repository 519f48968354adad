package gocache

import (
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/sasl"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Failed authentications on one connection are slowed down after
// freeAttempts, and the connection is closed after maxAttempts.
const (
	freeAttempts = 3
	maxAttempts  = 10
	maxPenalty   = 2 * time.Second
)

// beforeAuth reports whether op may be used before authenticating when
// authentication is required.
func beforeAuth(op gm.CommandCode) bool {
	switch op {
	case gm.SASL_LIST_MECHS, gm.SASL_AUTH, gm.SASL_STEP, gm.HELLO, gm.VERSION, gm.NOOP,
		gm.QUIT, gm.QUITQ, gm.GET_ERROR_MAP:
		return true
	}
	return false
}

func (h *handler) listMechs(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: []byte(sasl.Mechanisms)}
	w.WriteResponse(&res)
}

// saslAuth starts an authentication: the key names the mechanism, the value
// is the client's first message.
func (h *handler) saslAuth(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) == 0 {
		h.invalid(w, req)
		return
	}
	h.srv.authCmds.Add(1)
	st := state(w)
	sess, out, done, err := h.srv.cfg.Users.Start(string(req.Key), req.Body)
	switch {
	case err != nil:
		h.authFailed(w, req)
	case done:
		st.sasl = nil
		h.authenticated(w, req, sess.User(), []byte("Authenticated"))
	default:
		st.sasl = sess
		res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.AUTH_CONTINUE, Body: out}
		w.WriteResponse(&res)
	}
}

// saslStep continues a SCRAM authentication.
func (h *handler) saslStep(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) == 0 {
		h.invalid(w, req)
		return
	}
	h.srv.authCmds.Add(1)
	st := state(w)
	sess := st.sasl
	st.sasl = nil
	out, _, err := sess.Step(string(req.Key), req.Body)
	if err != nil {
		h.authFailed(w, req)
		return
	}
	h.authenticated(w, req, sess.User(), out)
}

// authenticated binds the connection to u and answers SUCCESS. A bucket
// the user may not use is left.
func (h *handler) authenticated(w memcached.ResponseWriter, req *gm.MCRequest, u *sasl.User, body []byte) {
	st := state(w)
	st.user, st.failures = u, 0
	if st.bucket != nil && !u.MayUse(st.bucket.name) {
		st.bucket = nil
	}
	h.srv.logger().Debug("authenticated", "remote", w.Conn().RemoteAddr().String(), "user", u.Name)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: body}
	w.WriteResponse(&res)
}

// authFailed answers AUTH_ERROR, forgets any earlier authentication, and
// slows down a connection that keeps failing, closing it at maxAttempts.
func (h *handler) authFailed(w memcached.ResponseWriter, req *gm.MCRequest) {
	st := state(w)
	h.srv.authErrs.Add(1)
	st.user, st.sasl = nil, nil
	st.failures++
	if st.failures > freeAttempts {
		w.Conn().Pause(min(maxPenalty, 100*time.Millisecond<<(st.failures-freeAttempts-1)))
	}
	w.WriteStatus(req, gm.AUTH_ERROR, msgAuthFailure)
	if st.failures >= maxAttempts {
		h.srv.logger().Info("closing connection after repeated authentication failures",
			"remote", w.Conn().RemoteAddr().String(), "attempts", st.failures)
		w.Close()
	}
}
