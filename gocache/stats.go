package gocache

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/mctext"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// statWriter writes statistics as the connection's protocol does: one
// binary STAT packet each (req set), or one text "STAT name value" line
// each, and then the empty packet or "END" that ends them.
type statWriter struct {
	w   memcached.ResponseWriter
	req *gm.MCRequest // nil: the text protocol
	buf []byte
	// line is where a text line is built.
	line []byte
}

// newTextStats returns a statWriter for a text connection.
func newTextStats(w memcached.ResponseWriter) *statWriter {
	return &statWriter{w: w, buf: make([]byte, 0, 32), line: make([]byte, 0, 128)}
}

func (w *statWriter) text() bool { return w.req == nil }

func (w *statWriter) str(name, value string) {
	w.buf = append(w.buf[:0], value...)
	w.send(name)
}

func (w *statWriter) uint(name string, v uint64) {
	w.buf = strconv.AppendUint(w.buf[:0], v, 10)
	w.send(name)
}

func (w *statWriter) int(name string, v int64) {
	w.buf = strconv.AppendInt(w.buf[:0], v, 10)
	w.send(name)
}

func (w *statWriter) seconds(name string, d time.Duration) {
	w.buf = strconv.AppendFloat(w.buf[:0], d.Seconds(), 'f', 6, 64)
	w.send(name)
}

// float writes v with prec decimals (memcached's "%.2f" and the like).
func (w *statWriter) float(name string, v float64, prec int) {
	w.buf = strconv.AppendFloat(w.buf[:0], v, 'f', prec, 64)
	w.send(name)
}

func (w *statWriter) send(name string) {
	if w.text() {
		w.line = append(append(append(w.line[:0], "STAT "...), name...), ' ')
		w.line = append(append(w.line, w.buf...), "\r\n"...)
		w.w.Write(w.line)
		return
	}
	res := gm.MCResponse{Opcode: w.req.Opcode, Opaque: w.req.Opaque, Key: []byte(name), Body: w.buf}
	w.w.WriteResponse(&res)
}

// end ends the statistics: the empty packet, or "END".
func (w *statWriter) end() {
	if w.text() {
		w.w.Write(textEnd)
		return
	}
	res := gm.MCResponse{Opcode: w.req.Opcode, Opaque: w.req.Opaque}
	w.w.WriteResponse(&res)
}

func (h *handler) stat(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Body) != 0 && string(req.Key) != "dcp" { // dcp's value: options
		h.invalid(w, req)
		return
	}
	sw := &statWriter{w: w, req: req, buf: make([]byte, 0, 32)}
	b := state(w).bucket
	switch key := string(req.Key); key {
	case "dcp":
		if !h.dcpStats(w, sw, req) {
			return
		}
	case "":
		h.srv.generalStats(sw, b)
	case "settings":
		h.srv.settingsStats(sw)
	case "items":
		h.srv.itemStats(sw, b)
	case "slabs":
		h.srv.slabStats(sw, b)
	case "sizes":
		h.srv.sizeStats(sw, b, key)
	case "sizes_enable", "sizes_disable":
		h.srv.sizeStats(sw, b, key) // no end, as memcached
		return
	case "reset":
		h.srv.resetStats(b)
		h.srv.detail().reset()
	case "detail on":
		h.srv.detail().enabled.Store(true)
	case "detail off":
		h.srv.detail().enabled.Store(false)
	case "detail dump":
		sw.buf = h.srv.detail().dump(sw.buf[:0])
		sw.send("detailed")
	default:
		sep, ok := strings.CutPrefix(key, "dcpagg ")
		if !ok || sep == "" {
			w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
			return
		}
		if !h.dcpAggStats(w, sw, req, sep) {
			return
		}
	}
	sw.end()
}

// bucketStats returns the counters of b, or none (with the configured
// limit) for a connection in no bucket.
func (s *Server) bucketStats(b *bucket) cache.Stats {
	if b == nil {
		max := s.cfg.Cache.MaxBytes
		if max <= 0 {
			max = cache.DefaultMaxBytes
		}
		return cache.Stats{LimitMaxBytes: max}
	}
	return b.cache.Stats()
}

// generalStats reports the server's statistics and the store counters of
// the connection's bucket, named and ordered as memcached 1.6.18's "stats"
// (with its LRU crawler and maintainer off, as gocache has neither unless
// Config.Settings says otherwise). What gocache has no counterpart for
// (slab rebalancing, hash table expansion, log watchers, read buffers
// counted apart) is reported as memcached reports it idle: 0. The
// binary protocol adds the buckets' system events.
func (s *Server) generalStats(w *statWriter, b *bucket) {
	now := time.Now()
	cs := s.bucketStats(b)
	ss := s.srv.Stats()
	user, system := rusage()
	w.int("pid", int64(pid))
	w.int("uptime", int64(now.Sub(s.started)/time.Second))
	w.int("time", now.Unix())
	w.str("version", Version)
	w.str("libevent", "none")
	w.int("pointer_size", 64)
	w.seconds("rusage_user", user)
	w.seconds("rusage_system", system)
	w.int("max_connections", int64(s.cfg.MaxConns))
	w.int("curr_connections", ss.CurrConnections)
	w.uint("total_connections", ss.TotalConnections)
	w.uint("rejected_connections", ss.RejectedConnections)
	w.int("connection_structures", ss.CurrConnections)
	w.uint("response_obj_oom", ss.ResponseOOM)
	for _, name := range []string{"response_obj_count", "response_obj_bytes",
		"read_buf_count", "read_buf_bytes", "read_buf_bytes_free"} {
		w.int(name, 0)
	}
	w.uint("read_buf_oom", ss.ReadBufOOM)
	w.int("reserved_fds", 0)
	w.uint("cmd_get", cs.GetHits+cs.GetMisses)
	w.uint("cmd_set", cs.CmdSet)
	w.uint("cmd_flush", s.cmdFlush.Load())
	w.uint("cmd_touch", s.cmdTouch.Load())
	w.uint("cmd_meta", s.text.meta.Load())
	w.uint("get_hits", cs.GetHits)
	w.uint("get_misses", cs.GetMisses)
	w.uint("get_expired", cs.GetExpired)
	w.uint("get_flushed", cs.GetFlushed)
	w.uint("delete_misses", cs.DeleteMisses)
	w.uint("delete_hits", cs.DeleteHits)
	w.uint("incr_misses", cs.IncrMisses)
	w.uint("incr_hits", cs.IncrHits)
	w.uint("decr_misses", cs.DecrMisses)
	w.uint("decr_hits", cs.DecrHits)
	w.uint("cas_misses", cs.CasMisses)
	w.uint("cas_hits", cs.CasHits)
	w.uint("cas_badval", cs.CasBadval)
	w.uint("touch_hits", cs.TouchHits)
	w.uint("touch_misses", cs.TouchMisses)
	w.uint("store_too_large", cs.StoreTooLarge+s.text.tooLarge.Load())
	w.uint("store_no_memory", cs.StoreNoMemory)
	w.uint("auth_cmds", s.authCmds.Load())
	w.uint("auth_errors", s.authErrs.Load())
	if s.cfg.IdleTimeout > 0 {
		w.uint("idle_kicks", ss.IdleKicks)
	}
	w.uint("bytes_read", ss.BytesRead)
	w.uint("bytes_written", ss.BytesWritten)
	w.int("limit_maxbytes", cs.LimitMaxBytes)
	w.int("accepting_conns", 1)
	w.int("listen_disabled_num", 0)
	w.int("time_in_listen_disabled_us", 0)
	w.int("threads", int64(s.cfg.Threads))
	w.uint("conn_yields", ss.ConnYields)
	w.int("hash_power_level", 16)
	w.int("hash_bytes", 524288)
	for _, name := range []string{"hash_is_expanding", "slab_reassign_rescues", "slab_reassign_chunk_rescues",
		"slab_reassign_evictions_nomem", "slab_reassign_inline_reclaim", "slab_reassign_busy_items",
		"slab_reassign_busy_deletes", "slab_reassign_running", "slabs_moved"} {
		w.int(name, 0)
	}
	if cr := s.crawler(); cr.enabled.Load() {
		running := 0
		if cr.running.Load() {
			running = 1
		}
		w.int("lru_crawler_running", int64(running))
		w.uint("lru_crawler_starts", cr.starts.Load())
	}
	if s.setting("lru_maintainer_thread", "no") == "yes" {
		w.uint("lru_maintainer_juggles", cs.LRU.Juggles)
	}
	for _, name := range []string{"malloc_fails", "log_worker_dropped", "log_worker_written", "log_watcher_skipped",
		"log_watcher_sent", "log_watchers", "unexpected_napi_ids", "round_robin_fallback"} {
		w.int(name, 0)
	}
	bytes, pool := cs.Bytes-cs.TombstoneBytes, int64(0)
	if b != nil {
		if classes, tot := b.cache.Slabs(); classes != nil {
			bytes, pool = 0, tot.Pool
			for i := range classes {
				bytes += classes[i].Requested // memcached's: its items' sizes
			}
		}
	}
	w.int("bytes", bytes)
	w.uint("curr_items", cs.CurrItems)
	w.uint("total_items", cs.TotalItems)
	w.int("slab_global_page_pool", pool)
	w.uint("expired_unfetched", cs.ExpiredUnfetched)
	w.uint("evicted_unfetched", cs.EvictedUnfetched)
	if s.setting("lru_maintainer_thread", "no") == "yes" {
		w.uint("evicted_active", cs.LRU.EvictedActive)
	}
	w.uint("evictions", cs.Evictions)
	crawled, checked := s.crawlStats(b)
	w.uint("reclaimed", cs.Reclaimed-min(crawled, cs.Reclaimed)) // memcached counts the crawler's apart

	w.uint("crawler_reclaimed", crawled)
	w.uint("crawler_items_checked", checked)
	w.int("lrutail_reflocked", 0)
	if s.setting("lru_maintainer_thread", "no") == "yes" {
		w.uint("moves_to_cold", cs.LRU.MovesToCold)
		w.uint("moves_to_warm", cs.LRU.MovesToWarm)
		w.uint("moves_within_lru", cs.LRU.MovesWithinLRU)
		w.int("direct_reclaims", 0)
		w.int("lru_bumps_dropped", 0)
	}
	if b != nil && !w.text() {
		// The collections' system events (dcp_events.go), which are no
		// items of curr_items.
		w.uint("system_events", cs.SystemEvents)
		w.int("system_event_bytes", cs.SystemBytes)
		w.uint("system_events_not_recorded", b.eventsLost.Load())
	}
}

// setting is the value cmd/gocache gave for a "stats settings" name in
// Config.Settings, or def.
func (s *Server) setting(name, def string) string {
	if v, ok := s.cfg.Settings[name]; ok {
		return v
	}
	return def
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// itemSizeMax is the -I limit.
func (s *Server) itemSizeMax() int {
	if n := s.cfg.Cache.MaxItemSize; n > 0 {
		return n
	}
	return cache.DefaultMaxItemSize
}

// settingsStats reports memcached 1.6.18's "stats settings", in its
// order: gocache's own settings where it has them, then memcached's for
// what cmd/gocache passes in Config.Settings (any name there overrides
// the value shown), then memcached's defaults for what gocache does not
// tune.
func (s *Server) settingsStats(w *statWriter) {
	c := s.bucketStats(nil)
	proto := "auto-negotiate"
	switch s.cfg.Protocol {
	case memcached.ProtocolBinary:
		proto = "binary"
	case memcached.ProtocolText:
		proto = "ascii"
	}
	asciiAuth := s.cfg.RequireAuth && s.cfg.Protocol == memcached.ProtocolText
	evictions := "on"
	if s.cfg.Cache.NoEvict {
		evictions = "off"
	}
	items := []struct{ name, value string }{
		{"maxbytes", strconv.FormatInt(c.LimitMaxBytes, 10)},
		{"maxconns", strconv.Itoa(s.cfg.MaxConns)},
		{"tcpport", s.setting("tcpport", "0")},
		{"udpport", s.setting("udpport", "0")},
		{"inter", s.setting("inter", s.setting("interface", "NULL"))},
		{"verbosity", strconv.FormatUint(uint64(s.verbosity.Load()), 10)},
		{"oldest", "0"},
		{"evictions", evictions},
		{"domain_socket", s.setting("domain_socket", "NULL")},
		{"umask", s.setting("umask", "700")},
		{"shutdown_command", yesNo(s.cfg.ShutdownCommand)},
		{"growth_factor", s.setting("growth_factor", "1.25")},
		{"chunk_size", s.setting("chunk_size", "48")},
		{"num_threads", strconv.Itoa(s.cfg.Threads)},
		{"num_threads_per_udp", strconv.Itoa(s.cfg.Threads)},
		{"stat_key_prefix", s.setting("stat_key_prefix", ":")},
		{"detail_enabled", yesNo(s.detail().enabled.Load())},
		{"reqs_per_event", strconv.Itoa(orDefault(s.cfg.ReqsPerEvent, 20))},
		{"cas_enabled", yesNo(!s.cfg.DisableCAS)},
		{"tcp_backlog", s.setting("tcp_backlog", "1024")},
		{"binding_protocol", proto},
		{"auth_enabled_sasl", yesNo(s.cfg.RequireAuth && !asciiAuth)},
		{"auth_enabled_ascii", yesNo(asciiAuth)},
		{"item_size_max", strconv.Itoa(s.itemSizeMax())},
		{"maxconns_fast", "yes"},
		{"hashpower_init", s.setting("hashpower_init", "0")},
		{"slab_reassign", s.setting("slab_reassign", "yes")},
		{"slab_automove", s.setting("slab_automove", "1")},
		{"slab_automove_ratio", s.setting("slab_automove_ratio", "0.80")},
		{"slab_automove_window", s.setting("slab_automove_window", "30")},
		{"slab_chunk_max", strconv.Itoa(s.slabChunkMax())},
		{"lru_crawler", yesNo(s.crawler().enabled.Load())},
		{"lru_crawler_sleep", strconv.FormatUint(uint64(s.crawler().sleep.Load()), 10)},
		{"lru_crawler_tocrawl", strconv.FormatUint(uint64(s.crawler().tocrawl.Load()), 10)},
		{"tail_repair_time", "0"},
		{"flush_enabled", yesNo(!s.cfg.DisableFlush)},
		{"dump_enabled", s.setting("dump_enabled", "yes")},
		{"hash_algorithm", s.setting("hash_algorithm", "murmur3")},
		{"lru_maintainer_thread", s.setting("lru_maintainer_thread", "no")},
		{"lru_segmented", s.setting("lru_segmented", yesNo(s.cfg.Cache.LRU == cache.Segmented))},
		{"hot_lru_pct", s.setting("hot_lru_pct", "20")},
		{"warm_lru_pct", s.setting("warm_lru_pct", "40")},
		{"hot_max_factor", s.setting("hot_max_factor", "0.20")},
		{"warm_max_factor", s.setting("warm_max_factor", "2.00")},
		{"temp_lru", s.setting("temp_lru", "no")},
		{"temporary_ttl", s.setting("temporary_ttl", "61")},
		{"idle_timeout", strconv.FormatInt(int64(s.cfg.IdleTimeout/time.Second), 10)},
		{"watcher_logbuf_size", s.setting("watcher_logbuf_size", "262144")},
		{"worker_logbuf_size", s.setting("worker_logbuf_size", "65536")},
		{"read_buf_mem_limit", strconv.FormatInt(s.cfg.ReadBufMemLimit>>20, 10)},
		{"track_sizes", "no"},
		{"inline_ascii_response", "no"},
		{"ssl_enabled", yesNo(s.cfg.TLS != nil)},
	}
	for _, it := range items {
		w.str(it.name, it.value)
	}
	// TLS and what memcached reports after it, where cmd/gocache knows it.
	for _, name := range []string{"ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_keyformat", "ssl_ciphers",
		"ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache", "ssl_kernel_tls", "ssl_min_version", "num_napi_ids", "memory_file"} {
		if v, ok := s.cfg.Settings[name]; ok {
			w.str(name, v)
		}
	}
}

// orDefault returns v, or def for 0 or less.
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// slabChunkMax is memcached's slab_chunk_max: cmd/gocache's -o
// slab_chunk_max, else half a slab page, within -I.
func (s *Server) slabChunkMax() int {
	if v, err := strconv.Atoi(s.setting("slab_chunk_max", "")); err == nil && v > 0 {
		return v
	}
	return min(512<<10, s.itemSizeMax())
}

// largestClass is the id of the largest slab class of b, or of any
// bucket for nil (they share their classes); 0 with no bucket.
func (s *Server) largestClass(b *bucket) int {
	for _, x := range s.buckets {
		if b != nil {
			break
		}
		b = x
	}
	if b == nil {
		return 0
	}
	return b.cache.SlabClassOf(0, b.cache.MaxItemSize(), 0)
}

// itemStats reports "stats items": each slab class that holds items, with
// memcached's names.
func (s *Server) itemStats(w *statWriter, b *bucket) {
	if b == nil {
		return
	}
	classes, _ := b.cache.Slabs()
	segmented := s.cfg.Cache.LRU == cache.Segmented
	for i := range classes {
		k := &classes[i]
		cs := &k.Counters
		if k.Items == 0 {
			continue
		}
		p := "items:" + strconv.Itoa(k.ID) + ":"
		w.uint(p+"number", k.Items)
		l := &cs.LRU
		if w.text() && segmented {
			w.uint(p+"number_hot", l.Hot)
			w.uint(p+"number_warm", l.Warm)
			w.uint(p+"number_cold", l.Cold)
			if s.setting("temp_lru", "no") == "yes" {
				w.uint(p+"number_temp", l.Temp)
			}
			w.int(p+"age_hot", int64(l.AgeHot/time.Second))
			w.int(p+"age_warm", int64(l.AgeWarm/time.Second))
		}
		if w.text() {
			w.int(p+"age", int64(l.AgeCold/time.Second))
		}
		w.int(p+"mem_requested", k.Requested)
		w.uint(p+"evicted", cs.Evictions)
		if w.text() {
			w.uint(p+"evicted_nonzero", cs.EvictedNonzero)
			w.uint(p+"evicted_time", cs.EvictedTime)
		}
		w.uint(p+"outofmemory", cs.StoreNoMemory)
		if w.text() {
			w.uint(p+"tailrepairs", 0)
		}
		crawled, checked := s.crawlClassStats(b, k.ID)
		w.uint(p+"reclaimed", cs.Reclaimed-min(crawled, cs.Reclaimed))
		w.uint(p+"expired_unfetched", cs.ExpiredUnfetched)
		w.uint(p+"evicted_unfetched", cs.EvictedUnfetched)
		if w.text() {
			w.uint(p+"evicted_active", l.EvictedActive)
			w.uint(p+"crawler_reclaimed", crawled)
			w.uint(p+"crawler_items_checked", checked)
			w.uint(p+"lrutail_reflocked", 0)
			w.uint(p+"moves_to_cold", l.MovesToCold)
			w.uint(p+"moves_to_warm", l.MovesToWarm)
			w.uint(p+"moves_within_lru", l.MovesWithinLRU)
			w.uint(p+"direct_reclaims", 0)
			w.uint(p+"hits_to_hot", l.HitsToHot)
			w.uint(p+"hits_to_warm", l.HitsToWarm)
			w.uint(p+"hits_to_cold", l.HitsToCold)
			w.uint(p+"hits_to_temp", l.HitsToTemp)
		}
	}
}

// slabStats reports "stats slabs": each slab class that has pages, then
// active_slabs and total_malloced, as memcached's.
func (s *Server) slabStats(w *statWriter, b *bucket) {
	var classes []cache.SlabStats
	var tot cache.SlabTotals
	if b != nil {
		classes, tot = b.cache.Slabs()
	}
	for i := range classes {
		k := &classes[i]
		cs := &k.Counters
		p := strconv.Itoa(k.ID) + ":"
		w.int(p+"chunk_size", k.ChunkSize)
		w.int(p+"chunks_per_page", k.ChunksPerPage)
		w.int(p+"total_pages", k.Pages)
		w.int(p+"total_chunks", k.Pages*k.ChunksPerPage)
		w.int(p+"used_chunks", k.UsedChunks)
		w.int(p+"free_chunks", max(0, k.Pages*k.ChunksPerPage-k.UsedChunks))
		w.int(p+"free_chunks_end", 0)
		w.uint(p+"get_hits", cs.GetHits)
		w.uint(p+"cmd_set", cs.CmdSet)
		w.uint(p+"delete_hits", cs.DeleteHits)
		w.uint(p+"incr_hits", cs.IncrHits)
		w.uint(p+"decr_hits", cs.DecrHits)
		w.uint(p+"cas_hits", cs.CasHits)
		w.uint(p+"cas_badval", cs.CasBadval)
		w.uint(p+"touch_hits", cs.TouchHits)
	}
	w.int("active_slabs", int64(len(classes)))
	w.int("total_malloced", tot.Malloced)
}

func (s *Server) resetStats(b *bucket) {
	if b != nil {
		b.cache.ResetStats()
		s.crawler().resetCounts(b)
	}
	s.srv.ResetStats()
	s.cmdFlush.Store(0)
	s.cmdTouch.Store(0)
	s.authCmds.Store(0)
	s.authErrs.Store(0)
	s.text.tooLarge.Store(0)
	s.text.meta.Store(0)
}

// textStats serves the text protocol's stats command, as memcached's
// process_stat answers each sub-command.
func (h *handler) textStats(w memcached.ResponseWriter, f [][]byte, n int) {
	s := h.srv
	b := state(w).bucket
	sw := newTextStats(w)
	if n == 2 {
		s.generalStats(sw, b)
		sw.end()
		return
	}
	switch string(f[1]) {
	case "reset":
		s.resetStats(b)
		s.detail().reset()
		w.Write(textReset)
		return
	case "detail":
		if n < 4 {
			w.Write([]byte("CLIENT_ERROR usage: stats detail on|off|dump\r\n"))
			return
		}
		s.detailCommand(w, f[2])
		return
	case "settings":
		s.settingsStats(sw)
	case "cachedump":
		s.cachedump(w, f, n, b)
		return
	case "conns":
		s.connStats(sw, w)
	case "items":
		s.itemStats(sw, b)
	case "slabs":
		s.slabStats(sw, b)
	case "extstore":
		// memcached built with extstore, none configured.
	case "sizes":
		s.sizeStats(sw, b, "sizes")
	case "sizes_enable", "sizes_disable":
		// memcached ends neither with END.
		s.sizeStats(sw, b, string(f[1]))
		return
	default:
		w.Write(errText)
		return
	}
	sw.end()
}

// connStats reports "stats conns" for the asking connection, the one
// gocache can describe without reaching into the others.
func (s *Server) connStats(sw *statWriter, w memcached.ResponseWriter) {
	c := w.Conn()
	id := "0:"
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		id = strconv.Itoa(a.Port) + ":"
	}
	sw.str(id+"addr", "tcp:"+c.RemoteAddr().String())
	sw.str(id+"listen_addr", "tcp:"+c.LocalAddr().String())
	sw.str(id+"state", "conn_parse_cmd")
	sw.int(id+"secs_since_last_cmd", 0)
}

// cachedump serves "stats cachedump <class> <limit>": the keys of the
// class gocache reports its items under (itemClass), at most limit (0:
// every one, within memcached's 2 MB answer), with their value sizes and
// absolute expiry times.
func (s *Server) cachedump(w memcached.ResponseWriter, f [][]byte, n int, b *bucket) {
	if s.setting("dump_enabled", "yes") != "yes" {
		w.Write([]byte("CLIENT_ERROR stats cachedump not allowed\r\n"))
		return
	}
	if n < 5 {
		w.Write(errTextStatLine)
		return
	}
	id, ok1 := mctext.ParseUint32(f[2])
	limit, ok2 := mctext.ParseUint32(f[3])
	if !ok1 || !ok2 {
		w.Write(errTextLine)
		return
	}
	if id >= 64 {
		w.Write([]byte("CLIENT_ERROR Illegal slab id\r\n"))
		return
	}
	if b == nil {
		w.Write(textEnd)
		return
	}
	var items uint64
	classes, _ := b.cache.Slabs()
	for i := range classes {
		if classes[i].ID == int(id) {
			items = classes[i].Items
		}
	}
	if items == 0 {
		w.Write(textEnd)
		return
	}
	// memcached's answer holds at most 2 MB, over 100000 of the
	// shortest lines: no more keys are collected.
	want := int(limit)
	if want == 0 || want > 100000 {
		want = 100000
	}
	out := make([]byte, 0, 256)
	dumped := 0
	cr := b.cache.NewCrawler()
	full := false
	visit := func(it *cache.CrawlItem) bool {
		if full || it.Expired || len(it.Key) < 1 || it.Key[0] != 0 || itemClassID(b, it) != int(id) {
			return false
		}
		line := append([]byte("ITEM "), it.Key[1:]...)
		line = strconv.AppendInt(append(line, " ["...), int64(it.ValueLen), 10)
		line = append(strconv.AppendInt(append(line, " b; "...), it.Expires/1e9, 10), " s]\r\n"...)
		if len(out)+len(line)+6 > 2<<20 {
			full = true
			return false
		}
		out = append(out, line...)
		dumped++
		full = dumped >= want
		return false
	}
	for !full && cr.Crawl(1000, visit) {
	}
	w.Write(append(out, textEnd...))
}

// sizeStats serves stats sizes, sizes_enable and sizes_disable. While
// enabled (memcached's -o track_sizes, or sizes_enable), "stats sizes" is
// a histogram of the items' sizes as memcached counts them (key, value
// and its 59 or 63 bytes of header) in 32-byte buckets, counted over the
// live items when asked (memcached counts those stored since it was
// enabled), at most maxSizeScan of them.
func (s *Server) sizeStats(w *statWriter, b *bucket, cmd string) {
	on := &s.text.sizes
	switch cmd {
	case "sizes_enable":
		if s.cfg.DisableCAS {
			w.str("sizes_status", "error")
			w.str("sizes_error", "cas_support_disabled")
			return
		}
		on.Store(true)
		w.str("sizes_status", "enabled")
		return
	case "sizes_disable":
		on.Store(false)
		w.str("sizes_status", "disabled")
		return
	}
	if !on.Load() && s.setting("track_sizes", "no") != "yes" {
		w.str("sizes_status", "disabled")
		return
	}
	if b == nil {
		return
	}
	hist := map[int]uint64{}
	if sc, err := b.cache.ScanSample(0, []byte{0}, maxSizeScan, 0); err == nil {
		for {
			key, it, ok := sc.Next()
			if !ok {
				break
			}
			n := len(key) - 1 + len(docBody(&it)) + textItemHeader
			if it.Flags != 0 {
				n += 4
			}
			hist[(n+31)/32]++
		}
	}
	buckets := make([]int, 0, len(hist))
	for k := range hist {
		buckets = append(buckets, k)
	}
	slices.Sort(buckets)
	for _, k := range buckets {
		w.uint(strconv.Itoa(k*32), hist[k])
	}
}

// maxSizeScan bounds the items "stats sizes" reads.
const maxSizeScan = 1 << 20
