package memcached

import (
	"bytes"
	"errors"
	"io"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/mctext"
)

// TextHandler is implemented by a Handler that also serves memcached's
// text and meta protocols. A connection whose first byte is not a binary
// magic (or every connection, with Server.Protocol set to ProtocolText) is
// then framed as text: each command line, with the data block a storage
// command announces, is handed to ServeText, which answers with
// ResponseWriter.Write and WriteValue. The request, its fields and its data
// alias the connection's buffer and are valid only during the call.
type TextHandler interface {
	ServeText(w ResponseWriter, req *TextRequest)
}

// A TextRequest is one text-protocol command.
type TextRequest struct {
	// Line is the command line without its "\n", and without the "\r"
	// before it (unless the line is that "\r" alone, as memcached reads it).
	Line []byte
	// Fields is Line split at spaces as memcached's tokenizer splits it
	// (mctext.Fields): Fields[0] is the command.
	Fields [][]byte
	// HasData reports that the line announced a data block, as memcached's
	// storage commands (set, add, replace, append, prepend, cas) and ms do
	// when their line is well formed up to the block's length
	// (mctext.DataLen); Data is then the block without its terminator.
	HasData bool
	Data    []byte
	// TooLarge reports a data block longer than Server.TextMaxValueSize:
	// Data is nil and the block is skipped after ServeText returns, read
	// and dropped through the connection's buffer, never held (memcached's
	// conn_swallow).
	TooLarge bool
	// BadChunk reports a data block not followed by "\r\n" (memcached's
	// "CLIENT_ERROR bad data chunk"); the two bytes after it are consumed
	// all the same, and what follows them is read as the next command
	// line, as memcached reads it.
	BadChunk bool
}

// Protocol selects what the server speaks (memcached's -B).
type Protocol int

const (
	// ProtocolAuto chooses each connection's protocol by its first byte:
	// binary for a binary magic, text otherwise (when the Handler is a
	// TextHandler; without one, such a connection is refused).
	ProtocolAuto Protocol = iota
	// ProtocolBinary serves only the binary protocol: a connection that
	// does not start with a binary magic is closed.
	ProtocolBinary
	// ProtocolText serves only the text protocol: every connection is
	// framed as text, whatever its first byte.
	ProtocolText
)

// Text framing limits, as memcached's.
const (
	// textProbe is memcached's 2048: more than this many bytes buffered
	// with no "\n" among them must be the start of a multi-key get (a
	// line starting, after at most 100 spaces, with "get " or "gets "),
	// or the connection is closed, after the answers to the commands
	// before it, with nothing more sent. (memcached sends only those of
	// the answers before it that it had flushed: a get's, not a set's
	// STORED read in the same batch. A longer line whose "\n" is already
	// buffered is served, as memcached serves it.)
	textProbe = 2048
	// MaxTextLine bounds a get or gets line, and any other. memcached
	// grows its buffer without bound for a get line; here a longer line
	// closes the connection, so that a connection's input (the line, and
	// its split Fields at 24 bytes a key) stays within tens of megabytes.
	// 2 MiB is over 150000 keys of 10 bytes, ten times the largest get in
	// memcached's own test suite.
	MaxTextLine = 2 << 20
	// maxRetainedFields is the most split fields a connection keeps
	// between commands.
	maxRetainedFields = 4096
)

// ErrLineTooLong closes a text connection that sent a line over memcached's
// limits (no "\n" in 2048 bytes, other than a multi-key get), or any line
// over MaxTextLine. It matches gomemcached.ErrProtocol.
var ErrLineTooLong error = lineTooLong{}

type lineTooLong struct{}

func (lineTooLong) Error() string { return "memcached: text line too long" }
func (lineTooLong) Unwrap() error { return gomemcached.ErrProtocol }

// textDecoder frames a text connection's input: lines and data blocks in
// one buffer it reuses.
type textDecoder struct {
	c   *Conn
	src io.Reader
	buf []byte
	r   int // start of what is not yet decoded
	w   int // end of what was read
	// scan is how far from r the search for "\n" has looked already.
	scan int
	// need is the bytes from r the request being read takes, once its
	// line is known (0 before).
	need int
	// skip is the bytes of a too-large data block still to discard.
	skip int
	// maxValue is the longest data block buffered.
	maxValue int
	size     int // the buffer's initial size, kept between requests

	// The request found by ready: its line ends at lineEnd (before "\r\n"
	// or "\n"), its "\n" is at nl, the whole request ends at end.
	found   bool
	lineEnd int
	nl      int
	end     int
	dataLen int
	hasData bool
	tooBig  bool
	err     error

	req    TextRequest
	fields [][]byte
}

// newTextDecoder returns the decoder of a text connection reading src,
// whose first bytes, if any, were read into first (whose capacity becomes
// the decoder's buffer).
func (c *Conn) newTextDecoder(src io.Reader, first []byte) *textDecoder {
	size := c.srv.readBufferSize()
	mv := c.srv.TextMaxValueSize
	if mv <= 0 {
		mv = c.srv.MaxValueSize
	}
	if mv <= 0 {
		mv = gomemcached.MaxBodyLen
	}
	d := &textDecoder{c: c, src: src, buf: first[:cap(first)], w: len(first), maxValue: mv, size: size}
	if d.buf == nil {
		d.buf = make([]byte, size)
	}
	return d
}

// fill reads once into the buffer, first making room for what the request
// being read needs, or for more of it. The buffer grows by doubling, and
// only once what is buffered fills more than half of it, so that it never
// outgrows what the client has sent by more than twice (a data block's
// announced length alone grows nothing); once a large request is done it
// goes back to its initial size. A too-large block being skipped is read
// through the buffer as it is.
func (d *textDecoder) fill() (int, error) {
	pending := d.w - d.r
	if pending == 0 {
		d.r, d.w = 0, 0
	}
	want := max(d.need, pending+1)
	var nb []byte
	switch {
	case len(d.buf) > maxRetainedOut && want <= d.size:
		nb = make([]byte, d.size)
	case d.r+want <= len(d.buf):
	case want > len(d.buf) && pending > len(d.buf)/2:
		size := 2 * len(d.buf)
		if d.need > len(d.buf) {
			size = min(size, d.need)
		}
		nb = make([]byte, size)
	default:
		nb = d.buf
	}
	if nb != nil {
		copy(nb, d.buf[d.r:d.w])
		d.buf, d.r, d.w = nb, 0, pending
		if d.need > 0 {
			// The line is split already: its fields move with it.
			d.fields = mctext.Fields(d.fields[:0], d.buf[:d.lineEnd])
		}
	}
	n, err := d.src.Read(d.buf[d.w:])
	d.w += n
	return n, err
}

func (d *textDecoder) buffered() int { return d.w - d.r + d.skip }

// ready reports whether a whole request is buffered (or the input broke
// the framing rules, which serve then reports).
func (d *textDecoder) ready() bool {
	if d.found || d.err != nil {
		return true
	}
	if d.skip > 0 {
		n := min(d.skip, d.w-d.r)
		d.r += n
		d.skip -= n
		if d.skip > 0 {
			return false
		}
	}
	in := d.buf[d.r:d.w]
	if len(in) == 0 {
		return false
	}
	if d.need == 0 {
		i := bytes.IndexByte(in[d.scan:], '\n')
		if i < 0 {
			d.scan = len(in)
			if len(in) > textProbe && !multiGet(in) || len(in) > MaxTextLine {
				d.err = ErrLineTooLong
				return true
			}
			return false
		}
		d.nl = d.scan + i
		if d.nl > MaxTextLine {
			// Only a buffer grown for a large block holds one.
			d.err = ErrLineTooLong
			return true
		}
		d.lineEnd = d.nl
		if d.nl > 1 && in[d.nl-1] == '\r' {
			d.lineEnd--
		}
		d.fields = mctext.Fields(d.fields[:0], in[:d.lineEnd])
		d.dataLen, d.hasData = mctext.DataLen(d.fields)
		d.tooBig = d.hasData && d.dataLen > d.maxValue
		d.need = d.nl + 1
		if d.hasData && !d.tooBig {
			d.need += d.dataLen + 2
		}
	}
	if d.need > len(in) {
		return false
	}
	d.found, d.end = true, d.need
	return true
}

// multiGet reports whether input with no "\n" yet may still become a
// memcached multi-key get line.
func multiGet(in []byte) bool {
	i := 0
	for i < len(in) && in[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	in = in[i:]
	return bytes.HasPrefix(in, []byte("get ")) || bytes.HasPrefix(in, []byte("gets "))
}

// serve hands the request found by ready to the handler.
func (d *textDecoder) serve(h TextHandler) error {
	if d.err != nil {
		return d.err
	}
	in := d.buf[d.r:d.w]
	d.req = TextRequest{Line: in[:d.lineEnd:d.lineEnd], Fields: d.fields, HasData: d.hasData}
	if d.hasData {
		if d.tooBig {
			d.req.TooLarge = true
			d.skip = d.dataLen + 2
		} else {
			at := d.nl + 1
			d.req.Data = in[at : at+d.dataLen : at+d.dataLen]
			t := in[at+d.dataLen : d.end]
			d.req.BadChunk = t[0] != '\r' || t[1] != '\n'
		}
	}
	d.r += d.end
	d.found, d.scan, d.need = false, 0, 0
	err := d.c.handleText(h, &d.req)
	d.req = TextRequest{}
	if cap(d.fields) > maxRetainedFields {
		d.fields = nil
	}
	if d.r == d.w && len(d.buf) > maxRetainedOut {
		d.buf = make([]byte, d.size)
		d.r, d.w = 0, 0
	}
	return err
}

// WriteValue queues p, copied into the output unless it is large, when it
// goes straight from p with one writev after what is queued before it:
// for a text handler's values (p is not kept once WriteValue returns).
func (w ResponseWriter) WriteValue(p []byte) error {
	c := w.c
	if c.werr != nil {
		return c.werr
	}
	if len(p) < largeValue {
		c.out = append(c.out, p...)
		return nil
	}
	c.t.writeLarge(p)
	return c.werr
}

// next is never called for a text connection: Conn.step serves it through
// serve.
func (d *textDecoder) next(*gomemcached.MCRequest) error {
	return errors.New("memcached: text connection decoded as binary")
}
