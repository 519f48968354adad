package gocache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// SET_CLUSTER_CONFIG: an operator (cmd/gocache-admin, as ns_server does
// for Couchbase) gives a node a bucket's whole map. As kv_engine's
// SetClusterConfig (0xb4): extras the config's epoch and revision (8
// bytes each, the revision at least 1), key the bucket's name, value the
// terse config (JSON). Unlike kv_engine, which takes whatever ns_server
// sends, a node takes only a config newer than its own (else
// KEY_EEXISTS), so that no two configs it serves share a version; the
// config must be of this cluster: the same serverList and numReplicas,
// a row per vbucket (else EINVAL). The new map is served at once,
// pushed to subscribers, and the bucket's replica vbuckets stream from
// the actives it names. It changes no vbucket's state: SET_VBUCKET does,
// and from then on leaves the map alone (it changes it only while the
// map is the one given at start): two nodes bumping their revisions on
// their own could serve different maps at one revision, which clients,
// taking only newer revisions, would never reconcile.

// setClusterConfig is SET_CLUSTER_CONFIG's opcode.
const setClusterConfig = gm.CommandCode(0xb4)

// maxSetClusterConfig bounds SET_CLUSTER_CONFIG's value before it is
// decoded, which allocates up to 16 times the value's size (a map of
// one-digit node indexes): a terse config of 1024 vbuckets and 3
// replicas is 25 KiB, ns_server's of a bucket under 100 KiB.
const maxSetClusterConfig = 1 << 20

// errNotNewer is the error of a pushed config not newer than the node's.
var errNotNewer = errors.New("gocache: cluster config not newer than the node's")

func (h *handler) setClusterConfig(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 16 || len(req.Body) == 0 || req.Cas != 0 ||
		req.DataType&^gm.DatatypeFlagJSON != 0 {
		h.invalid(w, req)
		return
	}
	if len(req.Body) > maxSetClusterConfig {
		w.WriteStatus(req, gm.E2BIG, []byte("gocache: cluster config larger than 1 MiB"))
		return
	}
	v := clusterVersion{int64(binary.BigEndian.Uint64(req.Extras)), int64(binary.BigEndian.Uint64(req.Extras[8:]))}
	if v.rev < 1 || v.epoch < 0 {
		w.WriteStatus(req, gm.EINVAL, []byte("Revision number must not be less than 1"))
		return
	}
	st := state(w)
	b := st.bucket
	if len(req.Key) > 0 {
		// As SELECT_BUCKET: a user limited to some buckets sets only
		// their maps.
		if st.user != nil && !st.user.MayUse(string(req.Key)) {
			h.extended(w, req, gm.EACCESS)
			return
		}
		b = h.srv.buckets[string(req.Key)]
	}
	m := h.srv.clusterMapOf(b)
	if m == nil {
		w.WriteStatus(req, gm.KEY_ENOENT, []byte("gocache: no cluster map for the bucket"))
		return
	}
	snap, err := m.setConfig(v, req.Body, b.cache.VBuckets())
	switch {
	case errors.Is(err, errNotNewer):
		w.WriteStatus(req, gm.KEY_EEXISTS, []byte(err.Error()))
		return
	case err != nil:
		w.WriteStatus(req, gm.EINVAL, []byte(err.Error()))
		return
	}
	h.srv.logger().Info("cluster config set", "bucket", b.name, "epoch", v.epoch, "rev", v.rev)
	h.srv.clusterPush(b, m, snap)
	h.srv.vbucketChanged(b, 0, 0) // the replicas' sources may have moved
	succeeded(w, req)
}

// setConfig makes the map of data, a terse config, m's at version v if v
// is newer than m's, and returns the new snapshot.
func (m *clusterMap) setConfig(v clusterVersion, data []byte, vbuckets int) (clusterSnapshot, error) {
	var t terseConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&t); err != nil {
		return clusterSnapshot{}, fmt.Errorf("gocache: cluster config: %w", err)
	}
	if dec.More() {
		return clusterSnapshot{}, errors.New("gocache: cluster config: data after the JSON object")
	}
	c := m.cfg
	vm := &t.VBServerMap
	switch {
	case t.NodeLocator != "vbucket" || vm.HashAlgorithm != "CRC":
		return clusterSnapshot{}, errors.New("gocache: cluster config: want a vbucket map hashed with CRC")
	case !slices.Equal(vm.ServerList, c.Nodes):
		return clusterSnapshot{}, fmt.Errorf("gocache: cluster config: serverList %q is not this cluster's %q", vm.ServerList, c.Nodes)
	case vm.NumReplicas != c.Replicas:
		return clusterSnapshot{}, fmt.Errorf("gocache: cluster config: numReplicas %d, this cluster has %d", vm.NumReplicas, c.Replicas)
	}
	check := ClusterConfig{Nodes: c.Nodes, Self: c.Self, Replicas: c.Replicas, VBucketMap: vm.VBucketMap}
	if vm.VBucketMap == nil {
		return clusterSnapshot{}, errors.New("gocache: cluster config: no vBucketMap")
	}
	if err := check.check(vbuckets); err != nil {
		return clusterSnapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.snap.version.less(v) {
		return m.snap, fmt.Errorf("%w: %d.%d, the node's %d.%d", errNotNewer, v.epoch, v.rev, m.snap.version.epoch, m.snap.version.rev)
	}
	m.epoch, m.rev, m.vbmap, m.set = v.epoch, v.rev, vm.VBucketMap, true
	m.encode()
	return m.snap, nil
}

// source returns the address of the node the map names active for vb, ""
// if none or this node. A node listed as "$HOST:port" is taken to be on
// this node's host (localhost if this node is "$HOST" too).
func (m *clusterMap) source(vb uint16) string {
	m.mu.Lock()
	n := -1
	if int(vb) < len(m.vbmap) {
		n = m.vbmap[vb][0]
	}
	m.mu.Unlock()
	if n < 0 || n == m.cfg.Self {
		return ""
	}
	addr := m.cfg.Nodes[n]
	if port, ok := strings.CutPrefix(addr, hostPlaceholder+":"); ok {
		host, _, _ := net.SplitHostPort(m.cfg.Nodes[m.cfg.Self])
		if host == hostPlaceholder {
			host = "localhost"
		}
		addr = net.JoinHostPort(host, port)
	}
	return addr
}

// hostPlaceholder is the host a config leaves for clients to fill in.
const hostPlaceholder = "$HOST"
