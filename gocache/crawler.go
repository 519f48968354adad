package gocache

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/mctext"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// memcached's LRU crawler, as 1.6.18's lru_crawler command drives it
// (proto_text.c, crawler.c). One crawl runs at a time per server, in the
// background: "lru_crawler crawl" reclaims the expired items of the
// classes it names, in every bucket, and returns at once; "lru_crawler
// metadump" lists the live items of the connection's bucket, one line
// each, and ends with END. Both walk the engine a batch at a time
// (cache.Crawler), never holding a shard's lock while writing or
// sleeping, and a metadump holds at most a batch and the connection's
// send queue, whatever the cache holds.
//
// An item's class is the slab class memcached would store it in, by its
// size (slabClass over the item's size as memcached counts it): that is
// the class a crawl of given classes picks items by and the one a
// metadump shows. The statistics report every item in one class
// (itemClass), and the crawler's counters in that class too.
//
// The crawler is on when Config.Settings has lru_crawler "yes" (cmd/gocache
// sets it as memcached's flags do: on, but with -o no_modern or
// no_lru_crawler), and "lru_crawler enable" and "disable" turn it on and
// off. What the cache's sweeper reclaims in the background is not the
// crawler's (cmd/gocache leaves the sweeper off while the crawler is off
// at start, as memcached reclaims nothing unasked then). As memcached's,
// what a crawl reclaims counts in crawler_reclaimed and expired_unfetched,
// not in reclaimed.
//
// One difference: under an event loop, a command pipelined after a
// metadump of more than a chunk (dumpChunk) in the same write is
// answered when it is read, before the dump has all been sent (memcached
// answers it after END); the server cannot yet hold a connection's input
// while its send queue drains.

// crawlerState is a Server's LRU crawler.
type crawlerState struct {
	enabled atomic.Bool   // memcached's settings.lru_crawler
	running atomic.Bool   // a crawl or metadump is under way (lru_crawler_running)
	starts  atomic.Uint64 // lru_crawler_starts
	sleep   atomic.Uint32 // lru_crawler_sleep: microseconds between batches of crawlBatch
	tocrawl atomic.Uint32 // lru_crawler_tocrawl: items checked per class per crawl, 0 all

	mu     sync.Mutex
	counts map[*bucket]*crawlCounts
}

// crawlCounts are a bucket's crawler statistics.
type crawlCounts struct {
	reclaimed [maxSlabClass + 1]atomic.Uint64 // crawler_reclaimed, by class
	checked   [maxSlabClass + 1]atomic.Uint64 // crawler_items_checked, by class
}

// crawlBatch is how many items a crawl visits under one shard lock;
// memcached's crawler sleeps lru_crawler_sleep every 1000 (its
// crawls_persleep).
const crawlBatch = 1000

// crawler returns the server's LRU crawler, set up from Config.Settings
// the first time.
func (s *Server) crawler() *crawlerState {
	s.crawlOnce.Do(func() {
		c := &crawlerState{counts: map[*bucket]*crawlCounts{}}
		c.enabled.Store(s.setting("lru_crawler", "no") == "yes")
		sleep, err := strconv.ParseUint(s.setting("lru_crawler_sleep", "100"), 10, 32)
		if err != nil {
			sleep = 100
		}
		c.sleep.Store(uint32(sleep))
		tocrawl, _ := strconv.ParseUint(s.setting("lru_crawler_tocrawl", "0"), 10, 32)
		c.tocrawl.Store(uint32(tocrawl))
		s.crawl = c
	})
	return s.crawl
}

// countsFor returns b's crawler statistics.
func (c *crawlerState) countsFor(b *bucket) *crawlCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.counts[b]
	if n == nil {
		n = new(crawlCounts)
		c.counts[b] = n
	}
	return n
}

// crawlStats returns b's crawler_reclaimed and crawler_items_checked (0
// for no bucket).
func (s *Server) crawlStats(b *bucket) (reclaimed, checked uint64) {
	if b == nil {
		return 0, 0
	}
	n := s.crawler().countsFor(b)
	for i := range n.reclaimed {
		reclaimed += n.reclaimed[i].Load()
		checked += n.checked[i].Load()
	}
	return reclaimed, checked
}

// crawlClassStats is crawlStats for slab class id.
func (s *Server) crawlClassStats(b *bucket, id int) (reclaimed, checked uint64) {
	if b == nil || id < 0 || id > maxSlabClass {
		return 0, 0
	}
	n := s.crawler().countsFor(b)
	return n.reclaimed[id].Load(), n.checked[id].Load()
}

// Answers of lru_crawler, as memcached words them.
var (
	textCrawlerOff     = []byte("CLIENT_ERROR lru crawler disabled\r\n")
	textCrawlerBusy    = []byte("BUSY currently processing crawler request\r\n")
	textCrawlerBadID   = []byte("BADCLASS invalid class id\r\n")
	textCrawlerNone    = []byte("NOTSTARTED no items to crawl\r\n")
	textCrawlerUnknown = []byte("ERROR an unknown error happened\r\n")
	textCrawlerNoDump  = []byte("ERROR metadump not allowed\r\n")
	textCrawlerPiped   = []byte("ERROR cannot pipeline other commands before metadump\r\n")
	textCrawlerStart   = []byte("ERROR failed to start lru crawler thread\r\n")
	textCrawlerSleep   = []byte("CLIENT_ERROR sleep must be one second or less\r\n")
)

// lruCrawler serves the lru_crawler command, with memcached's token
// counts (n counts the terminal token).
func (h *handler) lruCrawler(w memcached.ResponseWriter, f [][]byte, n int) {
	s := h.srv
	cr := s.crawler()
	switch {
	case n == 4 && string(f[1]) == "crawl":
		if !cr.enabled.Load() {
			w.Write(textCrawlerOff)
			return
		}
		classes, res := crawlTargets(f[2], false)
		if res != nil {
			w.Write(res)
			return
		}
		if !cr.start(w) {
			return
		}
		go s.crawlExpired(cr, classes)
		w.Write(textOK)
	case n == 4 && string(f[1]) == "metadump":
		if !cr.enabled.Load() {
			w.Write(textCrawlerOff)
			return
		}
		if s.setting("dump_enabled", "yes") != "yes" {
			w.Write(textCrawlerNoDump)
			return
		}
		if pending(w) {
			w.Write(textCrawlerPiped)
			return
		}
		classes, res := crawlTargets(f[2], true)
		if res != nil {
			w.Write(res)
			return
		}
		if !cr.start(w) {
			return
		}
		s.metadump(w, cr, state(w).bucket, classes)
	case n == 4 && string(f[1]) == "tocrawl":
		v, ok := mctext.ParseUint32(f[2])
		if !ok {
			w.Write(errTextLine)
			return
		}
		cr.tocrawl.Store(v)
		w.Write(textOK)
	case n == 4 && string(f[1]) == "sleep":
		v, ok := mctext.ParseUint32(f[2])
		switch {
		case !ok:
			w.Write(errTextLine)
		case v > 1000000:
			w.Write(textCrawlerSleep)
		default:
			cr.sleep.Store(v)
			w.Write(textOK)
		}
	case n == 3 && string(f[1]) == "enable":
		if cr.enabled.CompareAndSwap(false, true) {
			w.Write(textOK)
		} else {
			w.Write(textCrawlerStart)
		}
	case n == 3 && string(f[1]) == "disable":
		// A crawl under way finishes; none starts until enabled again.
		cr.enabled.Store(false)
		w.Write(textOK)
	default:
		w.Write(errText)
	}
}

// start marks a crawl or metadump as running and counts it
// (lru_crawler_starts), or answers BUSY to w if one already is.
func (c *crawlerState) start(w memcached.ResponseWriter) bool {
	if !c.running.CompareAndSwap(false, true) {
		w.Write(textCrawlerBusy)
		return false
	}
	c.starts.Add(1)
	return true
}

// pending reports that answers to earlier commands of the connection are
// queued and not yet sent: memcached refuses a metadump behind them.
func pending(w memcached.ResponseWriter) bool { return w.Buffered() > 0 }

// crawlSet is a set of slab classes; nil is every item, walked as
// memcached walks its hash table ("hash"), whose items it does not count
// as checked.
type crawlSet *[maxSlabClass + 1]bool

// crawlTargets reads the classes of a crawl or metadump as memcached's
// lru_crawler_crawl does: "all", "hash" (a hash table walk, only for a
// metadump), or class ids 1 to 63 separated by commas (empty ones
// skipped). It returns the answer to send instead when they are not
// right.
func crawlTargets(arg []byte, dump bool) (crawlSet, []byte) {
	set := new([maxSlabClass + 1]bool)
	switch string(arg) {
	case "all":
		for i := range set {
			set[i] = true
		}
		return set, nil
	case "hash":
		if !dump {
			return nil, textCrawlerUnknown
		}
		return nil, nil
	}
	any := false
	for len(arg) > 0 {
		i := 0
		for i < len(arg) && arg[i] != ',' {
			i++
		}
		if i > 0 {
			v, ok := mctext.ParseUint32(arg[:i])
			if !ok || v < 1 || v > maxSlabClass {
				return nil, textCrawlerBadID
			}
			set[v], any = true, true
		}
		if i == len(arg) {
			break
		}
		arg = arg[i+1:]
	}
	if !any {
		return nil, textCrawlerNone
	}
	return set, nil
}

// itemSize is an item's size as memcached counts it (its ntotal): key,
// value and textItemHeader, 4 more with flags.
// itemClassID is the slab class of it in b: its engine's (memcached's for
// the same key, value and flags).
func itemClassID(b *bucket, it *cache.CrawlItem) int {
	return b.cache.SlabClassOfKey(it.Key, it.ValueLen, it.Flags)
}

func itemSize(it *cache.CrawlItem) int {
	n := len(it.Key) - 1 + it.ValueLen + textItemHeader // the stored key has its collection first
	if it.Flags != 0 {
		n += 4
	}
	return n
}

// crawlExpired is the background crawl: in every bucket, the expired
// items of the classes asked for (nil: all) are reclaimed and counted,
// at most lru_crawler_tocrawl checked per class (0: all), sleeping
// lru_crawler_sleep between batches.
func (s *Server) crawlExpired(cr *crawlerState, classes crawlSet) {
	defer cr.running.Store(false)
	limit := uint64(cr.tocrawl.Load())
	for _, b := range s.buckets {
		counts := cr.countsFor(b)
		var seen [maxSlabClass + 1]uint64
		visited := 0
		visit := func(it *cache.CrawlItem) bool {
			visited++
			id := itemClassID(b, it)
			if classes != nil && !classes[id] || limit > 0 && seen[id] >= limit {
				return false
			}
			seen[id]++
			counts.checked[id].Add(1)
			if it.Expired {
				counts.reclaimed[id].Add(1)
			}
			return true
		}
		c := b.cache.NewCrawler()
		for c.Crawl(crawlBatch, visit) {
			if d := cr.sleep.Load(); d > 0 && visited >= crawlBatch {
				visited = 0
				time.Sleep(time.Duration(d) * time.Microsecond)
			}
		}
	}
}

// metadump lists the live items of b in classes (nil: all) as memcached's
// metadump does: a line each, "key=... exp=... la=... cas=... fetch=...
// cls=... size=...\n" with the key URL-encoded, exp -1 for never, and
// END after them. On a connection with a goroutine of its own the lines
// are written as they are made, the connection waiting for the client
// to read; under an event loop they go from a goroutine of their own
// through the connection's send queue (bounded in bytes), so that the
// loop's other connections go on.
func (s *Server) metadump(w memcached.ResponseWriter, cr *crawlerState, b *bucket, classes crawlSet) {
	d := &dumper{s: s, classes: classes, buf: make([]byte, 0, dumpChunk+512)}
	if b != nil {
		d.c, d.b = b.cache.NewCrawler(), b
		d.counts = cr.countsFor(b)
	}
	if w.Conn().NetConn() != nil {
		defer cr.running.Store(false)
		d.run(func(p []byte) error {
			if _, err := w.Write(p); err != nil {
				return err
			}
			return w.Flush()
		}, false)
		return
	}
	// Under an event loop, the first chunk is answered in place: a small
	// dump is all there, before what the client sends after it.
	if d.run(func(p []byte) error { _, err := w.Write(p); return err }, true) {
		cr.running.Store(false)
		return
	}
	conn := w.Conn()
	go func() {
		defer cr.running.Store(false)
		d.run(func(p []byte) error { return conn.Send(context.Background(), textChunk(p)) }, false)
	}()
}

// dumpChunk is about how much of a metadump is made before it is sent,
// and dumpBatch how many items' lines are made under one shard lock.
const (
	dumpChunk = 32 << 10
	dumpBatch = 256
)

// dumper makes a metadump's lines.
type dumper struct {
	s       *Server
	c       *cache.Crawler // nil: no bucket, nothing to list
	b       *bucket
	counts  *crawlCounts
	classes crawlSet
	buf     []byte
}

// run sends the dump through send, a chunk at a time, and END after it,
// until it is done or send fails (the client is gone). With first set it
// stops after the first chunk when more is left, and reports false.
func (d *dumper) run(send func([]byte) error, first bool) bool {
	if d.c != nil {
		for more := true; more; {
			more = d.c.Crawl(dumpBatch, d.line)
			if len(d.buf) >= dumpChunk || !more {
				if len(d.buf) > 0 && send(d.buf) != nil {
					break
				}
				d.buf = d.buf[:0]
				if first && more {
					return false
				}
			}
		}
	}
	send(append(d.buf[:0], textEnd...))
	return true
}

// line appends an item's line, if it is a live one of the classes asked
// for in the default collection. It never asks to reclaim.
func (d *dumper) line(it *cache.CrawlItem) bool {
	if len(it.Key) == 0 || it.Key[0] != 0 {
		return false
	}
	id := itemClassID(d.b, it)
	if d.classes != nil {
		if !d.classes[id] {
			return false
		}
		d.counts.checked[id].Add(1) // memcached counts the items of its LRU walks, not of a hash walk
	}
	if it.Expired {
		return false
	}
	b := append(d.buf, "key="...)
	b = uriEncode(b, it.Key[1:])
	b = append(b, " exp="...)
	if it.Expires == 0 {
		b = append(b, "-1"...)
	} else {
		b = strconv.AppendInt(b, it.Expires/int64(time.Second), 10)
	}
	b = strconv.AppendUint(append(b, " la="...), uint64(it.Atime), 10)
	b = strconv.AppendUint(append(b, " cas="...), it.CAS, 10)
	if it.Fetched {
		b = append(b, " fetch=yes"...)
	} else {
		b = append(b, " fetch=no"...)
	}
	b = strconv.AppendInt(append(b, " cls="...), int64(id), 10)
	b = strconv.AppendInt(append(b, " size="...), int64(itemSize(it)), 10)
	d.buf = append(b, '\n')
	return false
}

// uriEncode appends key with every byte but letters, digits and "-._~"
// as %XX (memcached's uriencode).
func uriEncode(dst, key []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range key {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// textChunk is text queued with Conn.Send: bytes sent as they are.
type textChunk []byte

func (p textChunk) Size() int                           { return len(p) }
func (p textChunk) AppendTo(dst []byte) ([]byte, error) { return append(dst, p...), nil }

var _ memcached.Packet = textChunk(nil)

// resetCounts zeroes b's crawler statistics (stats reset).
func (c *crawlerState) resetCounts(b *bucket) {
	n := c.countsFor(b)
	for i := range n.reclaimed {
		n.reclaimed[i].Store(0)
		n.checked[i].Store(0)
	}
}
