package memcached

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strings"

	"github.com/f8e615c8/gomemcached"
)

// ClusterConfig is a bucket's cluster map as Couchbase's KV engine (and
// gocache with -o cluster=) serves it: the terse bucket config's
// revision, its vbucket map and the servers the map's entries index.
type ClusterConfig struct {
	// Rev and RevEpoch order configs: a config is newer if its epoch is
	// greater, or its epoch is the same and its Rev greater.
	Rev, RevEpoch int64
	// Name is the bucket's.
	Name string
	// NumReplicas is the number of replicas of each vbucket.
	NumReplicas int
	// ServerList holds the servers' memcached addresses, "host:port",
	// "$HOST" replaced with the host the client connected to.
	ServerList []string
	// VBucketMap has a row per vbucket: the index in ServerList of its
	// active copy, then of its replicas; -1 where there is none.
	VBucketMap [][]int
	// Nodes are the config's nodesExt: each node's host and KV port.
	Nodes []ClusterNode
}

// ClusterNode is one node of a ClusterConfig's nodesExt.
type ClusterNode struct {
	Hostname string
	KVPort   int  // 0 if the node serves no KV
	ThisNode bool // the node the config came from
}

// Newer reports whether c is a newer config than old (nil: none).
func (c *ClusterConfig) Newer(old *ClusterConfig) bool {
	return old == nil || c.RevEpoch > old.RevEpoch || c.RevEpoch == old.RevEpoch && c.Rev > old.Rev
}

// VBucketForKey returns the vbucket of key: crc32 (IEEE) of the key, its
// bits 16 to 30, modulo the number of vbuckets, as Couchbase's clients
// compute it (the "CRC" hash algorithm).
func (c *ClusterConfig) VBucketForKey(key string) uint16 {
	return VBucketForKey(key, len(c.VBucketMap))
}

// VBucketForKey returns the vbucket of key among n (n > 0), as
// ClusterConfig.VBucketForKey.
func VBucketForKey(key string, n int) uint16 {
	crc := crc32.ChecksumIEEE([]byte(key))
	return uint16((crc >> 16) & 0x7fff % uint32(n))
}

// Server returns the address of copy i of vbucket vb (0: the active, 1
// on: the replicas), false if the map has none.
func (c *ClusterConfig) Server(vb uint16, i int) (string, bool) {
	if int(vb) >= len(c.VBucketMap) || i < 0 || i >= len(c.VBucketMap[vb]) {
		return "", false
	}
	n := c.VBucketMap[vb][i]
	if n < 0 || n >= len(c.ServerList) {
		return "", false
	}
	return c.ServerList[n], true
}

// ErrBadClusterConfig is the error of a cluster config that does not
// parse or whose map does not fit its server list.
var ErrBadClusterConfig = errors.New("memcached: malformed cluster config")

type badClusterConfig struct{ msg string }

func (e *badClusterConfig) Error() string        { return ErrBadClusterConfig.Error() + ": " + e.msg }
func (e *badClusterConfig) Is(target error) bool { return target == ErrBadClusterConfig }

func badConfig(format string, args ...any) error {
	return &badClusterConfig{fmt.Sprintf(format, args...)}
}

// The terse config's fields read here.
type terseConfig struct {
	Rev         int64  `json:"rev"`
	RevEpoch    int64  `json:"revEpoch"`
	Name        string `json:"name"`
	NodeLocator string `json:"nodeLocator"`
	NodesExt    []struct {
		Services map[string]int `json:"services"`
		Hostname string         `json:"hostname"`
		ThisNode bool           `json:"thisNode"`
	} `json:"nodesExt"`
	VBServerMap *struct {
		HashAlgorithm string   `json:"hashAlgorithm"`
		NumReplicas   int      `json:"numReplicas"`
		ServerList    []string `json:"serverList"`
		VBucketMap    [][]int  `json:"vBucketMap"`
	} `json:"vBucketServerMap"`
}

// hostPlaceholder is what a config names the node it came from by.
const hostPlaceholder = "$HOST"

// ParseClusterConfig parses a terse bucket config (the value of
// GET_CLUSTER_CONFIG, of NOT_MY_VBUCKET, of a clustermap notification),
// putting host, the host the config came from, in place of "$HOST". It
// needs a vbucket map hashed with CRC whose entries index its server
// list; an error matches ErrBadClusterConfig.
func ParseClusterConfig(data []byte, host string) (*ClusterConfig, error) {
	var t terseConfig
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, badConfig("%v", err)
	}
	if t.NodeLocator != "vbucket" || t.VBServerMap == nil {
		return nil, badConfig("nodeLocator %q: no vbucket map", t.NodeLocator)
	}
	m := t.VBServerMap
	if m.HashAlgorithm != "CRC" {
		return nil, badConfig("hashAlgorithm %q, want CRC", m.HashAlgorithm)
	}
	if len(m.VBucketMap) == 0 || len(m.VBucketMap) > 1<<16 {
		return nil, badConfig("%d vbuckets", len(m.VBucketMap))
	}
	if m.NumReplicas < 0 {
		return nil, badConfig("numReplicas %d", m.NumReplicas)
	}
	for vb, row := range m.VBucketMap {
		if len(row) == 0 {
			return nil, badConfig("vbucket %d has no entry", vb)
		}
		for _, n := range row {
			if n < -1 || n >= len(m.ServerList) {
				return nil, badConfig("vbucket %d names server %d of %d", vb, n, len(m.ServerList))
			}
		}
	}
	c := &ClusterConfig{Rev: t.Rev, RevEpoch: t.RevEpoch, Name: t.Name, NumReplicas: m.NumReplicas,
		ServerList: make([]string, len(m.ServerList)), VBucketMap: m.VBucketMap}
	for i, s := range m.ServerList {
		if rest, ok := strings.CutPrefix(s, hostPlaceholder+":"); ok && host != "" {
			s = net.JoinHostPort(host, rest)
		}
		c.ServerList[i] = s
	}
	for _, n := range t.NodesExt {
		h := n.Hostname
		if (h == hostPlaceholder || h == "") && host != "" {
			h = host // nodesExt leaves the hostname out for the node itself
		}
		c.Nodes = append(c.Nodes, ClusterNode{Hostname: h, KVPort: n.Services["kv"], ThisNode: n.ThisNode})
	}
	return c, nil
}

// ClusterConfig asks the server for the selected bucket's cluster config
// (GET_CLUSTER_CONFIG) and parses it, "$HOST" replaced with the host the
// client is connected to. A server without one answers KEY_ENOENT
// (gomemcached.ErrKeyNotFound); memcached, UNKNOWN_COMMAND.
func (c *Client) ClusterConfig(ctx context.Context) (*ClusterConfig, error) {
	res, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET_CLUSTER_CONFIG})
	if err != nil {
		return nil, err
	}
	return ParseClusterConfig(res.Body, c.remoteHost())
}

// remoteHost is the host of the server's address, "" if the connection
// has none.
func (c *Client) remoteHost() string {
	rc, ok := c.c.rw.(interface{ RemoteAddr() net.Addr })
	if !ok {
		return ""
	}
	a := rc.RemoteAddr()
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	return host
}
