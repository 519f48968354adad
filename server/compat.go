package memcached

import (
	"io"

	"github.com/f8e615c8/gomemcached"
)

// RequestHandler is the reference's handler interface. HandleMessage
// answers one request: nil means "quiet, send nothing"; a response with
// Fatal set closes the connection without being sent. The io.Writer is the
// connection, for handlers that write their own packets.
type RequestHandler interface {
	HandleMessage(io.Writer, *gomemcached.MCRequest) *gomemcached.MCResponse
}

type funcHandler func(io.Writer, *gomemcached.MCRequest) *gomemcached.MCResponse

func (f funcHandler) HandleMessage(w io.Writer, req *gomemcached.MCRequest) *gomemcached.MCResponse {
	return f(w, req)
}

// FuncHandler adapts a function to a RequestHandler.
func FuncHandler(f func(io.Writer, *gomemcached.MCRequest) *gomemcached.MCResponse) RequestHandler {
	return funcHandler(f)
}

// ReadPacket reads one request from r. The request owns its memory.
func ReadPacket(r io.Reader) (rv gomemcached.MCRequest, err error) {
	_, err = rv.Receive(r, nil)
	return rv, err
}

// HandleMessage reads one request from r, has handler answer it and writes
// the answer to w, with the request's opcode and opaque. It returns io.EOF
// when the handler's answer is Fatal, and any read or write error.
func HandleMessage(r io.Reader, w io.Writer, handler RequestHandler) error {
	req, err := ReadPacket(r)
	if err != nil {
		return err
	}
	res := handler.HandleMessage(w, &req)
	if res == nil {
		return nil
	}
	if res.Fatal {
		return io.EOF
	}
	res.Opcode, res.Opaque = req.Opcode, req.Opaque
	_, err = res.Transmit(w)
	return err
}

// HandleIO serves s with handler until the handler answers Fatal (io.EOF),
// the stream ends or fails, then closes s and returns the error. Requests
// are read through a buffer and answers written once no complete request
// is left unread; each request handed to the handler owns its memory, as
// with ReadPacket.
func HandleIO(s io.ReadWriteCloser, handler RequestHandler) error {
	defer s.Close()
	rd := gomemcached.NewReader(s)
	w := &bufferedWriter{w: s}
	var req gomemcached.MCRequest
	for {
		if !rd.Ready() {
			if err := w.flush(); err != nil {
				return err
			}
		}
		if err := rd.ReadRequest(&req); err != nil {
			w.flush()
			return err
		}
		owned := ownRequest(&req)
		res := handler.HandleMessage(w, owned)
		if res == nil {
			continue
		}
		if res.Fatal {
			w.flush()
			return io.EOF
		}
		res.Opcode, res.Opaque = owned.Opcode, owned.Opaque
		if _, err := w.Write(res.Bytes()); err != nil {
			return err
		}
	}
}

// bufferedWriter collects answers until flush.
type bufferedWriter struct {
	w   io.Writer
	buf []byte
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *bufferedWriter) flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// ownRequest returns a copy of req whose sections share one new allocation,
// for handlers that keep what they are given.
func ownRequest(req *gomemcached.MCRequest) *gomemcached.MCRequest {
	out := *req
	n := len(req.Extras) + len(req.Key) + len(req.Body) + len(req.ExtMeta)
	for _, f := range req.FramingExtras {
		n += len(f.ObjData)
	}
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	out.Extras, out.Key, out.Body, out.ExtMeta = take(req.Extras), take(req.Key), take(req.Body), take(req.ExtMeta)
	if len(req.FramingExtras) > 0 {
		out.FramingExtras = make([]gomemcached.FrameInfo, len(req.FramingExtras))
		for i, f := range req.FramingExtras {
			f.ObjData = take(f.ObjData)
			out.FramingExtras[i] = f
		}
	} else {
		out.FramingExtras = nil
	}
	return &out
}

// Adapt serves a RequestHandler with a Server: each request is copied so
// that the handler may keep it, and its answer sent as HandleMessage does.
func Adapt(h RequestHandler) Handler {
	return HandlerFunc(func(w ResponseWriter, req *gomemcached.MCRequest) {
		owned := ownRequest(req)
		res := h.HandleMessage(w, owned)
		if res == nil {
			return
		}
		if res.Fatal {
			w.Close()
			return
		}
		res.Opcode, res.Opaque = owned.Opcode, owned.Opaque
		w.WriteResponse(res)
	})
}
