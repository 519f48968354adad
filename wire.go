package gomemcached

import (
	"io"
	"sync"
)

// maxPooledPacket is the largest packet Transmit encodes into a pooled
// buffer and writes in one call.
const maxPooledPacket = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledPacket {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

var hdrPool = sync.Pool{New: func() any { return new([HDR_LEN]byte) }}

// headerBuf returns a HDR_LEN-byte buffer: the first bytes of b when it is
// long enough, else a pooled one, which it also returns for releaseHeader.
func headerBuf(b []byte) ([]byte, *[HDR_LEN]byte) {
	if len(b) >= HDR_LEN {
		return b[:HDR_LEN], nil
	}
	p := hdrPool.Get().(*[HDR_LEN]byte)
	return p[:], p
}

// releaseHeader returns a buffer from headerBuf to its pool.
func releaseHeader(p *[HDR_LEN]byte) {
	if p != nil {
		hdrPool.Put(p)
	}
}

// readErr maps an io.ReadFull error after n bytes of a packet: io.EOF before
// the first byte stays io.EOF; a stream ending later is ErrTruncated; other
// errors (deadlines, closed connections) are returned as they are.
func readErr(n int, err error) error {
	switch {
	case err == io.EOF && n == 0:
		return io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return protoErr(ErrTruncated, "")
	}
	return err
}

// eagerBody is the largest body read into an allocation of the announced
// size; larger bodies grow as their bytes arrive.
const eagerBody = 1 << 20

// readBody reads an n-byte body into a new slice. The announced length is
// already validated, but a peer that announces 21 MiB and sends nothing
// should not cost 21 MiB: above eagerBody the slice doubles as data arrives.
func readBody(r io.Reader, n int) ([]byte, int, error) {
	if n <= eagerBody {
		b := make([]byte, n)
		m, err := io.ReadFull(r, b)
		return b, m, err
	}
	return readLargeBody(r, n)
}

// readLargeBody is readBody for bodies over eagerBody.
func readLargeBody(r io.Reader, n int) ([]byte, int, error) {
	b := make([]byte, eagerBody)
	got := 0
	for {
		m, err := io.ReadFull(r, b[got:])
		got += m
		if err != nil || got == n {
			return b, got, err
		}
		grown := make([]byte, min(n, 2*len(b)))
		copy(grown, b)
		b = grown
	}
}

// copyIn copies src to the start of dst and returns its length; it skips
// the call to memmove for the empty sections most packets have.
func copyIn(dst, src []byte) int {
	if len(src) == 0 {
		return 0
	}
	return copy(dst, src)
}

// writeAll writes the non-empty parts in order, stopping at the first error.
func writeAll(w io.Writer, parts ...[]byte) (int, error) {
	total := 0
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		n, err := w.Write(p)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
