package gocache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/mctext"
	"github.com/f8e615c8/gomemcached/sasl"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// The classic text protocol, answered as memcached 1.6.18's proto_text.c
// answers: the same token-count rules (its tokenizer keeps at most 23
// tokens and a terminal one, ntokens), the same noreply rules, the same
// error lines. Keys are the default collection's in vbucket 0, as a binary
// memcached client's are, so what one protocol stores the other reads
// the same. A get hit or a store allocates nothing: the answer's header is
// built on the stack and the value is queued from the item (WriteValue).

// Text answers, as memcached words them.
var (
	textStored      = []byte("STORED\r\n")
	textNotStored   = []byte("NOT_STORED\r\n")
	textExists      = []byte("EXISTS\r\n")
	textNotFound    = []byte("NOT_FOUND\r\n")
	textDeleted     = []byte("DELETED\r\n")
	textTouched     = []byte("TOUCHED\r\n")
	textOK          = []byte("OK\r\n")
	textEnd         = []byte("END\r\n")
	textReset       = []byte("RESET\r\n")
	errTextLine     = []byte("CLIENT_ERROR bad command line format\r\n")
	errTextChunk    = []byte("CLIENT_ERROR bad data chunk\r\n")
	errTextExptime  = []byte("CLIENT_ERROR invalid exptime argument\r\n")
	errTextDelta    = []byte("CLIENT_ERROR invalid numeric delta argument\r\n")
	errTextNumeric  = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	errTextLarge    = []byte("SERVER_ERROR object too large for cache\r\n")
	errTextNoMemory = []byte("SERVER_ERROR out of memory storing object\r\n")
	errTextArithMem = []byte("SERVER_ERROR out of memory\r\n")
	errTextDelete   = []byte("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")
	errTextNoFlush  = []byte("CLIENT_ERROR flush_all not allowed\r\n")
	errTextStatLine = []byte("CLIENT_ERROR bad command line\r\n")
	errTextUnauth   = []byte("CLIENT_ERROR unauthenticated\r\n")
	errTextAuthFail = []byte("CLIENT_ERROR authentication failure\r\n")
)

// errTextGetMemory answers a get over read_buf_mem_limit (textGet).
var errTextGetMemory = []byte("SERVER_ERROR out of memory writing get response\r\n")

// maxVerbosity is memcached's MAX_VERBOSITY_LEVEL.
const maxVerbosity = 2

// textItemHeader is what memcached's item_size_ok counts beyond key and
// value against -I: its 48-byte item header, the key's NUL, the value's
// "\r\n" and the 8-byte CAS; non-zero flags take 4 more.
const textItemHeader = 48 + 1 + 2 + 8

// ServeText serves memcached's text and meta protocols (a connection whose
// first byte is not a binary magic): meta commands (two letters, starting
// with 'm') in metatext.go, the rest in this file. With authentication
// required (memcached's -Y), a connection must first authenticate as
// memcached's ascii authentication does (textAuth).
func (h *handler) ServeText(w memcached.ResponseWriter, req *memcached.TextRequest) {
	if h.srv.cfg.RequireAuth && h.srv.cfg.Users != nil && state(w).user == nil {
		h.textAuth(w, req)
		return
	}
	if len(req.Fields) > 0 && len(req.Fields[0]) == 2 && req.Fields[0][0] == 'm' {
		h.serveMeta(w, req)
		return
	}
	h.serveTextCommand(w, req)
}

// textTokens is memcached's ntokens for a line split into fields: at most
// MaxTokens-1 tokens, and its terminal one.
func textTokens(fields [][]byte) int { return min(len(fields), mctext.MaxTokens-1) + 1 }

// noreply reports memcached's set_noreply_maybe: the last token it split
// is "noreply".
func noreply(fields [][]byte) bool {
	n := min(len(fields), mctext.MaxTokens-1)
	return n > 0 && string(fields[n-1]) == "noreply"
}

// textOut queues an answer line unless the command asked for no reply
// (memcached's out_string).
func textOut(w memcached.ResponseWriter, quiet bool, line []byte) {
	if !quiet {
		w.Write(line)
	}
}

// serveTextCommand serves the text protocol's commands.
func (h *handler) serveTextCommand(w memcached.ResponseWriter, req *memcached.TextRequest) {
	f := req.Fields
	n := textTokens(f)
	if n < 2 || len(f[0]) < 2 {
		w.Write(errText)
		return
	}
	// want is memcached's WANT_TOKENS_OR: a or b tokens (b < 0: at least
	// a, its WANT_TOKENS_MIN).
	want := func(a, b int) bool {
		ok := n == a || n == b || b < 0 && n >= a
		if !ok {
			w.Write(errText)
		}
		return ok
	}
	switch cmd := string(f[0]); cmd {
	case "get", "bget":
		if want(3, -1) {
			h.textGet(w, f, false, false)
		}
	case "gets":
		if want(3, -1) {
			h.textGet(w, f, true, false)
		}
	case "gat":
		if want(3, -1) {
			h.textGet(w, f, false, true)
		}
	case "gats":
		if want(3, -1) {
			h.textGet(w, f, true, true)
		}
	case "set":
		if want(6, 7) {
			h.textStore(w, req, cache.Set, false)
		}
	case "add":
		if want(6, 7) {
			h.textStore(w, req, cache.Add, false)
		}
	case "replace":
		if want(6, 7) {
			h.textStore(w, req, cache.Replace, false)
		}
	case "append":
		if want(6, 7) {
			h.textStore(w, req, cache.Append, false)
		}
	case "prepend":
		if want(6, 7) {
			h.textStore(w, req, cache.Prepend, false)
		}
	case "cas":
		if want(7, 8) {
			h.textStore(w, req, cache.Set, true)
		}
	case "delete":
		if n >= 3 && n <= 5 {
			h.textDelete(w, f, n)
		} else {
			w.Write(errText)
		}
	case "incr", "decr":
		if want(4, 5) {
			h.textArith(w, f, cmd == "incr")
		}
	case "touch":
		if want(4, 5) {
			h.textTouch(w, f)
		}
	case "flush_all":
		if n >= 2 && n <= 4 {
			h.textFlush(w, f, n)
		} else {
			w.Write(errText)
		}
	case "version":
		w.Write(append(append([]byte("VERSION "), h.srv.version...), "\r\n"...))
	case "quit":
		w.Close()
	case "verbosity":
		if want(3, 4) {
			h.textVerbosity(w, f)
		}
	case "stats":
		h.textStats(w, f, n)
	case "shutdown":
		h.textShutdown(w, f, n)
	case "cache_memlimit":
		if want(3, 4) {
			h.textMemlimit(w, f)
		}
	case "slabs":
		h.textSlabs(w, f, n)
	case "lru_crawler":
		h.lruCrawler(w, f, n)
	case "lru":
		if want(3, -1) {
			textLRU(w, f, n)
		}
	case "extstore":
		if want(3, -1) {
			textExtstore(w, f, n)
		}
	case "refresh_certs":
		// memcached reloads its certificates here; gocache's TLS
		// configuration is its embedder's (Config.TLS) and cannot be
		// reloaded: with TLS it is an unknown command.
		if h.srv.cfg.TLS == nil {
			w.Write([]byte("Error TLS not enabled\r\n"))
		} else {
			w.Write(errText)
		}
	case "watch":
		textOut(w, noreply(f), []byte("CLIENT_ERROR watch commands not allowed\r\n"))
	default:
		// memcached drops a connection that speaks HTTP to it.
		if last := f[n-2]; len(last) >= 5 && string(last[:5]) == "HTTP/" {
			w.Close()
			return
		}
		w.Write(errText)
	}
}

// textTarget is the bucket and collection text keys are in: the
// connection's bucket, its default collection, vbucket 0. It answers and
// returns false when there is none.
func (h *handler) textTarget(w memcached.ResponseWriter, quiet bool) (doc, bool) {
	d := doc{b: state(w).bucket}
	if d.b == nil {
		textOut(w, quiet, errMetaNoBucket)
		return d, false
	}
	c := d.b.manifest.Load().byID[0]
	if c == nil {
		textOut(w, quiet, errMetaNoBucket)
		return d, false
	}
	d.maxTTL = c.maxTTL
	return d, true
}

// textKey sets d.key to key as the store holds it (the default
// collection's), in the connection's key buffer.
func textKey(w memcached.ResponseWriter, d *doc, key []byte) {
	st := state(w)
	st.keyBuf[0] = 0
	n := copy(st.keyBuf[1:], key)
	d.key = st.keyBuf[:1+n]
}

// textExpiry converts a text exptime to the store's (see metaExpiry) with
// the collection's maximum TTL.
func textExpiry(d *doc, v int32) uint32 { return d.expiry(metaExpiry(v)) }

// textGet serves get, gets, gat and gats: one VALUE per hit, then END. A
// key over 250 bytes ends the command with an error in place of every
// answer of its line (memcached drops what it had queued for it), after
// the keys before it were looked up.
func (h *handler) textGet(w memcached.ResponseWriter, f [][]byte, withCAS, touch bool) {
	keys := f[1:]
	var exp uint32
	d, ok := h.textTarget(w, false)
	if !ok {
		return
	}
	if touch {
		v, ok := mctext.ParseInt32(f[1])
		if !ok {
			w.Write(errTextExptime)
			return
		}
		exp = textExpiry(&d, v)
		keys = f[2:]
	}
	bad := len(keys)
	for i, k := range keys {
		if len(k) > mctext.KeyMaxLength {
			bad = i
			break
		}
	}
	// memcached takes a response object per key (the command's own is
	// the first): over read_buf_mem_limit it answers an error instead,
	// here before any key is looked up.
	if !w.Reserve(min(bad, len(keys)-1)) {
		w.Write(errTextGetMemory)
		return
	}
	answer := bad == len(keys)
	detail := h.srv.detail()
	for _, k := range keys[:bad] {
		textKey(w, &d, k)
		var it cache.Item
		if touch {
			h.srv.cmdTouch.Add(1)
			var err error
			it, err = d.b.cache.Touch(0, d.key, exp, 0)
			ok = err == nil
		} else {
			it, ok = d.b.cache.Get(0, d.key)
		}
		detail.record(k, 'g', ok)
		if !ok || !answer {
			continue
		}
		value := docBody(&it)
		var buf [320]byte
		p := append(append(buf[:0], "VALUE "...), k...)
		p = strconv.AppendUint(append(p, ' '), uint64(it.Flags), 10)
		p = strconv.AppendUint(append(p, ' '), uint64(len(value)), 10)
		if withCAS {
			p = strconv.AppendUint(append(p, ' '), it.CAS, 10)
		}
		w.Write(append(p, "\r\n"...))
		w.WriteValue(value)
		w.Write(crlf)
	}
	if !answer {
		w.Write(errTextLine)
		return
	}
	w.Write(textEnd)
}

// textStore serves set, add, replace, append, prepend and cas (withCAS),
// whose data block the decoder has read (or skipped, for one too large).
func (h *handler) textStore(w memcached.ResponseWriter, req *memcached.TextRequest, mode cache.Mode, withCAS bool) {
	f := req.Fields
	quiet := noreply(f)
	if !req.HasData {
		// The line is one memcached refuses before reading a block: a
		// long key or a bad number (mctext.DataLen).
		textOut(w, quiet, errTextLine)
		return
	}
	// DataLen accepted these.
	flags, _ := mctext.ParseUint32(f[2])
	exptime, _ := mctext.ParseInt32(f[3])
	vlen, _ := mctext.ParseInt32(f[4])
	var cas uint64
	if withCAS {
		cas, _ = mctext.ParseUint64(f[5])
		if cas == 0 {
			// memcached's cas with 0 matches no item (the value is
			// never a CAS it handed out): missing is NOT_FOUND,
			// present EXISTS, as with any other mismatch.
			cas = ^uint64(0)
		}
	}
	d, ok := h.textTarget(w, quiet)
	if !ok {
		return
	}
	textKey(w, &d, f[1])
	h.srv.detail().record(f[1], 's', false)
	extra := 0
	if flags != 0 {
		extra = 4
	}
	if req.TooLarge || len(f[1])+int(vlen)+textItemHeader+extra > d.b.cache.MaxItemSize() {
		h.textTooLarge(w, &d, mode == cache.Set && !withCAS, quiet)
		return
	}
	if req.BadChunk {
		textOut(w, quiet, errTextChunk)
		return
	}
	wr := cache.Write{Value: req.Data, CAS: cas}
	if mode != cache.Append && mode != cache.Prepend {
		wr.Flags, wr.Expiry, wr.KeepXattrs = flags, textExpiry(&d, exptime), true
	}
	_, err := d.b.cache.Store(0, mode, d.key, wr)
	if err == nil && h.srv.cfg.DisableCAS && time.Now().Unix() <= h.srv.text.flushedSecond.Load() {
		d.b.cache.Delete(0, d.key, 0) // stored, and flushed with its second (textFlush)
	}
	switch {
	case err == nil:
		textOut(w, quiet, textStored)
	case errors.Is(err, cache.ErrTooLarge):
		textOut(w, quiet, errTextLarge)
	case errors.Is(err, cache.ErrNoMemory):
		textOut(w, quiet, errTextNoMemory)
	case withCAS && errors.Is(err, cache.ErrExists):
		textOut(w, quiet, textExists)
	case withCAS && errors.Is(err, cache.ErrNotFound):
		textOut(w, quiet, textNotFound)
	case errors.Is(err, cache.ErrExists), errors.Is(err, cache.ErrNotFound), errors.Is(err, cache.ErrNotStored):
		textOut(w, quiet, textNotStored)
	default:
		textOut(w, quiet, errMetaVBucket)
	}
}

// textTooLarge answers a value over the item size limit, counted in
// store_too_large. As memcached, a set (not a cas) that fails so removes
// the key's present value.
func (h *handler) textTooLarge(w memcached.ResponseWriter, d *doc, unlink, quiet bool) {
	h.srv.text.tooLarge.Add(1)
	if unlink {
		d.b.cache.Delete(0, d.key, 0)
	}
	textOut(w, quiet, errTextLarge)
}

func (h *handler) textDelete(w memcached.ResponseWriter, f [][]byte, n int) {
	quiet := false
	if n > 3 {
		zero := string(f[2]) == "0"
		quiet = noreply(f)
		if !(n == 4 && (zero || quiet) || n == 5 && zero && quiet) {
			textOut(w, quiet, errTextDelete)
			return
		}
	}
	if len(f[1]) > mctext.KeyMaxLength {
		textOut(w, quiet, errTextLine)
		return
	}
	d, ok := h.textTarget(w, quiet)
	if !ok {
		return
	}
	h.srv.detail().record(f[1], 'd', false)
	textKey(w, &d, f[1])
	_, err := d.b.cache.Delete(0, d.key, 0)
	switch {
	case err == nil:
		textOut(w, quiet, textDeleted)
	case errors.Is(err, cache.ErrNotFound):
		textOut(w, quiet, textNotFound)
	default:
		textOut(w, quiet, errMetaVBucket)
	}
}

func (h *handler) textArith(w memcached.ResponseWriter, f [][]byte, incr bool) {
	quiet := noreply(f)
	if len(f[1]) > mctext.KeyMaxLength {
		textOut(w, quiet, errTextLine)
		return
	}
	delta, ok := mctext.ParseUint64(f[2])
	if !ok {
		textOut(w, quiet, errTextDelta)
		return
	}
	d, ok := h.textTarget(w, quiet)
	if !ok {
		return
	}
	textKey(w, &d, f[1])
	var v uint64
	var err error
	if incr {
		v, _, err = d.b.cache.Incr(0, d.key, delta, 0, cache.NoCreate, 0)
	} else {
		v, _, err = d.b.cache.Decr(0, d.key, delta, 0, cache.NoCreate, 0)
	}
	switch {
	case err == nil:
		var buf [24]byte
		textOut(w, quiet, append(strconv.AppendUint(buf[:0], v, 10), "\r\n"...))
	case errors.Is(err, cache.ErrNonNumeric):
		textOut(w, quiet, errTextNumeric)
	case errors.Is(err, cache.ErrNoMemory), errors.Is(err, cache.ErrTooLarge):
		textOut(w, quiet, errTextArithMem)
	case errors.Is(err, cache.ErrNotFound):
		textOut(w, quiet, textNotFound)
	default:
		textOut(w, quiet, errMetaVBucket)
	}
}

func (h *handler) textTouch(w memcached.ResponseWriter, f [][]byte) {
	quiet := noreply(f)
	if len(f[1]) > mctext.KeyMaxLength {
		textOut(w, quiet, errTextLine)
		return
	}
	v, ok := mctext.ParseInt32(f[2])
	if !ok {
		textOut(w, quiet, errTextExptime)
		return
	}
	d, ok := h.textTarget(w, quiet)
	if !ok {
		return
	}
	textKey(w, &d, f[1])
	h.srv.cmdTouch.Add(1)
	_, err := d.b.cache.Touch(0, d.key, textExpiry(&d, v), 0)
	switch {
	case err == nil:
		textOut(w, quiet, textTouched)
	case errors.Is(err, cache.ErrNotFound):
		textOut(w, quiet, textNotFound)
	default:
		textOut(w, quiet, errMetaVBucket)
	}
}

func (h *handler) textFlush(w memcached.ResponseWriter, f [][]byte, n int) {
	quiet := noreply(f)
	h.srv.cmdFlush.Add(1)
	if h.srv.cfg.DisableFlush {
		textOut(w, quiet, errTextNoFlush)
		return
	}
	var exptime int32
	plain := 2
	if quiet {
		plain = 3
	}
	if n != plain {
		v, ok := mctext.ParseInt32(f[1])
		if !ok {
			textOut(w, quiet, errTextExptime)
			return
		}
		exptime = v
	}
	if b := state(w).bucket; b != nil {
		b.cache.Flush(uint32(max(exptime, 0)))
	}
	if h.srv.cfg.DisableCAS && exptime <= 0 {
		// Without CAS memcached's flush cliff is a whole second:
		// whatever is stored in the second of the flush is flushed too
		// (textStore).
		h.srv.text.flushedSecond.Store(time.Now().Unix())
	}
	textOut(w, quiet, textOK)
}

func (h *handler) textVerbosity(w memcached.ResponseWriter, f [][]byte) {
	quiet := noreply(f)
	v, ok := mctext.ParseUint32(f[1])
	if !ok {
		textOut(w, quiet, errTextLine)
		return
	}
	h.srv.verbosity.Store(min(v, maxVerbosity))
	textOut(w, quiet, textOK)
}

// textShutdown serves shutdown: refused unless Config.ShutdownCommand
// (memcached's -A); otherwise the connection closes and the server shuts
// down, at once or gracefully (both let connections finish what they
// sent: gocache's Shutdown).
func (h *handler) textShutdown(w memcached.ResponseWriter, f [][]byte, n int) {
	if !h.srv.cfg.ShutdownCommand {
		w.Write([]byte("ERROR: shutdown not enabled\r\n"))
		return
	}
	if n == 2 || n == 3 && string(f[1]) == "graceful" {
		w.Close()
		go h.srv.shutdownFromCommand()
		return
	}
	w.Write([]byte("CLIENT_ERROR invalid shutdown mode\r\n"))
}

// textMemlimit serves cache_memlimit. gocache's memory limit is fixed
// when its store is made, so a valid limit gets memcached's answer for one
// it cannot apply.
func (h *handler) textMemlimit(w memcached.ResponseWriter, f [][]byte) {
	quiet := noreply(f)
	v, ok := mctext.ParseUint32(f[1])
	switch {
	case !ok:
		textOut(w, quiet, errText)
	case v < 8:
		textOut(w, quiet, []byte("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"))
	case v > 1000000000:
		textOut(w, quiet, []byte("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"))
	default:
		textOut(w, quiet, []byte("MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"))
	}
}

// maxSlabClass bounds the class ids lru_crawler crawl takes
// (memcached's MAX_NUMBER_OF_SLAB_CLASSES-1).
const maxSlabClass = 63

// textSlabs serves slabs reassign and slabs automove. gocache moves no
// slab pages on request: a reassignment between two of its classes finds
// none spare;
// automove settings are accepted and have nothing to act on.
func (h *handler) textSlabs(w memcached.ResponseWriter, f [][]byte, n int) {
	switch {
	case n == 5 && string(f[1]) == "reassign":
		src, ok1 := mctext.ParseInt32(f[2])
		dst, ok2 := mctext.ParseInt32(f[3])
		largest := h.srv.largestClass(state(w).bucket)
		bad := func(c int32) bool { return c < 0 || int(c) > largest }
		switch {
		case !ok1 || !ok2:
			w.Write(errTextLine)
		case src == dst:
			w.Write([]byte("SAME src and dst class are identical\r\n"))
		case bad(src) || bad(dst):
			w.Write([]byte("BADCLASS invalid src or dst class id\r\n"))
		default:
			w.Write([]byte("NOSPARE source class has no spare pages\r\n"))
		}
	case n >= 4 && string(f[1]) == "automove":
		quiet := noreply(f)
		if string(f[2]) == "ratio" {
			if n < 5 {
				textOut(w, quiet, errText)
				return
			}
			if _, ok := parseDouble(f[3]); !ok {
				textOut(w, quiet, errText)
				return
			}
			textOut(w, quiet, textOK)
			return
		}
		v, ok := mctext.ParseUint32(f[2])
		switch {
		case !ok:
			textOut(w, quiet, errTextLine)
		case v > 2:
			textOut(w, quiet, errText)
		default:
			textOut(w, quiet, textOK)
		}
	default:
		w.Write(errText)
	}
}

// parseDouble is memcached's safe_strtod: a number, then the token's end
// or white space.
func parseDouble(tok []byte) (float64, bool) {
	end := len(tok)
	for i, c := range tok {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			end = i
			break
		}
	}
	if end == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(tok[:end]), 64)
	return v, err == nil
}

// textLRU serves lru tune, lru mode and lru temp_ttl: checked as memcached
// checks them, accepted; gocache's one LRU per shard has no segments to
// tune.
func textLRU(w memcached.ResponseWriter, f [][]byte, n int) {
	quiet := noreply(f)
	switch {
	case string(f[1]) == "tune" && n >= 7:
		hot, ok1 := mctext.ParseUint32(f[2])
		warm, ok2 := mctext.ParseUint32(f[3])
		hf, ok3 := parseDouble(f[4])
		wf, ok4 := parseDouble(f[5])
		switch {
		case !ok1 || !ok2 || !ok3 || !ok4:
			textOut(w, quiet, errText)
		case hot+warm > 80:
			textOut(w, quiet, []byte("ERROR hot and warm pcts must not exceed 80\r\n"))
		case wf <= 0 || hf <= 0:
			textOut(w, quiet, []byte("ERROR hot/warm age factors must be greater than 0\r\n"))
		default:
			textOut(w, quiet, textOK)
		}
	case string(f[1]) == "mode" && n >= 4:
		if m := string(f[2]); m == "flat" || m == "segmented" {
			textOut(w, quiet, textOK)
		} else {
			textOut(w, quiet, errText)
		}
	case string(f[1]) == "temp_ttl" && n >= 4:
		if _, ok := mctext.ParseInt32(f[2]); ok {
			textOut(w, quiet, textOK)
		} else {
			textOut(w, quiet, errText)
		}
	default:
		textOut(w, quiet, errText)
	}
}

// textExtstore serves extstore's tunables as memcached built with
// extstore checks them; gocache has no external storage for them to tune.
func textExtstore(w memcached.ResponseWriter, f [][]byte, n int) {
	quiet := noreply(f)
	ok := n >= 4
	if ok {
		switch string(f[1]) {
		case "free_memchunks":
			c, ok1 := mctext.ParseUint32(f[2])
			_, ok2 := mctext.ParseUint32(f[3])
			ok = n > 4 && ok1 && ok2 && c <= maxSlabClass
		case "item_size", "item_age", "low_ttl", "recache_rate", "compact_under", "drop_under",
			"max_sleep", "drop_unread":
			_, ok = mctext.ParseUint32(f[2])
		case "max_frag":
			_, ok = parseDouble(f[2])
		default:
			ok = false
		}
	}
	if ok {
		textOut(w, quiet, textOK)
	} else {
		textOut(w, quiet, errText)
	}
}

// textAuth serves a connection that has not authenticated, as memcached's
// ascii authentication (-Y) does: the only command is a set (key, flags
// and exptime ignored) whose data is "user password".
func (h *handler) textAuth(w memcached.ResponseWriter, req *memcached.TextRequest) {
	f := req.Fields
	if len(f) < 5 || string(f[0]) != "set" || !req.HasData {
		w.Write(errTextUnauth)
		return
	}
	if _, ok := mctext.ParseUint32(f[4]); !ok {
		w.Write(errTextUnauth)
		return
	}
	if req.BadChunk {
		w.Write([]byte("CLIENT_ERROR bad command line termination\r\n"))
		return
	}
	var cred [][]byte
	if !req.TooLarge {
		cred = mctext.Fields(make([][]byte, 0, 3), req.Data)
	}
	if len(cred) < 2 && !req.TooLarge {
		w.Write([]byte("CLIENT_ERROR bad authentication token format\r\n"))
		return
	}
	h.srv.authCmds.Add(1)
	st := state(w)
	var u *sasl.User
	if !req.TooLarge && len(cred[0]) <= sasl.MaxUsernameLen {
		msg := make([]byte, 0, 2+len(cred[0])+len(cred[1]))
		msg = append(append(append(append(msg, 0), cred[0]...), 0), cred[1]...)
		if sess, _, _, err := h.srv.cfg.Users.Start(sasl.Plain, msg); err == nil {
			u = sess.User()
		}
	}
	if u == nil {
		h.srv.authErrs.Add(1)
		st.failures++
		if st.failures > freeAttempts {
			w.Conn().Pause(min(maxPenalty, 100*time.Millisecond<<(st.failures-freeAttempts-1)))
		}
		w.Write(errTextAuthFail)
		return
	}
	st.user, st.failures = u, 0
	if st.bucket != nil && !u.MayUse(st.bucket.name) {
		st.bucket = nil
	}
	w.Write(textStored)
}

// shutdownFromCommand shuts the server down for a shutdown command,
// letting connections finish what they sent for up to 5 s.
func (s *Server) shutdownFromCommand() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
}

// textCounts are the counters only the text protocol moves.
type textCounts struct {
	detail detailStats
	// sizes: "stats sizes" is on (sizes_enable).
	sizes atomic.Bool
	// flushedSecond is the unix second of the last flush_all under
	// Config.DisableCAS (see textFlush).
	flushedSecond atomic.Int64
	// meta counts cmd_meta: memcached 1.6.18 counts each me that finds
	// its key or answers EN (countMeta).
	meta atomic.Uint64
	// tooLarge counts stores refused for size before the store saw them
	// (memcached's item_size_ok, which counts non-zero flags, or a block
	// over the decoder's limit): part of store_too_large.
	tooLarge atomic.Uint64
}

// connMemLimits turns memcached's read_buf_mem_limit (bytes; 0 for none)
// and worker count into the server's ResponseLimit and ReadBufferLimit.
// memcached splits the limit between its worker threads, each a pool of
// 16 KiB buffers (at least one), each buffer a connection's read buffer or
// a bundle of 13 response objects (MAX_RESP_PER_BUNDLE of a 64-bit
// build), one per answer queued unsent (a multi-key get takes one per
// key). Here a connection may queue the response objects of a worker's
// buffers but the one it reads into (at least one bundle's: memcached with
// a single buffer per thread refuses every command), and as many
// connections at once as the workers have buffers may hold input.
func connMemLimits(limit int64, threads int) (responses, readBuffers int) {
	if limit <= 0 {
		return 0, 0
	}
	const bufferSize, perBundle = 16 << 10, 13
	buffers := max(1, limit/int64(max(threads, 1))/bufferSize)
	return int(max(1, buffers-1) * perBundle), int(min(buffers*int64(max(threads, 1)), 1<<30))
}

// countMeta counts a meta command in cmd_meta.
func (s *Server) countMeta() { s.text.meta.Add(1) }

// detail returns the server's "stats detail" counters.
func (s *Server) detail() *detailStats { return &s.text.detail }

// detailStats are memcached's per-prefix statistics ("stats detail"):
// while enabled, gets, hits, sets and deletes of keys with a ':' are
// counted under the part of the key before it. At most maxPrefixes
// prefixes are kept (memcached keeps every one); the others go uncounted.
type detailStats struct {
	enabled atomic.Bool
	mu      sync.Mutex
	byName  map[string]*prefixCounts
}

const maxPrefixes = 10000

type prefixCounts struct{ gets, hits, sets, deletes uint64 }

// record counts an operation on key: 'g' a get (hit or not), 's' a set,
// 'd' a delete.
func (d *detailStats) record(key []byte, op byte, hit bool) {
	if !d.enabled.Load() {
		return
	}
	i := 0
	for i < len(key) && key[i] != ':' && key[i] != 0 {
		i++
	}
	if i == len(key) || key[i] != ':' {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	pc := d.byName[string(key[:i])]
	if pc == nil {
		if len(d.byName) >= maxPrefixes {
			return
		}
		if d.byName == nil {
			d.byName = map[string]*prefixCounts{}
		}
		pc = new(prefixCounts)
		d.byName[string(key[:i])] = pc
	}
	switch op {
	case 'g':
		pc.gets++
		if hit {
			pc.hits++
		}
	case 's':
		pc.sets++
	case 'd':
		pc.deletes++
	}
}

func (d *detailStats) reset() {
	d.mu.Lock()
	d.byName = nil
	d.mu.Unlock()
}

// dump appends memcached's dump of the counters to p: a PREFIX line per
// prefix, then END.
func (d *detailStats) dump(p []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.byName))
	for name := range d.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		pc := d.byName[name]
		p = append(append(p, "PREFIX "...), name...)
		p = strconv.AppendUint(append(p, " get "...), pc.gets, 10)
		p = strconv.AppendUint(append(p, " hit "...), pc.hits, 10)
		p = strconv.AppendUint(append(p, " set "...), pc.sets, 10)
		p = strconv.AppendUint(append(p, " del "...), pc.deletes, 10)
		p = append(p, "\r\n"...)
	}
	return append(p, textEnd...)
}

// detailCommand serves stats detail on, off and dump.
func (s *Server) detailCommand(w memcached.ResponseWriter, arg []byte) {
	d := s.detail()
	switch string(arg) {
	case "on":
		d.enabled.Store(true)
		w.Write(textOK)
	case "off":
		d.enabled.Store(false)
		w.Write(textOK)
	case "dump":
		w.Write(d.dump(nil))
	default:
		w.Write([]byte("CLIENT_ERROR usage: stats detail on|off|dump\r\n"))
	}
}
