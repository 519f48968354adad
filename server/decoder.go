package memcached

import (
	"bytes"
	"fmt"
	"io"

	"github.com/f8e615c8/gomemcached"
)

// A connection's protocol is chosen by the first byte it sends, as
// memcached's "-B auto" does: a binary request starts with one of its
// magics; anything else is the text protocol (text.go), served when the
// Handler is a TextHandler and refused at once, as malformed, otherwise.
// Server.Protocol can fix one protocol for every connection. Each protocol is a decoder,
// which turns the connection's input into gomemcached requests, and an
// encoder of the answers, which ResponseWriter calls (it encodes binary
// itself); the connection step above them is the same for every protocol
// and connection model.

// decoder reads one protocol's requests from a connection's input.
type decoder interface {
	// fill reads once from the connection into the input buffer.
	fill() (int, error)
	// ready reports whether a whole request is buffered.
	ready() bool
	// next decodes the next buffered request into req, whose slices
	// alias the buffer until the next call. An error means the stream
	// can no longer be trusted.
	next(req *gomemcached.MCRequest) error
	// buffered returns the number of bytes read and not yet decoded.
	buffered() int
}

// protocol is a decoder and an encoder that speak one protocol on a
// connection.
type protocol struct {
	dec decoder
	enc encoder
}

// binaryDecoder reads binary requests through a gomemcached.Reader.
type binaryDecoder struct{ rd *gomemcached.Reader }

func (d *binaryDecoder) fill() (int, error) { return d.rd.Fill() }
func (d *binaryDecoder) ready() bool        { return d.rd.Ready() }
func (d *binaryDecoder) buffered() int      { return d.rd.Buffered() }

func (d *binaryDecoder) next(req *gomemcached.MCRequest) error {
	if err := d.rd.ReadRequest(req); err != nil {
		return err
	}
	switch m := d.rd.Magic(); m {
	case gomemcached.REQ_MAGIC, gomemcached.FLEX_MAGIC:
		return nil
	case gomemcached.RES_MAGIC, gomemcached.FLEX_RES_MAGIC, gomemcached.ServerResponseMagic:
		// Decoded as a request, the status in VBucket (see asResponse).
		return &responsePacket{magic: m}
	default:
		return &gomemcached.ProtocolError{Kind: gomemcached.ErrBadMagic,
			Detail: fmt.Sprintf("magic 0x%02x is not a request", m)}
	}
}

// responsePacket is next's error for a packet that is a response: a
// ResponseHandler takes it, otherwise it closes the connection as a bad
// magic.
type responsePacket struct{ magic byte }

func (e *responsePacket) Error() string {
	return fmt.Sprintf("gomemcached: magic 0x%02x is not a request", e.magic)
}

func (e *responsePacket) Unwrap() error { return gomemcached.ErrBadMagic }

// asResponse fills res from a response that was decoded as a request: the
// header field a request has for its vbucket holds a response's status.
func asResponse(res *gomemcached.MCResponse, req *gomemcached.MCRequest) {
	*res = gomemcached.MCResponse{Opcode: req.Opcode, Status: gomemcached.Status(req.VBucket), Opaque: req.Opaque,
		Cas: req.Cas, DataType: req.DataType, Extras: req.Extras, Key: req.Key, Body: req.Body}
}

// refused is the decoder of a connection that spoke no protocol the server
// knows: its first request is a bad magic.
type refused struct{ magic byte }

func (refused) fill() (int, error) { return 0, nil }
func (refused) ready() bool        { return true }
func (refused) buffered() int      { return 0 }

func (d refused) next(*gomemcached.MCRequest) error {
	return &gomemcached.ProtocolError{Kind: gomemcached.ErrBadMagic,
		Detail: fmt.Sprintf("magic 0x%02x is not a request", d.magic)}
}

// choose sets the connection's protocol from the first bytes it sent,
// first (read into a buffer of the connection's read buffer size, which
// the text decoder keeps as its own).
func (c *Conn) choose(first []byte) {
	_, takesResponses := c.srv.Handler.(ResponseHandler)
	th, speaksText := c.srv.Handler.(TextHandler)
	b := first[0]
	binary := b == gomemcached.REQ_MAGIC || b == gomemcached.FLEX_MAGIC ||
		takesResponses && (b == gomemcached.RES_MAGIC || b == gomemcached.FLEX_RES_MAGIC ||
			b == gomemcached.ServerResponseMagic) // for a handler that takes its clients' responses
	switch {
	case c.srv.Protocol == ProtocolText && speaksText:
		c.startText(th, first)
		return
	case binary && c.srv.Protocol != ProtocolText:
	case c.srv.Protocol == ProtocolBinary:
		c.dec = refused{b}
		return
	case speaksText:
		c.startText(th, first)
		return
	case c.srv.textProtocol != nil:
		p := c.srv.textProtocol(c, io.MultiReader(bytes.NewReader(first), c.src))
		c.dec, c.enc = p.dec, p.enc
		return
	default:
		c.dec = refused{b}
		return
	}
	rd := gomemcached.NewReaderSize(io.MultiReader(bytes.NewReader(first), c.src), c.srv.readBufferSize())
	rd.MaxValue = c.srv.MaxValueSize
	c.dec = &binaryDecoder{rd}
}

// startText frames the connection as text, for th, from the first bytes
// it sent.
func (c *Conn) startText(th TextHandler, first []byte) {
	d := c.newTextDecoder(c.src, first)
	c.dec, c.text, c.textHandler = d, d, th
}

// sniff reads what the connection has sent first, as much as a read
// buffer holds (blocking a connection that has its own goroutine, as any
// read does), and chooses the protocol by its first byte; what it read
// goes to the protocol's decoder whole, so that a pipelined first batch
// is answered as one, like any other.
func (c *Conn) sniff() (int, error) {
	buf := make([]byte, c.srv.readBufferSize())
	n, err := c.src.Read(buf)
	if n == 0 {
		return 0, err
	}
	c.choose(buf[:n])
	if c.text == nil {
		if _, ferr := c.dec.fill(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

func (s *Server) readBufferSize() int {
	if s.ReadBufferSize > 0 {
		return s.ReadBufferSize
	}
	return DefaultReadBufferSize
}
