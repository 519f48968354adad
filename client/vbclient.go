package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// VBClient is a client of a vbucket cluster (Couchbase's KV engine, or
// gocache with -o cluster=): it reads the cluster config from a seed
// node, sends each key's request to the node the config's vbucket map
// names as active for the key's vbucket, with the request's VBucket set
// to it, and follows the map when it changes: a NOT_MY_VBUCKET answer
// carries a config, which it takes if newer (else it asks the other nodes
// for theirs) before retrying once on the new owner. With
// VBOptions.Push it also listens for the configs the nodes push
// (HELLO Duplex and ClustermapChangeNotification); with
// VBOptions.PollInterval it asks for the config at that interval.
//
// The vb argument of the KV methods is ignored: the key's vbucket is
// used. A VBClient is safe for concurrent use.
type VBClient struct {
	opts  VBOptions
	seeds []string

	state atomic.Pointer[vbState]

	mu     sync.Mutex // guards pools, closed; serialises refreshes
	pools  map[string]*Pool
	closed bool

	refreshMu sync.Mutex

	quit chan struct{}
	wg   sync.WaitGroup

	notMyVB, refreshes, pushes atomic.Int64
	// failFollowed is when a node's failure last sent route to the other
	// nodes for their configs (unix nanos): at most once a
	// failureFollowEvery, so that calls to a dead node cost no storm of
	// config requests.
	failFollowed atomic.Int64
	listening    atomic.Int64 // push connections that passed HELLO, for tests
}

var _ KV = (*VBClient)(nil)

// VBOptions configures a VBClient. The zero value is usable: no push, no
// polling, PoolOptions' defaults.
type VBOptions struct {
	// Pool configures the pool of connections to each node.
	Pool PoolOptions
	// Push opens one connection to each node of the config that asks
	// with HELLO for Duplex and ClustermapChangeNotification, and takes
	// every newer config those nodes push.
	Push bool
	// PollInterval, when positive, asks a node for the config at this
	// interval (at least 50ms).
	PollInterval time.Duration
	// Timeout bounds each config fetch and the KV methods that take no
	// context. Zero means 5 seconds.
	Timeout time.Duration
}

// VBStats counts what a VBClient did to follow the map.
type VBStats struct {
	Rev, RevEpoch int64 // of the config in use
	NotMyVBucket  int64 // NOT_MY_VBUCKET answers received
	Refreshes     int64 // configs fetched after the first
	Pushes        int64 // pushed configs taken
}

// vbState is a config and the pool of each of its servers, by index.
type vbState struct {
	cfg   *ClusterConfig
	nodes []*Pool
}

// failureFollowEvery is how often at most a node's failure makes a call
// ask the other nodes for their configs.
const failureFollowEvery = 100 * time.Millisecond

var (
	// ErrVBClientClosed is returned by a VBClient's calls after Close.
	ErrVBClientClosed = errors.New("memcached: vbucket client closed")
	// ErrNoActive is returned when no node is known to hold a vbucket's
	// active copy (or the replica asked for), even after a refresh.
	ErrNoActive = errors.New("memcached: no node holds the vbucket")
	// ErrNoSeed is NewVBClient's error when no seed gave a config.
	ErrNoSeed = errors.New("memcached: no seed node answered with a cluster config")
)

// NewVBClient connects to the first of seeds ("host:port") that answers
// GET_CLUSTER_CONFIG and builds a client over its config ("$HOST" being
// that seed's host). The error of the last seed is joined to ErrNoSeed.
func NewVBClient(ctx context.Context, seeds []string, opts VBOptions) (*VBClient, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	v := &VBClient{opts: opts, seeds: append([]string(nil), seeds...), pools: map[string]*Pool{}, quit: make(chan struct{})}
	var last error = errors.New("no seeds")
	for _, s := range seeds {
		cfg, err := v.fetchFrom(ctx, s)
		if err != nil {
			last = err
			continue
		}
		v.adopt(cfg, true)
		break
	}
	if v.state.Load() == nil {
		v.closeAll()
		return nil, errors.Join(ErrNoSeed, last)
	}
	if opts.Push {
		for _, addr := range v.state.Load().cfg.ServerList {
			v.wg.Add(1)
			go v.listen(addr)
		}
	}
	if opts.PollInterval > 0 {
		v.wg.Add(1)
		go v.poll(max(opts.PollInterval, 50*time.Millisecond))
	}
	return v, nil
}

// Config returns the cluster config in use.
func (v *VBClient) Config() *ClusterConfig { return v.state.Load().cfg }

// Stats returns the client's counters.
func (v *VBClient) Stats() VBStats {
	cfg := v.Config()
	return VBStats{Rev: cfg.Rev, RevEpoch: cfg.RevEpoch, NotMyVBucket: v.notMyVB.Load(),
		Refreshes: v.refreshes.Load(), Pushes: v.pushes.Load()}
}

// Close closes every node's pool and stops the push listeners and the
// poller.
func (v *VBClient) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	close(v.quit)
	v.mu.Unlock()
	v.wg.Wait()
	v.closeAll()
	return nil
}

func (v *VBClient) closeAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.pools {
		p.Close()
	}
	v.pools = map[string]*Pool{}
}

// pool returns the pool of addr, made on first use.
func (v *VBClient) pool(addr string) *Pool {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.pools[addr]
	if !ok {
		p = NewPool("tcp", addr, v.opts.Pool)
		v.pools[addr] = p
	}
	return p
}

// adopt makes cfg the config in use if it is better than the current
// one (see better), or force is set, and reports whether it did.
func (v *VBClient) adopt(cfg *ClusterConfig, force bool) bool {
	st := &vbState{cfg: cfg, nodes: make([]*Pool, len(cfg.ServerList))}
	for i, addr := range cfg.ServerList {
		st.nodes[i] = v.pool(addr)
	}
	for {
		old := v.state.Load()
		if !force && old != nil && !better(cfg, old.cfg) {
			return false
		}
		if v.state.CompareAndSwap(old, st) {
			return true
		}
	}
}

// fetchFrom asks the node at addr for its config.
func (v *VBClient) fetchFrom(ctx context.Context, addr string) (*ClusterConfig, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	res, err := v.pool(addr).Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET_CLUSTER_CONFIG})
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return ParseClusterConfig(res.Body, host)
}

// active returns the node of copy i of vb in st, -1 if none.
func (st *vbState) node(vb uint16, i int) int {
	if int(vb) >= len(st.cfg.VBucketMap) || i >= len(st.cfg.VBucketMap[vb]) {
		return -1
	}
	return st.cfg.VBucketMap[vb][i]
}

// follow brings the config up to date after node refused vb (refused is
// its address, "" when the map named no active for vb), given the config
// the refusal carried (nil if none). It takes body's config if newer and
// it names an active other than the refuser; else it asks every other
// node and takes the newest config that does, if it is not older than
// the one in use (each node of a gocache cluster has its own view: a
// promoted node's rev may equal the one the old owner sent).
func (v *VBClient) follow(ctx context.Context, vb uint16, refused string, body []byte) {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	cur := v.state.Load()
	names := func(cfg *ClusterConfig) bool {
		addr, ok := cfg.Server(vb, 0)
		return ok && addr != refused
	}
	if len(body) > 0 {
		host, _, _ := net.SplitHostPort(refused)
		if cfg, err := ParseClusterConfig(body, host); err == nil && names(cfg) && cfg.Newer(cur.cfg) {
			v.adopt(cfg, false)
			return
		}
	}
	if addr, ok := v.state.Load().cfg.Server(vb, 0); ok && addr != refused && v.state.Load() != cur {
		return // another caller followed already
	}
	var best *ClusterConfig
	tried := map[string]bool{refused: true}
	for _, addr := range append(append([]string(nil), cur.cfg.ServerList...), v.seeds...) {
		if tried[addr] {
			continue
		}
		tried[addr] = true
		cfg, err := v.fetchFrom(ctx, addr)
		if err != nil || !names(cfg) {
			continue
		}
		if best == nil || cfg.Newer(best) {
			best = cfg
		}
	}
	v.refreshes.Add(1)
	if best != nil && !cur.cfg.Newer(best) {
		v.adopt(best, true)
	}
}

// route runs f on the node holding copy i of key's vbucket (0: active),
// and on NOT_MY_VBUCKET, or the node's failure, follows the map and runs
// it once more. A NOT_MY_VBUCKET answer means the node did nothing; a
// failure after f sent its request (the connection cut, a timeout) does
// not: the node may have applied it, and may have replicated it to the
// node now active. So after such a failure f runs again only if it is
// idempotent (a read, a plain set); a call that may count twice (an
// arithmetic, an append, an add, a delete, a CAS) fails with the error,
// as Couchbase's SDKs fail a non-idempotent request that was sent with
// an ambiguous error rather than retry it. A failure before f ran (no
// connection to the node) is retried for any call.
func (v *VBClient) route(ctx context.Context, key string, i int, idempotent bool,
	f func(c *Client, vb uint16) (*gomemcached.MCResponse, error)) (*gomemcached.MCResponse, error) {
	if v.isClosed() {
		return nil, ErrVBClientClosed
	}
	for attempt := 0; ; attempt++ {
		st := v.state.Load()
		vb := st.cfg.VBucketForKey(key)
		n := st.node(vb, i)
		if n < 0 {
			if attempt > 0 {
				return nil, ErrNoActive
			}
			v.follow(ctx, vb, "", nil)
			continue
		}
		p := st.nodes[n]
		c, err := p.Shared(ctx)
		var res *gomemcached.MCResponse
		sent := false // f ran: its request may have reached the node
		if err == nil {
			res, err = f(c, vb)
			sent = true
			if err != nil && isRetired(err) {
				res, err, sent = nil, nil, false // refused unsent
				if c, err = p.Get(ctx); err == nil {
					res, err = f(c, vb)
					sent = true
					p.Put(c)
				}
			}
		}
		if errors.Is(err, ErrPoolClosed) {
			return nil, ErrVBClientClosed
		}
		if i == 0 && attempt == 0 && isFailure(err) && ctx.Err() == nil {
			// The node failed (refused, cut, silent), as a node that was
			// failed over does: if another node's config names another
			// active for the vbucket, the next calls go there, as
			// Couchbase's SDKs refresh their map on a socket error; this
			// one runs once more there if that is safe.
			if now, last := time.Now().UnixNano(), v.failFollowed.Load(); now-last >= int64(failureFollowEvery) &&
				v.failFollowed.CompareAndSwap(last, now) {
				v.follow(ctx, vb, st.cfg.ServerList[n], nil)
			}
			if v.state.Load() != st && (idempotent || !sent) {
				continue
			}
			return res, err
		}
		if i != 0 || !errors.Is(err, gomemcached.ErrNotMyVBucket) {
			return res, err
		}
		v.notMyVB.Add(1)
		if attempt > 0 {
			return res, err
		}
		var body []byte
		var mr *gomemcached.MCResponse
		if errors.As(err, &mr) {
			body = mr.Body
		}
		v.follow(ctx, vb, st.cfg.ServerList[n], body)
	}
}

func (v *VBClient) isClosed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.closed
}

func (v *VBClient) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), v.opts.Timeout)
}

// call is route for the KV methods that take no context.
func (v *VBClient) call(key string, idempotent bool, f func(c *Client, vb uint16) (*gomemcached.MCResponse, error)) (*gomemcached.MCResponse, error) {
	ctx, cancel := v.ctx()
	defer cancel()
	return v.route(ctx, key, 0, idempotent, f)
}

// idempotentOp reports whether req may run twice with the effect of
// once (see route): reads, touches, and sets without a CAS.
func idempotentOp(req *gomemcached.MCRequest) bool {
	switch req.Opcode {
	case gomemcached.GET, gomemcached.GETQ, gomemcached.GETK, gomemcached.GETKQ,
		gomemcached.GAT, gomemcached.GATQ, gomemcached.TOUCH, gomemcached.GET_REPLICA,
		gomemcached.GET_META, gomemcached.OBSERVE, gomemcached.OBSERVE_SEQNO, gomemcached.NOOP,
		gomemcached.SUBDOC_GET, gomemcached.SUBDOC_EXISTS, gomemcached.SUBDOC_MULTI_LOOKUP:
		return true
	case gomemcached.SET, gomemcached.SETQ:
		return req.Cas == 0
	}
	return false
}

// Do sends a copy of req, its VBucket set to its key's, to the node
// holding that vbucket; see Client.Do. A request without a key is refused.
func (v *VBClient) Do(ctx context.Context, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error) {
	if len(req.Key) == 0 {
		return nil, errNoKey
	}
	return v.route(ctx, string(req.Key), 0, idempotentOp(req), func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		r := *req
		r.VBucket = vb
		return c.Do(ctx, &r)
	})
}

// GetReplica reads key from replica i (1 for the first) of its vbucket
// with GET_REPLICA. It does not follow the map on NOT_MY_VBUCKET.
func (v *VBClient) GetReplica(ctx context.Context, key string, i int) (*gomemcached.MCResponse, error) {
	if i < 1 {
		return nil, ErrNoActive
	}
	res, err := v.route(ctx, key, i, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET_REPLICA, VBucket: vb, Key: []byte(key)})
	})
	if errors.Is(err, ErrNoActive) {
		return nil, ErrNoActive
	}
	return res, err
}

// Get is Client.Get on key's active node.
func (v *VBClient) Get(_ uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) { return c.Get(vb, key, context...) })
}

// GetAndTouch is Client.GetAndTouch on key's active node.
func (v *VBClient) GetAndTouch(_ uint16, key string, exp int, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.GetAndTouch(vb, key, exp, context...)
	})
}

// Set is Client.Set on key's active node.
func (v *VBClient) Set(_ uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.Set(vb, key, flags, exp, body, context...)
	})
}

// SetCas is Client.SetCas on key's active node.
func (v *VBClient) SetCas(_ uint16, key string, flags int, exp int, cas uint64, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, cas == 0, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.SetCas(vb, key, flags, exp, cas, body, context...)
	})
}

// Add is Client.Add on key's active node.
func (v *VBClient) Add(_ uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, false, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.Add(vb, key, flags, exp, body, context...)
	})
}

// Append is Client.Append on key's active node.
func (v *VBClient) Append(_ uint16, key string, data []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, false, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		return c.Append(vb, key, data, context...)
	})
}

// Del is Client.Del on key's active node.
func (v *VBClient) Del(_ uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return v.call(key, false, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) { return c.Del(vb, key, context...) })
}

// Incr is Client.Incr on key's active node.
func (v *VBClient) Incr(_ uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return v.arith(key, func(c *Client, vb uint16) (uint64, error) { return c.Incr(vb, key, amt, def, exp, context...) })
}

// Decr is Client.Decr on key's active node.
func (v *VBClient) Decr(_ uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return v.arith(key, func(c *Client, vb uint16) (uint64, error) { return c.Decr(vb, key, amt, def, exp, context...) })
}

func (v *VBClient) arith(key string, f func(c *Client, vb uint16) (uint64, error)) (uint64, error) {
	var n uint64
	_, err := v.call(key, false, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
		var err error
		n, err = f(c, vb)
		var mr *gomemcached.MCResponse
		if errors.As(err, &mr) {
			return mr, err
		}
		return nil, err
	})
	return n, err
}

// GetBulk reads keys into rv: they are grouped by vbucket, each group
// read with Client.GetBulk on its active node (following the map once on
// NOT_MY_VBUCKET), the groups concurrently. The first error is returned.
func (v *VBClient) GetBulk(_ uint16, keys []string, rv map[string]*gomemcached.MCResponse, subPaths []string, context ...*ClientContext) error {
	if len(keys) == 0 {
		return nil
	}
	if rv == nil {
		return errNilMap
	}
	ctx, cancel := v.ctx()
	defer cancel()
	var mu sync.Mutex
	var first error
	v.byVBucket(keys, func(vkeys []string) {
		m := make(map[string]*gomemcached.MCResponse, len(vkeys))
		_, err := v.route(ctx, vkeys[0], 0, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
			clear(m)
			return nil, c.GetBulk(vb, vkeys, m, subPaths, context...)
		})
		mu.Lock()
		defer mu.Unlock()
		for k, r := range m {
			rv[k] = r
		}
		if err != nil && first == nil {
			first = err
		}
	})
	return first
}

// GetMulti reads keys: grouped by vbucket, the groups of a node pipelined
// on its shared connection, the nodes concurrently. It returns the
// response of each key found; a miss is left out. Keys that could not be
// read are in the KeyErrors returned, with the responses of the others.
func (v *VBClient) GetMulti(ctx context.Context, keys []string) (map[string]*gomemcached.MCResponse, error) {
	out := make(map[string]*gomemcached.MCResponse, len(keys))
	errs := KeyErrors{}
	var mu sync.Mutex
	v.byVBucket(keys, func(vkeys []string) {
		m := make(map[string]*gomemcached.MCResponse, len(vkeys))
		_, err := v.route(ctx, vkeys[0], 0, true, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
			clear(m)
			return nil, c.GetBulk(vb, vkeys, m, nil)
		})
		mu.Lock()
		defer mu.Unlock()
		for k, r := range m {
			out[k] = r
		}
		if err != nil {
			for _, k := range vkeys {
				if _, ok := m[k]; !ok {
					errs[k] = err
				}
			}
		}
	})
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// SetMulti stores items: grouped by vbucket, each group's quiet sets
// (SETQ) pipelined behind a NOOP on the vbucket's active node (following
// the map once on NOT_MY_VBUCKET, as Set does), the groups concurrently.
// The items that were not stored are in the KeyErrors returned.
func (v *VBClient) SetMulti(ctx context.Context, items []Item) error {
	return v.quietMulti(ctx, gomemcached.SETQ, len(items), func(i int) string { return items[i].Key },
		func(i int, vb uint16, ex []byte) request {
			it := &items[i]
			binary.BigEndian.PutUint32(ex[0:4], it.Flags)
			binary.BigEndian.PutUint32(ex[4:8], it.Exp)
			return request{opcode: gomemcached.SETQ, vb: vb, key: it.Key, extras: ex, body: it.Value}
		})
}

// DeleteMulti deletes keys as SetMulti stores: quiet deletes (DELETEQ)
// pipelined per vbucket on its active node. A key not found is in the
// KeyErrors returned, with gomemcached.ErrKeyNotFound, as are the keys
// that could not be deleted.
func (v *VBClient) DeleteMulti(ctx context.Context, keys []string) error {
	return v.quietMulti(ctx, gomemcached.DELETEQ, len(keys), func(i int) string { return keys[i] },
		func(i int, vb uint16, _ []byte) request {
			return request{opcode: gomemcached.DELETEQ, vb: vb, key: keys[i]}
		})
}

// quietMulti sends n quiet requests, built by req (ex: 8 bytes of extras
// of its own), grouped by the vbucket of keyOf, each group in one pipeline
// on its active node; see SetMulti.
func (v *VBClient) quietMulti(ctx context.Context, op gomemcached.CommandCode, n int, keyOf func(int) string,
	req func(i int, vb uint16, ex []byte) request) error {
	if v.isClosed() {
		return ErrVBClientClosed
	}
	errs := KeyErrors{}
	valid := make([]int, 0, n)
	for i := range n {
		if err := checkKey(keyOf(i)); err != nil {
			errs[keyOf(i)] = err
		} else {
			valid = append(valid, i)
		}
	}
	var mu sync.Mutex
	v.byVBucketIdx(len(valid), func(j int) string { return keyOf(valid[j]) }, func(idx []int) {
		for j, k := range idx {
			idx[j] = valid[k]
		}
		// kerrs[j] is key j's answer once it has one; pending, the keys
		// still to send: a key a node refused with NOT_MY_VBUCKET was
		// not applied there, the others were (or failed there), so only
		// the refused ones go to the vbucket's next node.
		kerrs := make([]error, len(idx))
		pending := make([]int, len(idx))
		for j := range pending {
			pending[j] = j
		}
		ex := make([]byte, 8*len(idx))
		reqs := make([]request, 0, len(idx))
		_, err := v.route(ctx, keyOf(idx[0]), 0, op == gomemcached.SETQ, func(c *Client, vb uint16) (*gomemcached.MCResponse, error) {
			reqs = reqs[:0]
			for _, j := range pending {
				reqs = append(reqs, req(idx[j], vb, ex[8*j:8*j+8:8*j+8]))
				if err := c.c.applyContext(&reqs[len(reqs)-1], nil); err != nil {
					return nil, err
				}
			}
			m := &multiCall{errs: make([]error, len(reqs))}
			if err := c.c.pipeline(ctx, op, m, reqs, c.c.readDeadline()); err != nil {
				return nil, err
			}
			// The group is one vbucket's: a node that does not hold it
			// refuses its keys (all of them, unless the vbucket left it
			// during the pipeline), and route follows the map and sends
			// the refused ones again.
			var refused *gomemcached.MCResponse
			left := pending[:0]
			for k, j := range pending {
				e := m.errs[k]
				kerrs[j] = e
				var se *gomemcached.ServerError
				if errors.As(e, &se) && se.Status == gomemcached.NOT_MY_VBUCKET {
					left = append(left, j)
					if refused == nil {
						refused = &gomemcached.MCResponse{Opcode: se.Opcode, Status: se.Status, Opaque: se.Opaque, Body: se.Body}
					}
				}
			}
			pending = left
			if refused != nil {
				return nil, refused
			}
			return nil, nil
		})
		unanswered := make([]bool, len(idx))
		if err != nil {
			for _, j := range pending {
				unanswered[j] = true
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for j, i := range idx {
			switch {
			case unanswered[j]:
				errs[keyOf(i)] = err
			case kerrs[j] != nil:
				errs[keyOf(i)] = kerrs[j]
			}
		}
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// byVBucket groups keys by vbucket under the config in use and runs f for
// each group, concurrently (at most 16 at once), waiting for all.
func (v *VBClient) byVBucket(keys []string, f func(vkeys []string)) {
	v.byVBucketIdx(len(keys), func(i int) string { return keys[i] }, func(idx []int) {
		vkeys := make([]string, len(idx))
		for j, i := range idx {
			vkeys[j] = keys[i]
		}
		f(vkeys)
	})
}

// byVBucketIdx is byVBucket for n keys given by keyOf, f getting the
// indexes of a group.
func (v *VBClient) byVBucketIdx(n int, keyOf func(int) string, f func(idx []int)) {
	cfg := v.Config()
	groups := map[uint16][]int{}
	var order []uint16
	for i := range n {
		vb := cfg.VBucketForKey(keyOf(i))
		if _, ok := groups[vb]; !ok {
			order = append(order, vb)
		}
		groups[vb] = append(groups[vb], i)
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, vb := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(idx []int) {
			defer func() { <-sem; wg.Done() }()
			f(idx)
		}(groups[vb])
	}
	wg.Wait()
}

// clustermapNotification is the opcode of a server's ClustermapChange
// push (magic 0x82).
const clustermapNotification = 0x01

// listen keeps a connection to addr that asked for config pushes, and
// takes each newer config pushed, until Close. The client's reader hands
// a server-initiated packet (magic 0x82), which answers no call, to
// Receive once the connection is in raw mode: that is how it is read
// here. A failed connection is dialled again after a pause.
func (v *VBClient) listen(addr string) {
	defer v.wg.Done()
	host, _, _ := net.SplitHostPort(addr)
	for {
		ctx, cancel := v.ctx()
		c, err := Dial(ctx, "tcp", addr, ClientOptions{DialTimeout: v.opts.Timeout,
			Features: Features{gomemcached.FeatureDuplex, gomemcached.FeatureClustermapChangeNotification}})
		cancel()
		if err == nil {
			v.listening.Add(1)
			v.receivePushes(c, host)
			v.listening.Add(-1)
			c.Close()
		}
		select {
		case <-v.quit:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (v *VBClient) receivePushes(c *Client, host string) {
	for {
		select {
		case <-v.quit:
			return
		default:
		}
		res, err := c.ReceiveWithDeadline(time.Now().Add(250 * time.Millisecond))
		var te *TimeoutError
		switch {
		case errors.As(err, &te):
			continue
		case err != nil || res == nil:
			return
		}
		if res.Opcode != clustermapNotification || len(res.Body) == 0 {
			continue
		}
		if cfg, err := ParseClusterConfig(res.Body, host); err == nil && v.adopt(cfg, false) {
			v.pushes.Add(1)
		}
	}
}

// poll asks every node for its config each interval until Close, and
// takes the best: the newest, and of equal versions the one naming an
// active node for more vbuckets (the nodes of a gocache cluster each
// bump their own revision, so after a move the old owner and the new
// one may serve different maps at the same rev).
func (v *VBClient) poll(interval time.Duration) {
	defer v.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-v.quit:
			return
		case <-t.C:
		}
		cur := v.Config()
		best := cur
		for _, addr := range cur.ServerList {
			cfg, err := v.fetchFrom(context.Background(), addr)
			if err == nil && better(cfg, best) {
				best = cfg
			}
		}
		if best != cur {
			v.adopt(best, false)
		}
	}
}

// better reports whether c is newer than old, or as new and names an
// active node for more vbuckets.
func better(c, old *ClusterConfig) bool {
	if c.Newer(old) {
		return true
	}
	return !old.Newer(c) && activeRows(c) > activeRows(old)
}

func activeRows(c *ClusterConfig) int {
	n := 0
	for _, row := range c.VBucketMap {
		if len(row) > 0 && row[0] >= 0 {
			n++
		}
	}
	return n
}
