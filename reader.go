package gomemcached

import (
	"encoding/binary"
	"io"
)

// DefaultReaderSize is the buffer size of a Reader made by NewReader.
const DefaultReaderSize = 4096

// maxRetainedBuffer is the largest buffer a Reader keeps between packets
// (memcached's default item size limit);
// a larger one, grown for a large packet, is dropped once it is drained.
const maxRetainedBuffer = 1 << 20

// Reader reads packets from a stream through a buffer that it reuses, so
// that reading allocates nothing once the buffer has grown to the largest
// packet seen. It reads ahead: pipelined packets are parsed from the buffer
// without further reads.
//
// The packets it fills in alias its buffer: their slices are valid until the
// next call on the Reader. Copy what must outlive that.
//
// A Reader grows its buffer only as data arrives, never to a length a header
// announces, so a peer that announces a large packet and sends little costs
// little memory. A Reader is not safe for concurrent use.
type Reader struct {
	// MaxValue bounds the value of a packet (the body minus framing
	// extras, extras and key); 0 means MaxBodyLen. Larger packets fail
	// with ErrBodyTooLarge before they are read.
	MaxValue int

	rd   io.Reader
	buf  []byte
	r, w int // unread data is buf[r:w]
	size int
	h    header // the last packet's header
}

// NewReader returns a Reader on rd with a buffer of DefaultReaderSize bytes,
// allocated at the first read.
func NewReader(rd io.Reader) *Reader { return NewReaderSize(rd, DefaultReaderSize) }

// NewReaderSize returns a Reader on rd whose buffer starts at size bytes (at
// least HDR_LEN).
func NewReaderSize(rd io.Reader, size int) *Reader {
	return &Reader{rd: rd, size: max(size, HDR_LEN)}
}

// Reset discards buffered data and makes the Reader read from rd.
func (r *Reader) Reset(rd io.Reader) {
	r.rd = rd
	r.r, r.w = 0, 0
	if cap(r.buf) > maxRetainedBuffer {
		r.buf = nil
	}
}

// Buffered returns the number of bytes read from the stream but not yet
// returned as packets.
func (r *Reader) Buffered() int { return r.w - r.r }

// BufferedBytes returns the bytes read from the stream but not yet
// returned as packets, valid until the next call on the Reader: what a
// caller taking over the stream must read first.
func (r *Reader) BufferedBytes() []byte { return r.buf[r.r:r.w] }

// Ready reports whether a whole packet is buffered, so that the next read
// returns without waiting on the stream. A server flushes its responses when
// the Reader is not Ready.
func (r *Reader) Ready() bool {
	n := r.w - r.r
	if n < HDR_LEN {
		return false
	}
	body := binary.BigEndian.Uint32(r.buf[r.r+8:])
	return uint64(n) >= HDR_LEN+uint64(body)
}

// Magic returns the magic byte of the last packet read: a server uses it
// to refuse packets that are not requests (MCRequest does not keep it).
func (r *Reader) Magic() byte { return r.h.magic }

// ReadRequest reads the next packet into req, replacing all its fields;
// FramingExtras keeps its backing array. It returns io.EOF at the end of the
// stream between packets, a *ProtocolError for a malformed or truncated
// packet, or the stream's error.
func (r *Reader) ReadRequest(req *MCRequest) error {
	pkt, err := r.next()
	if err != nil {
		return err
	}
	return req.decode(&r.h, pkt, pkt[HDR_LEN:])
}

// ReadResponse reads the next packet into res, replacing its fields. Errors
// are those of ReadRequest; a response is read whatever its status.
func (r *Reader) ReadResponse(res *MCResponse) error {
	pkt, err := r.next()
	if err != nil {
		return err
	}
	res.recycleBuf, res.recycleDone = nil, nil
	return res.decode(&r.h, pkt, pkt[HDR_LEN:])
}

// next reads the next packet's header into r.h, validated, and returns the
// whole packet, which aliases the buffer.
func (r *Reader) next() ([]byte, error) {
	if r.r == r.w && cap(r.buf) > maxRetainedBuffer {
		r.buf, r.r, r.w = nil, 0, 0
	}
	if r.w-r.r < HDR_LEN {
		if err := r.fill(HDR_LEN); err != nil {
			if err == io.EOF && r.w == r.r {
				return nil, io.EOF
			}
			return nil, r.failed(err)
		}
	}
	if err := r.parseHeader(); err != nil {
		return nil, err
	}
	end := HDR_LEN + r.h.bodylen
	if r.w-r.r < end {
		if err := r.fill(end); err != nil {
			return nil, r.failed(err)
		}
	}
	start := r.r
	r.r += end
	return r.buf[start : start+end : start+end], nil
}

// Fill reads once from the stream into the buffer, for event loops that
// read when a socket is readable and then parse every packet Ready
// reports. It first makes room: unread data moves to the front, and the
// buffer grows (at most doubling) when the packet in progress needs more;
// the header of that packet is validated before the buffer grows for it,
// and again as soon as a read completes it. It returns the bytes read and
// the stream's error, or a *ProtocolError for a malformed header.
func (r *Reader) Fill() (int, error) {
	need, err := r.pending()
	if err != nil {
		return 0, err
	}
	if r.r == r.w && cap(r.buf) > maxRetainedBuffer {
		r.buf, r.r, r.w = nil, 0, 0
	}
	if r.buf == nil || r.w == len(r.buf) {
		r.makeRoom(max(need, r.w-r.r+1))
	}
	m, err := r.rd.Read(r.buf[r.w:])
	r.w += m
	if m > 0 {
		if _, perr := r.pending(); perr != nil {
			return m, perr
		}
	}
	return m, err
}

// pending validates the header of the packet at the front of the buffer,
// once it is all there, and returns the size of that packet (HDR_LEN while
// its header is incomplete).
func (r *Reader) pending() (int, error) {
	if r.w-r.r < HDR_LEN {
		return HDR_LEN, nil
	}
	if err := r.parseHeader(); err != nil {
		return 0, err
	}
	return HDR_LEN + r.h.bodylen, nil
}

// parseHeader validates the header at the front of the buffer into r.h,
// against the Reader's value limit.
func (r *Reader) parseHeader() error {
	limit := r.MaxValue
	if limit <= 0 {
		limit = MaxBodyLen
	}
	return parseHeader(&r.h, r.buf[r.r:r.r+HDR_LEN], limit)
}

// failed maps a fill error inside a packet.
func (r *Reader) failed(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return protoErr(ErrTruncated, "")
	}
	return err
}

// fill reads until at least n bytes are buffered. It grows the buffer by at
// most doubling per round, so memory follows the data that arrives.
func (r *Reader) fill(n int) error {
	empty := 0
	for r.w-r.r < n {
		if len(r.buf)-r.r < n {
			r.makeRoom(n)
		}
		m, err := r.rd.Read(r.buf[r.w:])
		r.w += m
		if r.w-r.r >= n {
			return nil
		}
		if err != nil {
			return err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// makeRoom moves the unread data to the front of the buffer and, if the
// buffer is still short of n bytes, grows it towards n.
func (r *Reader) makeRoom(n int) {
	if r.buf == nil {
		r.buf = make([]byte, r.size)
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if len(r.buf) < n && r.w == len(r.buf) {
		grown := make([]byte, min(n, max(2*len(r.buf), r.size)))
		r.w = copy(grown, r.buf[:r.w])
		r.buf = grown
	}
}
