package gocache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// The cluster map, as Couchbase's KV engine serves it: a static cluster
// given at start (Config.Cluster), answered to GET_CLUSTER_CONFIG as a
// terse bucket config, carried by NOT_MY_VBUCKET answers and pushed to
// the connections that asked for it with HELLO (Duplex and
// ClustermapChangeNotification, or its Brief form) whenever SET_VBUCKET
// changes the map. Each bucket has its own map and revision.

// ClusterConfig is a static cluster of gocache nodes, every node serving
// the same buckets with the same number of vbuckets.
type ClusterConfig struct {
	// Nodes are the nodes' memcached addresses, "host:port". A host
	// written "$HOST" is sent as it is, as in Couchbase's configs: clients
	// put the host they connected to in its place.
	Nodes []string
	// Self is this node's index in Nodes.
	Self int
	// Replicas is the number of replicas of each vbucket (numReplicas).
	Replicas int
	// VBucketMap has a row per vbucket (as many as the buckets have):
	// the index in Nodes of its active copy, then of each replica, -1
	// where there is none. Nil means a balanced map: vbucket i active on
	// node i%len(Nodes), its replicas on the nodes after it.
	VBucketMap [][]int
	// Epoch is the config's revEpoch; 0 means 1. A node restarted with
	// a config its clients should take over what they hold (whose
	// revision starts again at 1) needs a greater epoch.
	Epoch int64
}

// clusterFile is the JSON form of a ClusterConfig (gocache -o cluster=).
type clusterFile struct {
	Nodes    []string `json:"nodes"`
	Self     int      `json:"self"`
	Replicas int      `json:"replicas"`
	Map      [][]int  `json:"map"`
	Epoch    int64    `json:"epoch"`
}

// maxClusterNodes bounds Nodes: Couchbase's limit is far below it.
const maxClusterNodes = 1024

// ParseClusterConfig reads the JSON form of a ClusterConfig:
//
//	{"nodes":["127.0.0.1:11211","127.0.0.1:11212"],"self":0,"replicas":1,
//	 "map":[[0,1],[1,0],...],"epoch":1}
//
// "map" and "epoch" may be left out. Unknown fields are refused; the map's
// length is checked against the vbuckets by New.
func ParseClusterConfig(data []byte) (*ClusterConfig, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f clusterFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("gocache: cluster config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("gocache: cluster config: data after the JSON object")
	}
	c := &ClusterConfig{Nodes: f.Nodes, Self: f.Self, Replicas: f.Replicas, VBucketMap: f.Map, Epoch: f.Epoch}
	if err := c.check(-1); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates c, and its map's length against vbuckets unless that is
// negative.
func (c *ClusterConfig) check(vbuckets int) error {
	n := len(c.Nodes)
	if n == 0 || n > maxClusterNodes {
		return fmt.Errorf("gocache: cluster config: want 1 to %d nodes, have %d", maxClusterNodes, n)
	}
	seen := make(map[string]bool, n)
	for _, node := range c.Nodes {
		host, port, err := net.SplitHostPort(node)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || p == 0 {
			return fmt.Errorf("gocache: cluster config: node %q: want host:port", node)
		}
		if seen[node] {
			return fmt.Errorf("gocache: cluster config: node %q listed twice", node)
		}
		seen[node] = true
	}
	if c.Self < 0 || c.Self >= n {
		return fmt.Errorf("gocache: cluster config: self %d is not a node's index (0 to %d)", c.Self, n-1)
	}
	if c.Replicas < 0 || c.Replicas >= n {
		return fmt.Errorf("gocache: cluster config: replicas %d: want 0 to %d with %d nodes", c.Replicas, n-1, n)
	}
	if c.Epoch < 0 {
		return fmt.Errorf("gocache: cluster config: epoch %d is negative", c.Epoch)
	}
	if c.VBucketMap == nil {
		return nil
	}
	if vbuckets >= 0 && len(c.VBucketMap) != vbuckets {
		return fmt.Errorf("gocache: cluster config: map has %d rows for %d vbuckets", len(c.VBucketMap), vbuckets)
	}
	if len(c.VBucketMap) == 0 || len(c.VBucketMap) > cache.MaxVBuckets {
		return fmt.Errorf("gocache: cluster config: map has %d rows: want 1 to %d", len(c.VBucketMap), cache.MaxVBuckets)
	}
	for vb, row := range c.VBucketMap {
		if len(row) != c.Replicas+1 {
			return fmt.Errorf("gocache: cluster config: map row %d has %d entries, want %d (1 + replicas)", vb, len(row), c.Replicas+1)
		}
		for i, node := range row {
			if node < -1 || node >= n {
				return fmt.Errorf("gocache: cluster config: map row %d: node %d is not -1 or a node's index", vb, node)
			}
			if node >= 0 && slicesIndex(row[:i], node) >= 0 {
				return fmt.Errorf("gocache: cluster config: map row %d names node %d twice", vb, node)
			}
		}
	}
	return nil
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// balancedMap is the map of n nodes with r replicas over vbuckets.
func balancedMap(vbuckets, n, r int) [][]int {
	m := make([][]int, vbuckets)
	cells := make([]int, vbuckets*(r+1))
	for vb := range m {
		row := cells[vb*(r+1) : (vb+1)*(r+1) : (vb+1)*(r+1)]
		for i := range row {
			row[i] = (vb + i) % n
		}
		m[vb] = row
	}
	return m
}

// clusterState is a server's cluster: each bucket's map and the
// connections told of changes.
type clusterState struct {
	cfg  *ClusterConfig
	maps map[*bucket]*clusterMap // read-only after New

	mu   sync.Mutex
	subs map[*memcached.Conn]*clusterConn
}

// clusterMap is one bucket's vbucket map and revision.
type clusterMap struct {
	name string
	cfg  *ClusterConfig

	mu    sync.Mutex
	epoch int64 // cfg.Epoch until SET_CLUSTER_CONFIG sets another
	// set: SET_CLUSTER_CONFIG gave the map; from then on only it
	// changes the map, as ns_server's in Couchbase.
	set   bool
	rev   int64
	vbmap [][]int
	snap  clusterSnapshot // the encoded config of rev, replaced (never changed) under mu
}

// clusterSnapshot is an encoded config and its version.
type clusterSnapshot struct {
	version clusterVersion
	json    []byte
}

// clusterVersion is a config's (revEpoch, rev), ordered epoch first.
type clusterVersion struct{ epoch, rev int64 }

func (v clusterVersion) less(o clusterVersion) bool {
	return v.epoch < o.epoch || v.epoch == o.epoch && v.rev < o.rev
}

// clusterConn is a connection's cluster state: the version it knows (for
// DedupeNotMyVbucketClustermap and pushes), and for a subscriber its
// bucket and whether it asked for brief notifications. The connection's
// goroutine and those pushing to it share it under mu.
type clusterConn struct {
	mu         sync.Mutex
	known      clusterVersion
	bucket     *bucket
	brief      bool
	subscribed bool // in clusterState.subs; watched until the connection ends
}

func (cc *clusterConn) setBucket(b *bucket) {
	cc.mu.Lock()
	cc.bucket = b
	cc.mu.Unlock()
}

// learn records that the client was sent, or told us it has, version v.
func (cc *clusterConn) learn(v clusterVersion) {
	cc.mu.Lock()
	if cc.known.less(v) {
		cc.known = v
	}
	cc.mu.Unlock()
}

func (cc *clusterConn) knows(v clusterVersion) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.known.less(v)
}

// newClusterState checks cfg against the buckets and sets each bucket's
// vbucket states from the map, unless a Replicator owns them.
func newClusterState(cfg *ClusterConfig, buckets map[string]*bucket, setStates bool) (*clusterState, error) {
	if cfg == nil {
		return nil, nil
	}
	vbuckets := -1
	for _, b := range buckets {
		vbuckets = b.cache.VBuckets()
	}
	if err := cfg.check(vbuckets); err != nil {
		return nil, err
	}
	if cfg.Epoch == 0 {
		c := *cfg
		c.Epoch = 1
		cfg = &c
	}
	cs := &clusterState{cfg: cfg, maps: make(map[*bucket]*clusterMap, len(buckets)), subs: make(map[*memcached.Conn]*clusterConn)}
	for name, b := range buckets {
		var vbmap [][]int
		if cfg.VBucketMap == nil {
			vbmap = balancedMap(vbuckets, len(cfg.Nodes), cfg.Replicas)
		} else {
			vbmap = make([][]int, len(cfg.VBucketMap))
			for vb, row := range cfg.VBucketMap {
				vbmap[vb] = append([]int(nil), row...)
			}
		}
		m := &clusterMap{name: name, cfg: cfg, epoch: cfg.Epoch, rev: 1, vbmap: vbmap}
		m.encode()
		cs.maps[b] = m
		if setStates {
			for vb, row := range vbmap {
				st := cache.Dead
				switch i := slicesIndex(row, cfg.Self); {
				case i == 0:
					st = cache.Active
				case i > 0:
					st = cache.Replica
				}
				if st != cache.Active {
					if err := b.cache.SetState(uint16(vb), st); err != nil {
						return nil, fmt.Errorf("gocache: cluster config: vbucket %d: %w", vb, err)
					}
				}
			}
		}
	}
	return cs, nil
}

// The terse bucket config, the fields Couchbase's clients read.
type terseConfig struct {
	Rev          int64           `json:"rev"`
	RevEpoch     int64           `json:"revEpoch"`
	Name         string          `json:"name"`
	NodeLocator  string          `json:"nodeLocator"`
	NodesExt     []terseNode     `json:"nodesExt"`
	Capabilities []string        `json:"bucketCapabilities"`
	VBServerMap  terseVBucketMap `json:"vBucketServerMap"`
}

type terseNode struct {
	Services map[string]int `json:"services"`
	Hostname string         `json:"hostname"`
	ThisNode bool           `json:"thisNode,omitempty"`
}

type terseVBucketMap struct {
	HashAlgorithm string   `json:"hashAlgorithm"`
	NumReplicas   int      `json:"numReplicas"`
	ServerList    []string `json:"serverList"`
	VBucketMap    [][]int  `json:"vBucketMap"`
}

// encode makes m.snap from m.rev and m.vbmap; m.mu is held or m is new.
func (m *clusterMap) encode() {
	c := m.cfg
	t := terseConfig{
		Rev: m.rev, RevEpoch: m.epoch, Name: m.name, NodeLocator: "vbucket",
		Capabilities: []string{"cbhello", "nodesExt", "xattr", "collections"},
		VBServerMap:  terseVBucketMap{HashAlgorithm: "CRC", NumReplicas: c.Replicas, ServerList: c.Nodes, VBucketMap: m.vbmap},
	}
	for i, node := range c.Nodes {
		host, port, _ := net.SplitHostPort(node) // checked
		p, _ := strconv.Atoi(port)
		t.NodesExt = append(t.NodesExt, terseNode{Services: map[string]int{"kv": p}, Hostname: host, ThisNode: i == c.Self})
	}
	body, _ := json.Marshal(&t) // ints, strings and maps of them: it cannot fail
	m.snap = clusterSnapshot{version: clusterVersion{m.epoch, m.rev}, json: body}
}

func (m *clusterMap) snapshot() clusterSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap
}

// vbucketChanged updates vbucket vb's row for this node's new state st,
// as an operator's failover or move would: active makes this node the
// row's first (the former active leaves the row, the other replicas
// stay), replica makes it a replica where the row has room (leaving the
// active slot empty if it held it), dead or pending takes it out of the
// row. It reports the new
// snapshot and whether the map changed (and its revision with it). Once
// an operator has given the map (SET_CLUSTER_CONFIG) it changes nothing:
// a revision this node made on its own could be another map at the same
// revision on another node.
func (m *clusterMap) vbucketChanged(vb uint16, st cache.VBState) (clusterSnapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(vb) >= len(m.vbmap) || m.set {
		return m.snap, false
	}
	self := m.cfg.Self
	old := m.vbmap[vb]
	row := make([]int, len(old))
	for i := range row {
		row[i] = -1
	}
	switch st {
	case cache.Active:
		row[0] = self
		j := 1
		for _, n := range old[1:] {
			if n != self && n >= 0 && j < len(row) {
				row[j] = n
				j++
			}
		}
	case cache.Replica:
		if old[0] != self {
			row[0] = old[0]
		}
		j := 1
		for _, n := range old[1:] {
			if n != self && n >= 0 && j < len(row) {
				row[j] = n
				j++
			}
		}
		if j < len(row) {
			row[j] = self // else the other replicas keep their places
		}
	default:
		for i, n := range old {
			if n != self {
				row[i] = n
			}
		}
	}
	if slicesEqual(row, old) {
		return m.snap, false
	}
	m.vbmap[vb] = row // a new slice: earlier snapshots' JSON is already encoded
	m.rev++
	m.encode()
	return m.snap, true
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clusterMapOf returns the bucket's map, nil without a cluster or bucket.
func (s *Server) clusterMapOf(b *bucket) *clusterMap {
	if s.cluster == nil || b == nil {
		return nil
	}
	return s.cluster.maps[b]
}

// getClusterConfig serves GET_CLUSTER_CONFIG: the bucket's config, JSON;
// with 16 bytes of extras (the epoch and revision the client has), an
// empty value unless the config is newer. KEY_ENOENT without a config,
// as kv_engine answers for a bucket ns_server has not configured.
func (h *handler) getClusterConfig(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 && len(req.Extras) != 16 || len(req.Key) != 0 || len(req.Body) != 0 || req.Cas != 0 {
		h.invalid(w, req)
		return
	}
	st := state(w)
	m := h.srv.clusterMapOf(st.bucket)
	if m == nil {
		w.WriteStatus(req, gm.KEY_ENOENT, nil)
		return
	}
	snap := m.snapshot()
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
	if len(req.Extras) == 16 {
		theirs := clusterVersion{int64(binary.BigEndian.Uint64(req.Extras)), int64(binary.BigEndian.Uint64(req.Extras[8:]))}
		st.cluster.learn(theirs)
		if !theirs.less(snap.version) {
			w.WriteResponse(&res)
			return
		}
	}
	st.cluster.learn(snap.version)
	res.Body, res.DataType = snap.json, sentDatatype(st, gm.DatatypeFlagJSON)
	w.WriteResponse(&res)
}

// notMyVBucketConfig is the value of a NOT_MY_VBUCKET answer: the
// bucket's config, or nothing without one or, for a connection that
// negotiated DedupeNotMyVbucketClustermap, when it has this version.
func (h *handler) notMyVBucketConfig(w memcached.ResponseWriter) (body []byte, datatype uint8) {
	st := state(w)
	return h.notMyVBucketConfigOf(st, st.features, st.bucket)
}

// notMyVBucketConfigOf is notMyVBucketConfig for the connection of st on
// bucket b, from any goroutine: features are the connection's, as the
// caller read them on the connection's goroutine (a HELLO rewrites
// st.features there; st.cluster has a lock of its own).
func (h *handler) notMyVBucketConfigOf(st *connState, features gm.FeatureSet, b *bucket) (body []byte, datatype uint8) {
	m := h.srv.clusterMapOf(b)
	if m == nil {
		return nil, 0
	}
	snap := m.snapshot()
	if features.Has(gm.FeatureDedupeNotMyVbucketClustermap) && st.cluster.knows(snap.version) {
		return nil, 0
	}
	st.cluster.learn(snap.version)
	if features.Has(gm.FeatureJSON) {
		datatype = gm.DatatypeFlagJSON
	}
	return snap.json, datatype
}

// clusterHello checks a HELLO's features as kv_engine does (a
// clustermap notification needs Duplex) and reports whether to drop full
// notifications in favour of the brief ones, both asked.
func clusterHello(body []byte) (ok, dropFull bool) {
	var duplex, full, brief bool
	for b := body; len(b) >= 2; b = b[2:] {
		switch gm.Feature(binary.BigEndian.Uint16(b)) {
		case gm.FeatureDuplex:
			duplex = true
		case gm.FeatureClustermapChangeNotification:
			full = true
		case gm.FeatureClustermapChangeNotificationBrief:
			brief = true
		}
	}
	return duplex || !(full || brief), full && brief
}

// clusterSubscribe records, after a HELLO, whether the connection is to
// be told of new configs.
func (h *handler) clusterSubscribe(w memcached.ResponseWriter) {
	cs := h.srv.cluster
	if cs == nil {
		return
	}
	st := state(w)
	full, brief := st.features.Has(gm.FeatureClustermapChangeNotification), st.features.Has(gm.FeatureClustermapChangeNotificationBrief)
	c := w.Conn()
	cc := &st.cluster
	cc.mu.Lock()
	cc.bucket, cc.brief = st.bucket, brief
	watch := (full || brief) && !cc.subscribed
	cc.subscribed = cc.subscribed || full || brief
	cc.mu.Unlock()
	cs.mu.Lock()
	if full || brief {
		cs.subs[c] = cc
	} else {
		delete(cs.subs, c)
	}
	cs.mu.Unlock()
	if watch {
		go func() {
			<-c.Done()
			cs.mu.Lock()
			delete(cs.subs, c)
			cs.mu.Unlock()
		}()
	}
}

// clusterVBucketChanged follows SET_VBUCKET: it updates the bucket's map
// and, if it changed, pushes the new config (clusterPush).
func (s *Server) clusterVBucketChanged(b *bucket, vb uint16, st cache.VBState) {
	m := s.clusterMapOf(b)
	if m == nil {
		return
	}
	if snap, changed := m.vbucketChanged(vb, st); changed {
		s.clusterPush(b, m, snap)
	}
}

// clusterPush pushes snap, bucket b's new config, to the subscribed
// connections on b that do not have it. A connection whose send queue is
// full misses the push (it gets the config with its next NOT_MY_VBUCKET).
func (s *Server) clusterPush(b *bucket, m *clusterMap, snap clusterSnapshot) {
	var full, brief rawPacket
	cs := s.cluster
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c, cc := range cs.subs {
		cc.mu.Lock()
		mine, isBrief, knows := cc.bucket == b, cc.brief, !cc.known.less(snap.version)
		cc.mu.Unlock()
		if !mine || knows {
			continue
		}
		p := &full
		if isBrief {
			p = &brief
		}
		if *p == nil {
			var err error
			if *p, err = clusterNotification(m.name, snap, !isBrief); err != nil {
				s.logger().Warn("cluster map notification not encoded", "err", err)
				return
			}
		}
		if err := c.TrySend(*p); err != nil {
			s.logger().Debug("cluster map not pushed", "remote", c.RemoteAddr().String(), "err", err)
			continue
		}
		cc.learn(snap.version)
	}
}

// clusterNotification encodes a ClustermapChangeNotification, a server
// request (magic 0x82, opcode 0x01): extras the epoch and revision (8
// bytes each), key the bucket, value the config unless brief.
func clusterNotification(bucket string, snap clusterSnapshot, withConfig bool) (rawPacket, error) {
	var extras [16]byte
	binary.BigEndian.PutUint64(extras[:8], uint64(snap.version.epoch))
	binary.BigEndian.PutUint64(extras[8:], uint64(snap.version.rev))
	req := gm.MCRequest{Opcode: clustermapChangeNotification, Extras: extras[:], Key: []byte(bucket)}
	if withConfig {
		req.Body, req.DataType = snap.json, gm.DatatypeFlagJSON
	}
	p, err := req.AppendTo(nil)
	if err != nil {
		return nil, err
	}
	p[0] = gm.ServerRequestMagic
	return p, nil
}

// clustermapChangeNotification is the server request's opcode.
const clustermapChangeNotification = gm.CommandCode(0x01)

// rawPacket is an encoded packet, for Conn.Send.
type rawPacket []byte

func (p rawPacket) Size() int                           { return len(p) }
func (p rawPacket) AppendTo(dst []byte) ([]byte, error) { return append(dst, p...), nil }

var _ memcached.Packet = rawPacket(nil)
