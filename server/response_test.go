package memcached

import (
	"sync"
	"testing"

	gm "github.com/f8e615c8/gomemcached"
)

// responseTaker answers NOOPs and records the responses it is given.
type responseTaker struct {
	mu   sync.Mutex
	got  []gm.MCResponse
	seen chan struct{}
}

func (h *responseTaker) ServeMC(w ResponseWriter, req *gm.MCRequest) {
	h.mu.Lock()
	n := len(h.got)
	h.mu.Unlock()
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: uint64(n)}
	w.WriteResponse(&res)
}

func (h *responseTaker) ServeMCResponse(c *Conn, res *gm.MCResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := *res
	r.Body = append([]byte(nil), res.Body...)
	h.got = append(h.got, r)
}

// A Handler that is a ResponseHandler is given the responses its clients
// send, with their status, in order with the requests, even as a
// connection's first packet; other handlers' connections are closed by
// a response, as by any packet that is not a request.
func TestResponseHandler(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		h := &responseTaker{}
		addr := start(t, &Server{EventLoops: loops, Handler: h})
		c, r := dial(t, addr)
		res := gm.MCResponse{Opcode: gm.UPR_NOOP, Status: gm.KEY_ENOENT, Opaque: 7, Body: []byte("x")}
		c.Write(res.Bytes())
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 8})
		if got := read(t, r); got.Opaque != 8 || got.Cas != 1 {
			t.Fatalf("NOOP after a response: %+v", got)
		}
		h.mu.Lock()
		if len(h.got) != 1 || h.got[0].Opcode != gm.UPR_NOOP || h.got[0].Status != gm.KEY_ENOENT ||
			h.got[0].Opaque != 7 || string(h.got[0].Body) != "x" {
			t.Errorf("responses taken: %+v", h.got)
		}
		h.mu.Unlock()

		plain := start(t, &Server{EventLoops: loops, Handler: HandlerFunc(func(w ResponseWriter, req *gm.MCRequest) {
			res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
			w.WriteResponse(&res)
		})})
		p, pr := dial(t, plain)
		send(t, p, gm.MCRequest{Opcode: gm.NOOP, Opaque: 1})
		read(t, pr)
		p.Write(res.Bytes())
		send(t, p, gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})
		var last gm.MCResponse
		if err := pr.ReadResponse(&last); err == nil {
			t.Fatalf("a handler without ServeMCResponse answered after a response: %+v", last)
		}
	})
}
