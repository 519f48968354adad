package memcached

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Item is one key's value for SetMulti.
type Item struct {
	Key   string
	Value []byte
	Flags uint32
	Exp   uint32 // memcached's expiry: seconds, or a Unix time past 30 days
}

// KeyErrors is the error of a multi-key call that some keys could not
// complete: each such key's error. A server's failure is a *NodeError for
// each of its keys; a status it answered is a *gomemcached.ServerError
// (errors.Is matches gomemcached.ErrKeyNotFound, ...).
type KeyErrors map[string]error

func (e KeyErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "memcached: no key failed"
	}
	return fmt.Sprintf("memcached: %d of the keys failed, first %q: %v", len(keys), keys[0], e[keys[0]])
}

// group is the keys of a multi-key call that go to one server, by their
// index in the call.
type group struct {
	n   *serverNode
	idx []int
}

// split groups the keys by server. A key refused (too long) or with no
// server is put in errs, not in a group.
func (s *Servers) split(n int, key func(int) string, errs KeyErrors) []group {
	r := s.route.Load()
	byNode := make(map[int]int) // node index -> index in groups
	var groups []group
	for i := range n {
		k := key(i)
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		if r.ring == nil {
			err := ErrNoServers
			if s.isClosed() {
				err = ErrServersClosed
			}
			errs[k] = err
			continue
		}
		ni := r.live[r.ring.Pick(k)]
		gi, ok := byNode[ni]
		if !ok {
			gi = len(groups)
			byNode[ni] = gi
			groups = append(groups, group{n: s.nodes[ni]})
		}
		groups[gi].idx = append(groups[gi].idx, i)
	}
	return groups
}

// each runs f for every group, concurrently, and waits for all.
func each(groups []group, f func(g group)) {
	var wg sync.WaitGroup
	for _, g := range groups[min(1, len(groups)):] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(g)
		}()
	}
	if len(groups) > 0 {
		f(groups[0])
	}
	wg.Wait()
}

// GetBulk is Client.GetBulk over the servers: the keys are split by
// server, each server's are pipelined quiet gets behind a NOOP, and the
// servers are read concurrently. Every server is read even if one fails;
// the first error is returned (a failing server's as a *NodeError).
func (s *Servers) GetBulk(vb uint16, keys []string, rv map[string]*gomemcached.MCResponse, subPaths []string, context ...*ClientContext) error {
	switch {
	case len(keys) == 0:
		return nil
	case rv == nil:
		return errNilMap
	}
	errs := KeyErrors{}
	groups := s.split(len(keys), func(i int) string { return keys[i] }, errs)
	for _, k := range keys {
		if err := errs[k]; err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var first error
	each(groups, func(g group) {
		gk := make([]string, len(g.idx))
		for j, i := range g.idx {
			gk[j] = keys[i]
		}
		m := make(map[string]*gomemcached.MCResponse, len(gk))
		var err error
		for {
			var c *Client
			if c, err = s.shared(contextBackground(), g.n); err == nil {
				if err = c.GetBulk(vb, gk, m, subPaths, context...); err != nil && isRetired(err) {
					continue
				}
			}
			break
		}
		err = s.done(g.n, err)
		mu.Lock()
		defer mu.Unlock()
		for k, v := range m {
			rv[k] = v
		}
		if err != nil && first == nil {
			first = err
		}
	})
	return first
}

// contextBackground is context.Background, for the methods whose
// parameter named context hides the package.
func contextBackground() context.Context { return context.Background() }

// GetMulti reads keys from their servers: each server's keys are
// pipelined quiet gets (GETQ) behind a NOOP, the servers read
// concurrently. It returns the response of each key found (as Get's:
// opcode GET, the flags in the extras); a miss is left out, not an error.
// Keys that could not be read are in the KeyErrors returned, with the
// responses of the others.
func (s *Servers) GetMulti(ctx context.Context, keys []string) (map[string]*gomemcached.MCResponse, error) {
	out := make(map[string]*gomemcached.MCResponse, len(keys))
	errs := KeyErrors{}
	groups := s.split(len(keys), func(i int) string { return keys[i] }, errs)
	var mu sync.Mutex
	each(groups, func(g group) {
		reqs := make([]request, len(g.idx))
		for j, i := range g.idx {
			reqs[j] = request{opcode: gomemcached.GETQ, key: keys[i]}
		}
		res, kerrs, err := s.batch(ctx, g.n, gomemcached.GETQ, reqs, true)
		mu.Lock()
		defer mu.Unlock()
		for j, i := range g.idx {
			switch {
			case err != nil:
				errs[keys[i]] = err
			case kerrs[j] != nil:
				errs[keys[i]] = kerrs[j]
			case res[j] != nil:
				out[keys[i]] = res[j]
			}
		}
	})
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// SetMulti stores items on their servers: each server's are pipelined
// quiet sets (SETQ) behind a NOOP, the servers written concurrently. The
// items that were not stored are in the KeyErrors returned.
func (s *Servers) SetMulti(ctx context.Context, items []Item) error {
	errs := KeyErrors{}
	groups := s.split(len(items), func(i int) string { return items[i].Key }, errs)
	var mu sync.Mutex
	each(groups, func(g group) {
		reqs := make([]request, len(g.idx))
		ex := make([]byte, 8*len(g.idx))
		for j, i := range g.idx {
			it := &items[i]
			e := ex[8*j : 8*j+8 : 8*j+8]
			binary.BigEndian.PutUint32(e[0:4], it.Flags)
			binary.BigEndian.PutUint32(e[4:8], it.Exp)
			reqs[j] = request{opcode: gomemcached.SETQ, key: it.Key, extras: e, body: it.Value}
		}
		_, kerrs, err := s.batch(ctx, g.n, gomemcached.SETQ, reqs, false)
		mu.Lock()
		defer mu.Unlock()
		for j, i := range g.idx {
			switch {
			case err != nil:
				errs[items[i].Key] = err
			case kerrs[j] != nil:
				errs[items[i].Key] = kerrs[j]
			}
		}
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// DeleteMulti deletes keys on their servers: each server's are pipelined
// quiet deletes (DELETEQ) behind a NOOP, the servers reached
// concurrently. A key not found is in the KeyErrors returned, with
// gomemcached.ErrKeyNotFound, as are the keys that could not be deleted.
func (s *Servers) DeleteMulti(ctx context.Context, keys []string) error {
	errs := KeyErrors{}
	groups := s.split(len(keys), func(i int) string { return keys[i] }, errs)
	var mu sync.Mutex
	each(groups, func(g group) {
		reqs := make([]request, len(g.idx))
		for j, i := range g.idx {
			reqs[j] = request{opcode: gomemcached.DELETEQ, key: keys[i]}
		}
		_, kerrs, err := s.batch(ctx, g.n, gomemcached.DELETEQ, reqs, false)
		mu.Lock()
		defer mu.Unlock()
		for j, i := range g.idx {
			switch {
			case err != nil:
				errs[keys[i]] = err
			case kerrs[j] != nil:
				errs[keys[i]] = kerrs[j]
			}
		}
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// batch sends reqs, quiet requests, to n in one pipeline behind a NOOP and
// returns what each was answered: for gets, the responses found; the
// status errors of the others. err is the failure of the whole batch, a
// *NodeError for one of n.
func (s *Servers) batch(ctx context.Context, n *serverNode, op gomemcached.CommandCode, reqs []request, get bool) (
	res []*gomemcached.MCResponse, kerrs []error, err error) {
	for {
		var c *Client
		if c, err = s.shared(ctx, n); err == nil {
			for i := range reqs {
				if err = c.c.applyContext(&reqs[i], nil); err != nil {
					break
				}
			}
			if err == nil {
				m := &multiCall{get: get, errs: make([]error, len(reqs))}
				if get {
					m.res = make([]*gomemcached.MCResponse, len(reqs))
				}
				if err = c.c.pipeline(ctx, op, m, reqs, c.c.readDeadline()); err != nil && isRetired(err) {
					continue
				}
				res, kerrs = m.res, m.errs
			}
		}
		return res, kerrs, s.done(n, err)
	}
}

// multiCall collects the answers to a pipeline of quiet requests on the
// reader goroutine: only failures are answered, and hits for gets.
type multiCall struct {
	get  bool
	res  []*gomemcached.MCResponse // by request, for gets
	errs []error                   // by request
}

func (m *multiCall) handle(res *gomemcached.MCResponse, i, n uint32) bool {
	if i == n-1 {
		return true // the fence
	}
	switch {
	case res.Status == gomemcached.SUCCESS:
		if m.get {
			own := ownResponse(res)
			if own.Opcode == gomemcached.GETQ {
				own.Opcode = gomemcached.GET
			}
			m.res[i] = own
		}
	case m.get && res.Status == gomemcached.KEY_ENOENT:
	default:
		m.errs[i] = serverError(ownResponse(res))
	}
	return false
}

// pipeline sends reqs, each with its own opaque, then a NOOP, with one
// flush, and waits for the NOOP's answer as fenced does (until ctx ends or
// the deadline: the earlier of hard and ReadTimeout after the last packet
// received). h sees every answer. If it returns an error, h may still be
// called later, by the reader discarding the rest.
func (c *conn) pipeline(ctx context.Context, op gomemcached.CommandCode, h handler, reqs []request, hard time.Time) error {
	w := getWaiter(op)
	w.h = h
	now := time.Now()
	if err := startErr(ctx, op, hard, now); err != nil {
		w.release()
		return err
	}
	mode, dl := flushHandOff, time.Time{}
	if !cancellable(ctx) {
		mode, dl = flushCall, deadlineOf(hard, c.opts.ReadTimeout, now)
	}
	n := uint32(len(reqs))
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		w.release()
		return err
	}
	base, _ := c.registerLocked(w, n+1, false)
	start, nrecs := len(c.wbuf), len(c.wrecs)
	for i := range reqs {
		if err := c.enqueueLocked(&reqs[i], base+uint32(i)); err != nil {
			c.wbuf, c.wrecs = c.wbuf[:start], c.wrecs[:nrecs]
			c.unregisterLocked(w)
			c.mu.Unlock()
			w.release()
			return err
		}
	}
	fence := request{opcode: gomemcached.NOOP}
	c.enqueueLocked(&fence, base+n)
	c.flushLocked(dl, mode)
	_, err := c.await(ctx, w, hard, now)
	return err
}
