package gocache

import (
	"strconv"
	"strings"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// statWriter answers a STAT request with one packet per statistic.
type statWriter struct {
	w   memcached.ResponseWriter
	req *gm.MCRequest
	buf []byte
}

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

func (w *statWriter) send(name string) {
	res := gm.MCResponse{Opcode: w.req.Opcode, Opaque: w.req.Opaque, Key: []byte(name), Body: w.buf}
	w.w.WriteResponse(&res)
}

// end sends the empty packet that ends the statistics.
func (w *statWriter) end() {
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
	case "reset":
		h.srv.resetStats(b)
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
// the connection's bucket.
func (s *Server) generalStats(w *statWriter, b *bucket) {
	now := time.Now()
	cs := s.bucketStats(b)
	ss := s.srv.Stats()
	user, system := rusage()
	w.int("pid", int64(pid))
	w.int("uptime", int64(now.Sub(s.started)/time.Second))
	w.int("time", now.Unix())
	w.str("version", Version)
	w.int("pointer_size", 64)
	w.seconds("rusage_user", user)
	w.seconds("rusage_system", system)
	w.int("max_connections", int64(s.cfg.MaxConns))
	w.int("curr_connections", ss.CurrConnections)
	w.uint("total_connections", ss.TotalConnections)
	w.uint("rejected_connections", ss.RejectedConnections)
	w.int("connection_structures", ss.CurrConnections)
	w.uint("cmd_get", cs.GetHits+cs.GetMisses)
	w.uint("cmd_set", cs.CmdSet)
	w.uint("cmd_flush", s.cmdFlush.Load())
	w.uint("cmd_touch", s.cmdTouch.Load())
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
	w.uint("store_too_large", cs.StoreTooLarge)
	w.uint("store_no_memory", cs.StoreNoMemory)
	w.uint("auth_cmds", s.authCmds.Load())
	w.uint("auth_errors", s.authErrs.Load())
	w.uint("bytes_read", ss.BytesRead)
	w.uint("bytes_written", ss.BytesWritten)
	w.int("limit_maxbytes", cs.LimitMaxBytes)
	w.int("accepting_conns", 1)
	w.int("threads", int64(s.cfg.Threads))
	w.int("bytes", cs.Bytes-cs.TombstoneBytes) // memcached's: the items'
	w.uint("curr_items", cs.CurrItems)
	w.uint("total_items", cs.TotalItems)
	w.uint("expired_unfetched", cs.ExpiredUnfetched)
	w.uint("evicted_unfetched", cs.EvictedUnfetched)
	w.uint("evictions", cs.Evictions)
	w.uint("reclaimed", cs.Reclaimed)
	if b != nil {
		// The collections' system events (dcp_events.go), which are no
		// items of curr_items.
		w.uint("system_events", cs.SystemEvents)
		w.int("system_event_bytes", cs.SystemBytes)
		w.uint("system_events_not_recorded", b.eventsLost.Load())
	}
}

func (s *Server) settingsStats(w *statWriter) {
	c := s.bucketStats(nil)
	w.int("maxbytes", c.LimitMaxBytes)
	w.int("maxconns", int64(s.cfg.MaxConns))
	for _, name := range []string{"tcpport", "udpport", "interface", "domain_socket", "umask"} {
		if v, ok := s.cfg.Settings[name]; ok {
			w.str(name, v)
		}
	}
	w.int("verbosity", int64(s.verbosity.Load()))
	w.int("oldest", 0)
	if s.cfg.Cache.NoEvict {
		w.str("evictions", "off")
	} else {
		w.str("evictions", "on")
	}
	w.int("num_threads", int64(s.cfg.Threads))
	w.str("cas_enabled", "yes")
	w.str("binding_protocol", "binary")
	if s.cfg.RequireAuth {
		w.str("auth_enabled_sasl", "yes")
	} else {
		w.str("auth_enabled_sasl", "no")
	}
	itemMax := s.cfg.Cache.MaxItemSize
	if itemMax <= 0 {
		itemMax = cache.DefaultMaxItemSize
	}
	w.int("item_size_max", int64(itemMax))
	w.str("maxconns_fast", "yes")
	w.str("flush_enabled", "yes")
	w.int("idle_timeout", int64(s.cfg.IdleTimeout/time.Second))
}

// itemStats reports the store as memcached's slab class 1: gocache has no
// slab classes.
func (s *Server) itemStats(w *statWriter, b *bucket) {
	cs := s.bucketStats(b)
	if cs.CurrItems == 0 {
		return
	}
	w.uint("items:1:number", cs.CurrItems)
	w.uint("items:1:evicted", cs.Evictions)
	w.uint("items:1:outofmemory", cs.StoreNoMemory)
	w.uint("items:1:reclaimed", cs.Reclaimed)
	w.uint("items:1:expired_unfetched", cs.ExpiredUnfetched)
	w.uint("items:1:evicted_unfetched", cs.EvictedUnfetched)
	w.int("items:1:mem_requested", cs.Bytes-cs.TombstoneBytes)
}

func (s *Server) resetStats(b *bucket) {
	if b != nil {
		b.cache.ResetStats()
	}
	s.srv.ResetStats()
	s.cmdFlush.Store(0)
	s.cmdTouch.Store(0)
	s.authCmds.Store(0)
	s.authErrs.Store(0)
}
