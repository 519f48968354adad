package ring

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
)

// ErrNoServers is returned by New for an empty server list.
var ErrNoServers = errors.New("ring: no servers")

// Distribution is a way of placing keys on servers: one of the ecosystem's,
// reproduced exactly.
type Distribution uint8

const (
	// KetamaWeighted is libmemcached's MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED
	// (PHP memcached's OPT_LIBKETAMA_COMPATIBLE): each server gets
	// floor(40·n·weight/total)·4 points (n servers, 160 on average), four
	// from each MD5 digest of "host-i" ("host:port-i" when the port is not
	// 11211); the key hash is MD5. It is the zero Config's.
	KetamaWeighted Distribution = iota
	// Ketama is libmemcached's MEMCACHED_BEHAVIOR_KETAMA alone: 100 points
	// per server, each the key hash (OneAtATime unless Config.Hash says
	// otherwise, as MEMCACHED_BEHAVIOR_HASH does) of "host-i" or
	// "host:port-i". As in libmemcached when servers are added after the
	// behaviour is set, a server of weight above 1 switches the points to
	// KetamaWeighted's (MD5, weighted) while the key hash stays Config.Hash.
	Ketama
	// Twemproxy is twemproxy's (nutcracker 0.5.0) "distribution: ketama":
	// KetamaWeighted's points, over the server's name when it has one, else
	// "host" for port 11211 and "host:port" otherwise (its configuration's
	// text: see ParseTwemproxyServer); the key hash is the pool's "hash:",
	// FNV1a64 by default, and an empty key hashes to 0.
	Twemproxy
	// Modula is libmemcached's default MEMCACHED_DISTRIBUTION_MODULA and
	// twemproxy's "modula": the key hash (OneAtATime by default) modulo
	// the number of servers.
	Modula
	// ServerList is bradfitz/gomemcache's memcache.ServerList: the IEEE
	// CRC-32 of the key's first 256 bytes modulo the number of servers.
	// Like gomemcache, list a server twice to give it twice the keys.
	ServerList

	numDistributions
)

var distNames = [numDistributions]string{
	KetamaWeighted: "ketama_weighted",
	Ketama:         "ketama",
	Twemproxy:      "twemproxy",
	Modula:         "modula",
	ServerList:     "serverlist",
}

// String returns a short name for d ("ketama_weighted", "twemproxy", ...).
func (d Distribution) String() string {
	if d < numDistributions {
		return distNames[d]
	}
	return "ring.Distribution(" + strconv.Itoa(int(d)) + ")"
}

// Config chooses how a Ring places keys. Its zero value is libmemcached's
// KetamaWeighted with MD5.
type Config struct {
	Distribution Distribution
	// Hash is the key hash; HashDefault is the distribution's own. Ketama
	// and Modula take any; KetamaWeighted is MD5 in libmemcached unless
	// MEMCACHED_BEHAVIOR_HASH is set after it, which Hash reproduces;
	// Twemproxy takes its pool's "hash:"; ServerList only CRC32IEEE.
	Hash Hash
	// HashTag is twemproxy's "hash_tag:", two characters such as "{}":
	// when a key holds the first, then later the second with at least one
	// byte between them, only the bytes between are hashed. Empty hashes
	// the whole key. Any distribution takes it.
	HashTag string
}

// Server is one server of a ring, as the configuration of libmemcached,
// twemproxy or gomemcache names it.
type Server struct {
	// Addr is "host:port", "host" (port 11211), "[ipv6]:port" or a unix
	// socket's path (starting with '/'). The host is hashed as written:
	// a hostname and its IP address are different servers to ketama.
	Addr string
	// Weight is the server's share of the keys in KetamaWeighted, Ketama
	// and Twemproxy; 0 counts as 1, as in libmemcached.
	Weight int
	// Name, when set, is hashed by Twemproxy in place of the address (the
	// "name" after a server in twemproxy's configuration).
	Name string
}

// Ring maps keys to servers. A Ring is immutable once New returns it and
// safe for concurrent use; a lookup does not allocate. To follow a list
// that changes (servers ejected and restored, as libmemcached and twemproxy
// do on failures), build a new Ring from the servers still in it: both
// rebuild their continuum from the live servers alone, which is what New
// computes for that shorter list.
type Ring struct {
	dist   Distribution
	hash   Hash
	n      int
	tag    [2]byte
	hasTag bool
	points []point // the continuum, by value then server index
}

// point is one point of a ketama continuum.
type point struct {
	value uint32
	index uint32
}

// New returns the Ring that places keys on servers as c says. A key's
// server is reported by its index in servers. New fails with ErrNoServers
// for an empty list, and for an address or weight the distribution cannot
// take.
func New(servers []Server, c Config) (*Ring, error) {
	if c.Distribution >= numDistributions {
		return nil, fmt.Errorf("ring: unknown distribution %d", c.Distribution)
	}
	if c.Hash >= numHashes {
		return nil, fmt.Errorf("ring: unknown hash %d", c.Hash)
	}
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	if len(servers) > math.MaxInt32 {
		return nil, errors.New("ring: too many servers")
	}
	r := &Ring{dist: c.Distribution, hash: c.Hash, n: len(servers)}
	if r.hash == HashDefault {
		r.hash = defaultHash[r.dist]
	}
	if r.dist == ServerList && r.hash != CRC32IEEE {
		return nil, errors.New("ring: ServerList hashes with CRC32IEEE only")
	}
	switch len(c.HashTag) {
	case 0:
	case 2:
		r.tag, r.hasTag = [2]byte{c.HashTag[0], c.HashTag[1]}, true
	default:
		return nil, fmt.Errorf("ring: hash tag %q is not two characters", c.HashTag)
	}
	ids := make([]string, len(servers))
	weights := make([]uint64, len(servers))
	weighted := r.dist == KetamaWeighted || r.dist == Twemproxy
	for i, s := range servers {
		if s.Weight < 0 || uint64(s.Weight) > math.MaxUint32 {
			return nil, fmt.Errorf("ring: server %q: weight %d out of range", s.Addr, s.Weight)
		}
		weights[i] = max(uint64(s.Weight), 1)
		if weights[i] > 1 && r.dist == Ketama {
			weighted = true
		}
		id, err := s.id(r.dist)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	switch r.dist {
	case Ketama, KetamaWeighted, Twemproxy:
		var err error
		if weighted {
			r.points, err = weightedContinuum(ids, weights, r.dist == Twemproxy)
		} else {
			r.points = hashedContinuum(ids, r.hash)
		}
		if err != nil {
			return nil, err
		}
		if len(r.points) == 0 {
			return nil, errors.New("ring: no points on the continuum")
		}
	}
	return r, nil
}

var defaultHash = [numDistributions]Hash{
	KetamaWeighted: MD5,
	Ketama:         OneAtATime,
	Twemproxy:      FNV1a64,
	Modula:         OneAtATime,
	ServerList:     CRC32IEEE,
}

// id returns the text that ketama hashes for s, before its "-i".
func (s Server) id(d Distribution) (string, error) {
	if s.Addr == "" {
		return "", errors.New("ring: server with an empty address")
	}
	if s.Addr[0] == '/' {
		// A unix socket: libmemcached's port is 0 and is written;
		// twemproxy writes the ':' its "path:weight" puts after the path.
		if d == Twemproxy {
			if s.Name != "" {
				return s.Name, nil
			}
			return s.Addr + ":", nil
		}
		return s.Addr + ":0", nil
	}
	host, raw, port, err := splitAddr(s.Addr)
	if err != nil {
		return "", err
	}
	if d == Twemproxy {
		if s.Name != "" {
			return s.Name, nil
		}
		if port == defaultPort {
			return raw, nil
		}
		return raw + ":" + strconv.Itoa(port), nil
	}
	if port == defaultPort {
		return host, nil
	}
	return host + ":" + strconv.Itoa(port), nil
}

const defaultPort = 11211

// splitAddr splits "host:port" or "host" into the host (without an IPv6
// address's brackets), the host as written and the port (11211 when absent
// or 0, as libmemcached takes it).
func splitAddr(addr string) (host, raw string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: "host", "[::1]" or a bare "::1".
		raw, host = addr, addr
		lb, rb := strings.HasPrefix(addr, "["), strings.HasSuffix(addr, "]")
		if lb && rb {
			host = addr[1 : len(addr)-1]
		}
		if lb != rb || host == "" || strings.ContainsAny(host, "[]") ||
			(!lb && strings.Count(host, ":") == 1) {
			return "", "", 0, fmt.Errorf("ring: bad server address %q", addr)
		}
		return host, raw, defaultPort, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || h == "" {
		return "", "", 0, fmt.Errorf("ring: bad server address %q", addr)
	}
	if n == 0 {
		n = defaultPort
	}
	return h, addr[:strings.LastIndexByte(addr, ':')], int(n), nil
}

// hashedContinuum is libmemcached's unweighted ketama: 100 points per
// server, point i the key hash of "id-i".
func hashedContinuum(ids []string, h Hash) []point {
	const perServer = 100
	pts := make([]point, 0, perServer*len(ids))
	buf := make([]byte, 0, 64)
	for i, id := range ids {
		for j := range perServer {
			buf = strconv.AppendUint(append(append(buf[:0], id...), '-'), uint64(j), 10)
			pts = append(pts, point{sum(h, buf), uint32(i)})
		}
	}
	sortPoints(pts)
	return pts
}

// weightedContinuum is libmemcached's weighted ketama (twemproxy's with
// twem): each server's share of 40·n MD5 digests of "id-i", four points
// from each.
func weightedContinuum(ids []string, weights []uint64, twem bool) ([]point, error) {
	var total uint64
	for _, w := range weights {
		total += w
	}
	if twem && total > math.MaxUint32 {
		// twemproxy sums weights in 32 bits: it would wrap.
		return nil, errors.New("ring: twemproxy's weights sum past 2^32")
	}
	live := float32(len(ids))
	pts := make([]point, 0, 160*len(ids))
	buf := make([]byte, 0, 64)
	for i, id := range ids {
		// Both compute in float (explicit conversions keep Go from
		// fusing the steps); libmemcached adds 1e-10 as a float,
		// twemproxy as a double.
		pct := float32(weights[i]) / float32(total)
		v := float32(float32(float32(pct*160)/4) * live)
		var hashes uint32
		if twem {
			hashes = uint32(math.Floor(float64(float32(float64(v) + 0.0000000001))))
		} else {
			hashes = uint32(math.Floor(float64(float32(v + 0.0000000001))))
		}
		for j := range hashes {
			buf = strconv.AppendUint(append(append(buf[:0], id...), '-'), uint64(j), 10)
			d := md5.Sum(buf)
			for a := range 4 {
				pts = append(pts, point{binary.LittleEndian.Uint32(d[4*a:]), uint32(i)})
			}
		}
	}
	sortPoints(pts)
	return pts, nil
}

// sortPoints orders a continuum by value, then server index, as
// libmemcached does. twemproxy sorts by value alone with qsort, which
// leaves two servers' equal points (a 32-bit collision) in an order of
// glibc's choosing; glibc's qsort keeps them as built, which is this.
func sortPoints(pts []point) {
	slices.SortFunc(pts, func(a, b point) int {
		if a.value != b.value {
			if a.value < b.value {
				return -1
			}
			return 1
		}
		return int(a.index) - int(b.index)
	})
}

// Len returns the number of servers.
func (r *Ring) Len() int { return r.n }

// Distribution returns the ring's distribution.
func (r *Ring) Distribution() Distribution { return r.dist }

// Hash returns the key hash the ring uses.
func (r *Ring) Hash() Hash { return r.hash }

// Pick returns the index of key's server in the list given to New. A zero
// Ring, which has no servers, returns -1.
func (r *Ring) Pick(key string) int { return pick(r, key) }

// PickBytes is Pick for a key held in bytes.
func (r *Ring) PickBytes(key []byte) int { return pick(r, key) }

func pick[K bytesOrString](r *Ring, key K) int {
	switch {
	case r.n == 0:
		return -1
	case r.n == 1:
		// libmemcached, twemproxy and gomemcache skip the hash.
		return 0
	}
	if r.hasTag {
		key = hashTag(key, r.tag)
	}
	switch r.dist {
	case ServerList:
		if len(key) > 256 {
			key = key[:256] // gomemcache copies the key into 256 bytes
		}
		return int(crc32IEEE(key) % uint32(r.n))
	case Modula:
		return int(sum(r.hash, key) % uint32(r.n))
	}
	var h uint32
	if len(key) > 0 || r.dist != Twemproxy {
		h = sum(r.hash, key)
	}
	return int(r.search(h))
}

// search returns the server of the first point at or after h, wrapping
// past the last to the first.
func (r *Ring) search(h uint32) uint32 {
	lo, hi := 0, len(r.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.points[m].value < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.points) {
		lo = 0
	}
	return r.points[lo].index
}

// hashTag returns the part of key between tag's two characters, as
// twemproxy's hash_tag takes it, or key when there is none.
func hashTag[K bytesOrString](key K, tag [2]byte) K {
	for i := 0; i < len(key); i++ {
		if key[i] != tag[0] {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == tag[1] {
				if j-i > 1 {
					return key[i+1 : j]
				}
				return key
			}
		}
		return key
	}
	return key
}
