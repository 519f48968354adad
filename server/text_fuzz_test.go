package memcached

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/f8e615c8/gomemcached/internal/mctext"
)

// textRecorder records the requests it is given and answers nothing.
type textRecorder struct {
	mu   sync.Mutex
	reqs []textSeen
}

func (h *textRecorder) ServeText(w ResponseWriter, req *TextRequest) {
	h.mu.Lock()
	h.reqs = append(h.reqs, seen(req))
	h.mu.Unlock()
}

// textModel frames in whole, the simple way, with the rules of
// memcached's try_read_command_ascii, process_update_command and
// complete_nread_ascii: what the decoder must find when it reads one byte
// at a time. tooLong reports the first line that breaks the line rules
// (the model stops there); midPacket, input left inside a request.
func textModel(in []byte, maxValue int) (reqs []textSeen, tooLong, midPacket bool) {
	pos := 0
	for pos < len(in) {
		rest := in[pos:]
		i := bytes.IndexByte(rest, '\n')
		lineLen := i
		if i < 0 {
			lineLen = len(rest)
		}
		if lineLen > textProbe && !multiGet(rest[:lineLen]) || lineLen > MaxTextLine {
			return reqs, true, false
		}
		if i < 0 {
			return reqs, false, true
		}
		end := i
		if i > 1 && rest[i-1] == '\r' {
			end--
		}
		req := TextRequest{Line: rest[:end], Fields: mctext.Fields(nil, rest[:end])}
		n, has := mctext.DataLen(req.Fields)
		req.HasData = has
		next := pos + i + 1
		if has && n > maxValue {
			req.TooLarge = true
			reqs = append(reqs, seen(&req))
			next += n + 2
			if next > len(in) {
				return reqs, false, true
			}
			pos = next
			continue
		}
		if has {
			if next+n+2 > len(in) {
				return reqs, false, true
			}
			req.Data = in[next : next+n]
			req.BadChunk = in[next+n] != '\r' || in[next+n+1] != '\n'
			next += n + 2
		}
		reqs = append(reqs, seen(&req))
		pos = next
	}
	return reqs, false, false
}

// textSeeds are inputs of every command shape, for the fuzzer.
var textSeeds = []string{
	"set k 0 0 1\r\nv\r\n", "add k 1 2 3 noreply\r\nabc\r\n", "replace k 0 0 0\r\n\r\n",
	"append k 0 0 2\r\nab\r\nprepend k 0 0 2\r\ncd\r\n", "cas k 0 0 1 99\r\nx\r\ncas k 0 0 1 99 noreply\r\nx\r\n",
	"set k 0 0 1\r\nabcd\r\n", "set k 0 0 5\r\nab\r\n", "set k 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\nget k\r\n",
	"set k 0 0 -1\r\nset k 0 0 4294967297\r\nx\r\nset k 4294967296 0 1\r\ny\r\nset k 0 0 2147483646\r\n",
	"set k 0 0 1 \r\nq\r\nset  k  0  0  1\r\nr\r\nset k 0 0 1\t\r\ns\r\nset k\t0 0 1\r\n",
	"set " + strings.Repeat("a", 251) + " 0 0 1\r\nx\r\n",
	"ms k 2\r\nhi\r\nms k 2 T0 F5 I q\r\nhi\r\nms k S2 T0\r\nhi\r\nms\r\nms k\r\nms k -1\r\n",
	"ms k 2 " + strings.Repeat("a ", 20) + "\r\nhi\r\n",
	"mg k v f t\r\nmd k q\r\nma k N0 J1\r\nmn\r\nme k\r\nmx\r\n",
	"get a b c\r\ngets a\r\ngat 0 a\r\ngats 10 a b\r\nbget a\r\n",
	"incr k 1\r\ndecr k 1 noreply\r\ndelete k\r\ndelete k 0 noreply\r\ntouch k 10\r\n",
	"flush_all\r\nflush_all 0 noreply\r\nversion\r\nstats\r\nstats slabs\r\nverbosity 1\r\nquit\r\n",
	"\r\n\n\r\r\n \r\nx\r\n\t\r\n", "get a\x00b\r\nset k 0 0 1\x00\r\nx\r\n",
	"get " + strings.Repeat("k ", 1100) + "\r\n", strings.Repeat(" ", 100) + "gets " + strings.Repeat("k", 2100) + "\r\n",
	strings.Repeat("x", 2049), strings.Repeat("x", 2048) + "\r\n", strings.Repeat("x", 3000) + "\r\n",
	"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00get a\r\n",
	"GET / HTTP/1.0\r\n\r\n", "get a\r\nget b",
}

// FuzzTextDecoder feeds arbitrary input to the text decoder, split into
// reads of arbitrary sizes, with a small read buffer and value limit: it
// must not panic, must frame what a byte-at-a-time read of the input
// frames, which must be textModel's requests, and must keep its buffer
// within four times what it has buffered.
func FuzzTextDecoder(f *testing.F) {
	for i, s := range textSeeds {
		f.Add([]byte(s), []byte{byte(i), 3, 200, 1}, uint8(i), uint8(40+i))
	}
	f.Fuzz(func(t *testing.T, in, splits []byte, bufSize, maxValue uint8) {
		srv := &Server{ReadBufferSize: int(bufSize%64) + 1, TextMaxValueSize: int(maxValue%128) + 1}
		decode := func(sizes []int) textDecodeResult {
			return decodeTextRecorded(srv, in, sizes)
		}
		want, tooLong, mid := textModel(in, srv.TextMaxValueSize)
		one := decode([]int{1})
		if !reflect.DeepEqual(one.reqs, want) || errIsTooLong(one) != tooLong || one.midPacket != mid {
			t.Fatalf("one byte a read: %d requests, too long %v (%v), mid %v; the model: %d, %v, %v\n%v\n%v",
				len(one.reqs), errIsTooLong(one), one.err, one.midPacket, len(want), tooLong, mid, one.reqs, want)
		}
		var sizes []int
		for _, b := range splits {
			sizes = append(sizes, int(b)+1)
		}
		for _, r := range []textDecodeResult{decode(sizes), decode(nil)} {
			if r.err != nil && !errIsTooLong(r) {
				t.Fatalf("decoder error %v", r.err)
			}
			switch {
			case tooLong:
				if len(r.reqs) < len(want) || len(want) > 0 && !reflect.DeepEqual(r.reqs[:len(want)], want) {
					t.Fatalf("reads of %v: %d requests, not the %d of one byte a read first", sizes, len(r.reqs), len(want))
				}
			case !reflect.DeepEqual(r.reqs, want) || r.err != nil || r.midPacket != mid:
				t.Fatalf("reads of %v: %d requests, err %v, mid %v; one byte a read: %d, mid %v\n%v\n%v", sizes, len(r.reqs), r.err, r.midPacket, len(want), mid, r.reqs, want)
			}
			if r.maxBuf > max(srv.ReadBufferSize, 4*r.maxPend) {
				t.Fatalf("buffer of %d bytes for at most %d buffered", r.maxBuf, r.maxPend)
			}
		}
	})
}

func errIsTooLong(r textDecodeResult) bool { return r.err == ErrLineTooLong }

func decodeTextRecorded(srv *Server, in []byte, sizes []int) textDecodeResult {
	h := &textRecorder{}
	r := decodeText(srv, &chunkReader{in: in, sizes: sizes}, h)
	r.reqs = h.reqs
	return r
}
