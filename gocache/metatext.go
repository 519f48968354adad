package gocache

import (
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/mctext"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// The meta protocol (memcached 1.6.18's mg, ms, md, ma, mn, me), answered
// as memcached 1.6.18 answers, byte for byte, with one flag of newer
// memcacheds: E (1.6.27), the CAS a change gives its item. Its keys are the default
// collection's in vbucket 0, as a binary memcached client's are, so a
// value stored by one protocol reads the same by the other. The
// semantics that make meta worth having (the recache win token, stale
// items, vivify on miss, hit-before and last access) are the engine's:
// cache.Fetch, cache.Invalidate, cache.Arith, cache.Inspect.
//
// Answers are built in a buffer on the stack and queued with one Write (a
// value after its header, with WriteValue): nothing is allocated per
// command.

// Meta answer lines and errors, as memcached words them.
var (
	metaMN              = []byte("MN\r\n")
	metaEN              = []byte("EN\r\n")
	errMetaLine         = []byte("CLIENT_ERROR bad command line format\r\n")
	errMetaFlagsLong    = []byte("CLIENT_ERROR options flags too long\r\n")
	errMetaFlagsAreLong = []byte("CLIENT_ERROR options flags are too long\r\n")
	errMetaBadFlag      = []byte("CLIENT_ERROR invalid or duplicate flag\r\n")
	errMetaOpaque       = []byte("CLIENT_ERROR opaque token too long\r\n")
	errMetaMSMode       = []byte("CLIENT_ERROR invalid mode for ms M token\r\n")
	errMetaMAMode       = []byte("CLIENT_ERROR invalid mode for ma M token\r\n")
	errMetaBadChunk     = []byte("CLIENT_ERROR bad data chunk\r\n")
	errMetaNonNumeric   = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	errMetaTooLarge     = []byte("SERVER_ERROR object too large for cache\r\n")
	errMetaNoMemory     = []byte("SERVER_ERROR out of memory storing object\r\n")
	errMetaArithMemory  = []byte("SERVER_ERROR out of memory\r\n")
	errMetaNoBucket     = []byte("SERVER_ERROR no bucket\r\n")
	errMetaVBucket      = []byte("SERVER_ERROR vbucket is not active\r\n")
	errText             = []byte("ERROR\r\n")
)

// metaMaxOpaque is memcached's MFLAG_MAX_OPAQUE_LENGTH: an O token (with
// its 'O') longer than this is refused.
const metaMaxOpaque = 32

// metaLine is the room an answer line needs: a status, a base64 key and
// its " b", an opaque and every numeric flag.
const metaLine = 640

// metaFlags is a meta command's flags as memcached's _meta_flag_preparse
// reads them.
type metaFlags struct {
	noUpdate, vivify, value, stale, quiet, hasCAS, touch, recache, keyBinary bool
	mode                                                                     byte
	exp, vivExp, recExp                                                      uint32
	flags                                                                    uint32
	cas, delta, initial                                                      uint64
	// newCAS is E's: the CAS a change gives its item (memcached 1.6.27's
	// flag, which 1.6.18 refuses as invalid); 0 for none.
	newCAS uint64
	// key is the command's key, base64-decoded with b.
	key []byte
}

// metaExpiry converts an exptime as memcached's EXPTIME_TO_POSITIVE_TIME
// does: a negative one becomes a time already past.
func metaExpiry(v int32) uint32 {
	if v < 0 {
		return 30*24*3600 + 1 // an absolute time at the epoch's start: expired
	}
	return uint32(v)
}

// parseMetaFlags reads the flags fields[start:] of a command whose key is
// fields[1] into f, decoding a base64 key into buf. It returns the error
// line memcached answers for bad flags, or nil. Like memcached it stops at
// an unknown or repeated flag, and otherwise reads every flag, answering
// with the last error found.
func parseMetaFlags(f *metaFlags, fields [][]byte, start int, buf []byte) []byte {
	var seen [127]bool
	var errLine []byte
	bad := false
	f.key = fields[1]
	for _, tok := range fields[start:] {
		o := tok[0]
		if o >= 127 || seen[o] {
			return []byte("CLIENT_ERROR duplicate flag\r\n")
		}
		seen[o] = true
		arg := tok[1:]
		switch o {
		case 'b':
			n, ok := decodeBase64(buf, fields[1])
			if !ok {
				errLine, bad = []byte("CLIENT_ERROR error decoding key\r\n"), true
			}
			f.key, f.keyBinary = buf[:n], true
		case 'N', 'T', 'R':
			v, ok := mctext.ParseInt32(arg)
			if !ok {
				errLine, bad = []byte("CLIENT_ERROR bad token in command line format\r\n"), true
				break
			}
			switch o {
			case 'N':
				f.vivify, f.vivExp = true, metaExpiry(v)
			case 'T':
				f.touch, f.exp = true, metaExpiry(v)
			default:
				f.recache, f.recExp = true, metaExpiry(v)
			}
		case 'l', 'h', 'O', 'P', 'L', 'k', 's', 't', 'c', 'f':
		case 'v':
			f.value = true
		case 'u':
			f.noUpdate = true
		case 'q':
			f.quiet = true
		case 'F':
			v, ok := mctext.ParseUint32(arg)
			if !ok {
				bad = true
			}
			f.flags = v
		case 'C':
			v, ok := mctext.ParseUint64(arg)
			if !ok {
				errLine, bad = []byte("CLIENT_ERROR bad token in command line format\r\n"), true
				break
			}
			f.cas, f.hasCAS = v, true
		case 'E':
			v, ok := mctext.ParseUint64(arg)
			if !ok {
				errLine, bad = []byte("CLIENT_ERROR bad token in command line format\r\n"), true
				break
			}
			f.newCAS = v
		case 'M':
			if len(tok) != 2 {
				errLine, bad = []byte("CLIENT_ERROR incorrect length for M token\r\n"), true
				break
			}
			f.mode = tok[1]
		case 'J', 'D':
			v, ok := mctext.ParseUint64(arg)
			switch {
			case !ok && o == 'J':
				errLine, bad = []byte("CLIENT_ERROR invalid numeric initial value\r\n"), true
			case !ok:
				errLine, bad = []byte("CLIENT_ERROR invalid numeric delta value\r\n"), true
			case o == 'J':
				f.initial = v
			default:
				f.delta = v
			}
		case 'I':
			f.stale = true
		default:
			return []byte("CLIENT_ERROR invalid flag\r\n")
		}
	}
	if !bad {
		return nil
	}
	if errLine == nil {
		return errMetaLine
	}
	return errLine
}

// base64Values maps a byte to its base64 value, or 0x80 for a byte that
// is not one ('=' is 0).
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x80
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	t['='] = 0
	return t
}()

// decodeBase64 decodes src into dst as memcached decodes a meta key: bytes
// that are not base64 are skipped, what is left must be whole groups of
// four, and the first group with padding ends the key. It returns the
// length decoded; nothing decoded is a failure.
func decodeBase64(dst, src []byte) (int, bool) {
	count := 0
	for _, c := range src {
		if base64Values[c] != 0x80 {
			count++
		}
	}
	if count == 0 || count%4 != 0 || count/4*3 > len(dst) {
		return 0, false
	}
	n, k, pad := 0, 0, 0
	var group [4]byte
	for _, c := range src {
		v := base64Values[c]
		if v == 0x80 {
			continue
		}
		if c == '=' {
			pad++
		}
		group[k] = v
		k++
		if k < 4 {
			continue
		}
		k = 0
		dst[n] = group[0]<<2 | group[1]>>4
		dst[n+1] = group[1]<<4 | group[2]>>2
		dst[n+2] = group[2]<<6 | group[3]
		n += 3
		if pad > 0 {
			if pad > 2 {
				return 0, false
			}
			n -= pad
			break
		}
	}
	return n, n > 0
}

// appendMetaKey appends " k" and the key, base64 with " b" after it if it
// is binary.
func appendMetaKey(p, key []byte, binary bool) []byte {
	p = append(p, " k"...)
	if !binary {
		return append(p, key...)
	}
	p = base64.StdEncoding.AppendEncode(p, key)
	return append(p, " b"...)
}

// appendMetaFlag appends " " and the flag c with the number v.
func appendMetaFlag(p []byte, c byte, v uint64) []byte {
	return strconv.AppendUint(append(p, ' ', c), v, 10)
}

// appendTTL appends " t" and the seconds left before exp, -1 for never
// (memcached's rel_time arithmetic: a time past wraps as an unsigned
// 32-bit number).
func appendTTL(p []byte, exp time.Time, now time.Time) []byte {
	if exp.IsZero() {
		return append(p, " t-1"...)
	}
	return appendMetaFlag(p, 't', uint64(uint32(ttlSeconds(exp, now))))
}

// ttlSeconds is the whole seconds from now to exp, rounded up: an item
// stored with T30 has 30 left.
func ttlSeconds(exp, now time.Time) int64 {
	d := exp.Sub(now)
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return s
}

// metaTarget resolves a meta command's key: the connection's bucket, its
// vbucket 0 and the key as stored (the default collection's). It answers
// and returns false when there is none.
func (h *handler) metaTarget(w memcached.ResponseWriter, key []byte) (doc, bool) {
	st := state(w)
	d := doc{b: st.bucket}
	if d.b == nil {
		w.Write(errMetaNoBucket)
		return d, false
	}
	if d.b.cache.State(0) != cache.Active {
		w.Write(errMetaVBucket)
		return d, false
	}
	c := d.b.manifest.Load().byID[0]
	if c == nil {
		w.Write(errMetaNoBucket)
		return d, false
	}
	d.maxTTL = c.maxTTL
	// The key may be st.keyBuf[1:] already (decoded there): copy
	// forwards is safe, as copy handles overlap.
	n := copy(st.keyBuf[1:], key)
	st.keyBuf[0] = 0
	d.key = st.keyBuf[:1+n]
	return d, true
}

// metaKeyBuf is where a base64 key is decoded: the connection's key
// buffer past the collection byte, which metaTarget fills in place.
func metaKeyBuf(w memcached.ResponseWriter) []byte { return state(w).keyBuf[1:] }

// metaTokens is memcached's ntokens for fields: the tokens, at most
// MaxTokens-1, and its terminal one.
func metaTokens(fields [][]byte) int { return min(len(fields), mctext.MaxTokens-1) + 1 }

// serveMeta serves the meta protocol's commands: mg, ms, md, ma, mn, me.
func (h *handler) serveMeta(w memcached.ResponseWriter, req *memcached.TextRequest) {
	switch req.Fields[0][1] {
	case 'g':
		h.metaGet(w, req.Fields)
	case 's':
		h.metaSet(w, req)
	case 'd':
		h.metaDelete(w, req.Fields)
	case 'a':
		h.metaArith(w, req.Fields)
	case 'n':
		w.Write(metaMN)
	case 'e':
		h.metaDebug(w, req.Fields)
	default:
		w.Write(errText)
	}
}

// metaCheck makes the checks every meta command but me makes before its
// flags: a key, of at most 250 bytes, and at most 20 tokens.
func metaCheck(w memcached.ResponseWriter, fields [][]byte, tooLong []byte) bool {
	switch {
	case len(fields) < 2:
		w.Write(errText)
	case len(fields[1]) > mctext.KeyMaxLength:
		w.Write(errMetaLine)
	case metaTokens(fields) > mctext.MetaMaxOptLength:
		w.Write(tooLong)
	default:
		return true
	}
	return false
}

// metaReturned appends what a command returns of its O and k flags, in
// their order; it returns false for an opaque over memcached's limit.
func metaReturned(p []byte, fields [][]byte, start int, key []byte, binary bool) ([]byte, bool) {
	for _, tok := range fields[start:] {
		switch tok[0] {
		case 'O':
			if len(tok) > metaMaxOpaque {
				return p, false
			}
			p = append(append(p, ' '), tok...)
		case 'k':
			p = appendMetaKey(p, key, binary)
		}
	}
	return p, true
}

func (h *handler) metaGet(w memcached.ResponseWriter, fields [][]byte) {
	if !metaCheck(w, fields, errMetaFlagsAreLong) {
		return
	}
	var f metaFlags
	if e := parseMetaFlags(&f, fields, 2, metaKeyBuf(w)); e != nil {
		w.Write(e)
		return
	}
	d, ok := h.metaTarget(w, f.key)
	if !ok {
		return
	}
	if at := longOpaque(fields, 2); at >= 0 {
		h.metaGetLongOpaque(w, d, &f, fields[2:], at)
		return
	}
	o := cache.FetchOptions{NoBump: f.noUpdate, Recache: f.recache, RecacheExpiry: f.recExp, NewCAS: f.newCAS}
	// What a T or N sets is seen by the flags after it on the line.
	tAt, nAt, rAt := -1, -1, -1
	for i, tok := range fields[2:] {
		switch tok[0] {
		case 'T':
			tAt = i
		case 'N':
			nAt = i
		case 'R':
			rAt = i
		}
	}
	if f.touch {
		o.Touch, o.Expiry = true, d.expiry(f.exp)
		o.RecacheAfterTouch = tAt < rAt
		h.srv.cmdTouch.Add(1)
	}
	if f.vivify {
		o.Vivify, o.VivifyExpiry = true, d.expiry(f.vivExp)
		if f.touch && tAt > nAt {
			o.VivifyExpiry = o.Expiry
		}
	}
	it, found, err := d.b.cache.Fetch(d.vb, d.key, &o)
	if err != nil && errors.Is(err, cache.ErrNoVBucket) {
		w.Write(errMetaVBucket)
		return
	}
	var buf [metaLine]byte
	p := buf[:0]
	key := d.key[1:]
	if !found {
		if f.quiet {
			return
		}
		p = append(p, "EN"...)
		p, _ = metaReturned(p, fields, 2, key, f.keyBinary)
		w.Write(append(p, "\r\n"...))
		return
	}
	if f.value {
		p = strconv.AppendUint(append(p, "VA "...), uint64(len(it.Value)), 10)
	} else {
		p = append(p, "HD"...)
	}
	now := it.At
	set := false // a T, or the N that made the item, came before
	for _, tok := range fields[2:] {
		switch tok[0] {
		case 'T':
			set = true
		case 'N':
			set = set || it.Vivified
		case 's':
			p = appendMetaFlag(p, 's', uint64(len(it.Value)))
		case 't':
			exp := it.ExpiresBefore
			if set {
				exp = it.Expires
			}
			p = appendTTL(p, exp, now)
		case 'c':
			p = appendMetaFlag(p, 'c', it.CAS)
		case 'f':
			p = appendMetaFlag(p, 'f', uint64(it.Flags))
		case 'l':
			p = appendMetaFlag(p, 'l', uint64(uint32(now.Unix()-it.LastAccess.Unix())))
		case 'h':
			if it.Hit {
				p = append(p, " h1"...)
			} else {
				p = append(p, " h0"...)
			}
		case 'O':
			p = append(append(p, ' '), tok...)
		case 'k':
			p = appendMetaKey(p, key, it.BinaryKey)
		}
	}
	if it.TokenSent {
		p = append(p, " Z"...)
	}
	if it.Stale {
		p = append(p, " X"...)
	}
	if it.Won {
		p = append(p, " W"...)
	}
	w.Write(append(p, "\r\n"...))
	if f.value {
		w.WriteValue(it.Value)
		w.Write(crlf)
	}
}

// longOpaque returns the index in fields[start:] of the first O token
// over memcached's limit, or -1.
func longOpaque(fields [][]byte, start int) int {
	for i, tok := range fields[start:] {
		if tok[0] == 'O' && len(tok) > metaMaxOpaque {
			return i
		}
	}
	return -1
}

// metaGetLongOpaque answers an mg whose flags tokens hold, at index at, an
// opaque over the limit. memcached finds that out only while it writes
// the answer, after it fetched (and maybe created) the item and applied
// the flags before that token: a vivified item exists (expiring as an N
// before the token says, else never) but no one holds its win token, a T
// before the token is applied, and no win is handed out.
func (h *handler) metaGetLongOpaque(w memcached.ResponseWriter, d doc, f *metaFlags, flags [][]byte, at int) {
	o := cache.FetchOptions{NoBump: f.noUpdate, NoToken: true, NewCAS: f.newCAS}
	for _, tok := range flags {
		switch tok[0] {
		case 'N', 'T', 'R', 'l', 'h':
			o.NoBump = true // memcached bumps such a fetch after answering, which the error skips
		}
	}
	o.VivifyExpiry = d.expiry(0)
	for _, tok := range flags[:at] {
		switch tok[0] {
		case 'T': // on a created item too
			o.Touch, o.Expiry, o.VivifyExpiry = true, d.expiry(f.exp), d.expiry(f.exp)
		case 'N':
			o.VivifyExpiry = d.expiry(f.vivExp)
		}
	}
	o.Vivify = f.vivify
	if _, _, err := d.b.cache.Fetch(d.vb, d.key, &o); err != nil && errors.Is(err, cache.ErrNoVBucket) {
		w.Write(errMetaVBucket)
		return
	}
	w.Write(errMetaOpaque)
}

// crlf ends a value.
var crlf = []byte("\r\n")

func (h *handler) metaSet(w memcached.ResponseWriter, req *memcached.TextRequest) {
	fields := req.Fields
	switch {
	case !metaCheck(w, fields, errMetaFlagsLong):
		return
	case len(fields) == 2 || !req.HasData:
		w.Write(errMetaLine)
		return
	}
	// From here on the data block is read (and, after an error,
	// swallowed) by the decoder.
	var f metaFlags
	if e := parseMetaFlags(&f, fields, 3, metaKeyBuf(w)); e != nil {
		w.Write(e)
		return
	}
	mode := cache.Set
	switch f.mode {
	case 0, 'S':
	case 'E':
		mode = cache.Add
	case 'A':
		mode = cache.Append
	case 'P':
		mode = cache.Prepend
	case 'R':
		mode = cache.Replace
	default:
		w.Write(errMetaMSMode)
		return
	}
	for _, tok := range fields[3:] {
		if tok[0] == 'O' && len(tok) > metaMaxOpaque {
			w.Write(errMetaOpaque)
			return
		}
	}
	// As memcached: a CAS makes Set and Replace a compare-and-swap (a
	// miss is NF), Add ignores it, Append and Prepend check it when the
	// key is present.
	casMode := f.hasCAS && (mode == cache.Set || mode == cache.Replace)
	d, ok := h.metaTarget(w, f.key)
	if !ok {
		return
	}
	if req.TooLarge {
		h.metaTooLarge(w, d)
		return
	}
	if req.BadChunk {
		w.Write(errMetaBadChunk)
		return
	}
	if casMode && f.cas == 0 {
		// C0 matches no item (the engine reads a CAS of 0 as none).
		h.metaNoMatch(w, d, fields, 3, f.keyBinary, "NF")
		return
	}
	wr := cache.Write{Value: req.Data, Flags: f.flags, Expiry: d.expiry(f.exp), BinaryKey: f.keyBinary, NewCAS: f.newCAS}
	if mode != cache.Add {
		wr.CAS = f.cas
	}
	if casMode {
		mode = cache.Set
		wr.Invalidate = f.stale
	}
	wr.KeepXattrs = mode != cache.Append && mode != cache.Prepend
	m, err := d.b.cache.Store(d.vb, mode, d.key, wr)
	var buf [metaLine]byte
	p := buf[:0]
	var cas uint64
	switch {
	case err == nil:
		if f.quiet {
			return
		}
		p, cas = append(p, "HD"...), m.CAS
	case errors.Is(err, cache.ErrExists) && mode == cache.Add:
		p = append(p, "NS"...)
	case errors.Is(err, cache.ErrExists):
		p = append(p, "EX"...)
	case errors.Is(err, cache.ErrNotFound) && casMode:
		p = append(p, "NF"...)
	case errors.Is(err, cache.ErrNotFound), errors.Is(err, cache.ErrNotStored):
		p = append(p, "NS"...)
	case errors.Is(err, cache.ErrTooLarge):
		h.metaTooLarge(w, d)
		return
	case errors.Is(err, cache.ErrNoMemory):
		w.Write(errMetaNoMemory)
		return
	default:
		w.Write(errMetaVBucket)
		return
	}
	for _, tok := range fields[3:] {
		switch tok[0] {
		case 'O':
			p = append(append(p, ' '), tok...)
		case 'k':
			p = appendMetaKey(p, d.key[1:], f.keyBinary)
		case 'c':
			p = appendMetaFlag(p, 'c', cas)
		}
	}
	w.Write(append(p, "\r\n"...))
}

// metaNoMatch answers a compare-and-swap with C0, which no item matches:
// EX if the key has an item, else miss (NF), with the command's O and k
// (and, for ms, its c: 0).
func (h *handler) metaNoMatch(w memcached.ResponseWriter, d doc, fields [][]byte, start int, binary bool, miss string) {
	var buf [metaLine]byte
	p := append(buf[:0], miss...)
	if _, ok := d.b.cache.Lookup(d.vb, d.key, false); ok {
		p = append(buf[:0], "EX"...)
	}
	for _, tok := range fields[start:] {
		switch tok[0] {
		case 'O':
			p = append(append(p, ' '), tok...)
		case 'k':
			p = appendMetaKey(p, d.key[1:], binary)
		case 'c':
			if start == 3 {
				p = append(p, " c0"...)
			}
		}
	}
	w.Write(append(p, "\r\n"...))
}

// metaTooLarge answers a value over the item size limit and, as memcached
// does whatever the mode, removes the key's present value.
func (h *handler) metaTooLarge(w memcached.ResponseWriter, d doc) {
	d.b.cache.Delete(d.vb, d.key, 0)
	w.Write(errMetaTooLarge)
}

func (h *handler) metaDelete(w memcached.ResponseWriter, fields [][]byte) {
	if !metaCheck(w, fields, errMetaFlagsLong) {
		return
	}
	var f metaFlags
	if parseMetaFlags(&f, fields, 2, metaKeyBuf(w)) != nil {
		w.Write(errMetaBadFlag)
		return
	}
	var buf [metaLine]byte
	p := append(buf[:0], "HD"...)
	p, ok := metaReturned(p, fields, 2, f.key, f.keyBinary)
	if !ok {
		w.Write(errMetaOpaque)
		return
	}
	d, ok := h.metaTarget(w, f.key)
	if !ok {
		return
	}
	if f.hasCAS && f.cas == 0 {
		h.metaNoMatch(w, d, fields, 2, f.keyBinary, "NF")
		return
	}
	var err error
	if f.stale {
		_, err = d.b.cache.Invalidate(d.vb, d.key, f.cas, f.newCAS, f.touch, d.expiry(f.exp))
	} else {
		_, err = d.b.cache.Delete(d.vb, d.key, f.cas)
	}
	switch {
	case err == nil && f.quiet:
		return
	case err == nil:
	case errors.Is(err, cache.ErrExists):
		copy(p, "EX")
	case errors.Is(err, cache.ErrNotFound):
		copy(p, "NF")
	case errors.Is(err, cache.ErrNoMemory):
		w.Write(errMetaNoMemory)
		return
	default:
		w.Write(errMetaVBucket)
		return
	}
	w.Write(append(p, "\r\n"...))
}

func (h *handler) metaArith(w memcached.ResponseWriter, fields [][]byte) {
	if !metaCheck(w, fields, errMetaFlagsLong) {
		return
	}
	f := metaFlags{delta: 1}
	if parseMetaFlags(&f, fields, 2, metaKeyBuf(w)) != nil {
		w.Write(errMetaBadFlag)
		return
	}
	o := cache.ArithOptions{Delta: f.delta, Initial: f.initial, CAS: f.cas, BinaryKey: f.keyBinary, NewCAS: f.newCAS}
	switch f.mode {
	case 0, 'I', '+':
	case 'D', '-':
		o.Decr = true
	default:
		w.Write(errMetaMAMode)
		return
	}
	d, ok := h.metaTarget(w, f.key)
	if !ok {
		return
	}
	// memcached applies T and N while it writes the answer, in their
	// order on the line: T to the item (present or created), N to a
	// created one (which otherwise never expires), and finds an opaque
	// over the limit only then, after the change, stopping there.
	flags := fields[2:]
	at := longOpaque(fields, 2)
	if at >= 0 {
		flags = flags[:at]
	}
	o.Vivify, o.VivifyExpiry = f.vivify, d.expiry(0)
	for _, tok := range flags {
		switch tok[0] {
		case 'T':
			o.Touch, o.Expiry, o.VivifyExpiry = true, d.expiry(f.exp), d.expiry(f.exp)
		case 'N':
			o.VivifyExpiry = d.expiry(f.vivExp)
		}
	}
	r, err := d.b.cache.Arith(d.vb, d.key, &o)
	var buf [metaLine]byte
	p := buf[:0]
	switch {
	case errors.Is(err, cache.ErrNonNumeric):
		w.Write(errMetaNonNumeric)
		return
	case errors.Is(err, cache.ErrNoMemory), errors.Is(err, cache.ErrTooLarge):
		w.Write(errMetaArithMemory)
		return
	case at >= 0:
		w.Write(errMetaOpaque)
		return
	case err == nil:
	case errors.Is(err, cache.ErrNotFound):
		p = append(p, "NF"...)
	case errors.Is(err, cache.ErrExists):
		p = append(p, "EX"...)
	default:
		w.Write(errMetaVBucket)
		return
	}
	if err != nil {
		p, _ = metaReturned(p, fields, 2, f.key, f.keyBinary)
		w.Write(append(p, "\r\n"...))
		return
	}
	if f.quiet && !r.Created {
		return
	}
	var num [20]byte
	digits := strconv.AppendUint(num[:0], r.Value, 10)
	if f.value {
		p = strconv.AppendUint(append(p, "VA "...), uint64(len(digits)), 10)
	} else {
		p = append(p, "HD"...)
	}
	now := r.At
	exp := r.ExpiresBefore // what a t before any T or N sees
	for _, tok := range fields[2:] {
		switch tok[0] {
		case 'c':
			p = appendMetaFlag(p, 'c', r.CAS)
		case 't':
			p = appendTTL(p, exp, now)
		case 'T', 'N':
			if tok[0] == 'T' || r.Created {
				exp = r.Expires
			}
		case 'O':
			p = append(append(p, ' '), tok...)
		case 'k':
			p = appendMetaKey(p, f.key, f.keyBinary)
		}
	}
	p = append(p, "\r\n"...)
	if f.value {
		p = append(append(p, digits...), "\r\n"...)
	}
	w.Write(p)
}

// metaDebug serves me: an item's details, as far as gocache has them:
// expiry (memcached's sign: negative for the seconds left, -1 never),
// seconds since last access, CAS, whether fetched, the allocation class
// and the bytes it counts against the memory limit.
func (h *handler) metaDebug(w memcached.ResponseWriter, fields [][]byte) {
	if len(fields) < 2 || len(fields[1]) > mctext.KeyMaxLength {
		w.Write(errMetaLine)
		return
	}
	key := fields[1]
	if len(fields) >= 3 && len(fields[2]) == 1 && fields[2][0] == 'b' {
		buf := metaKeyBuf(w)
		n, ok := decodeBase64(buf, key)
		if !ok {
			w.Write(errMetaLine)
			return
		}
		key = buf[:n]
	}
	d, ok := h.metaTarget(w, key)
	if !ok {
		return
	}
	it, found := d.b.cache.Inspect(d.vb, d.key)
	if !found {
		w.Write(metaEN)
		return
	}
	var buf [metaLine]byte
	p := append(buf[:0], "ME "...)
	if it.BinaryKey {
		p = base64.StdEncoding.AppendEncode(p, d.key[1:])
	} else {
		p = append(p, d.key[1:]...)
	}
	now := it.At
	p = append(p, " exp="...)
	if it.Expires.IsZero() {
		p = append(p, "-1"...)
	} else {
		p = strconv.AppendInt(p, int64(int32(-ttlSeconds(it.Expires, now))), 10)
	}
	p = strconv.AppendUint(append(p, " la="...), uint64(uint32(now.Unix()-it.LastAccess.Unix())), 10)
	p = strconv.AppendUint(append(p, " cas="...), it.CAS, 10)
	if it.Hit {
		p = append(p, " fetch=yes"...)
	} else {
		p = append(p, " fetch=no"...)
	}
	p = strconv.AppendUint(append(p, " cls="...), uint64(it.Class), 10)
	p = strconv.AppendUint(append(p, " size="...), uint64(it.Bytes), 10)
	w.Write(append(p, "\r\n"...))
}
