package gocache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Each bucket has a collections manifest, Couchbase's: scopes holding
// collections, each with a name and an id, the whole with a uid that grows
// with every change. The default collection (_default._default, id 0)
// always exists unless a manifest drops it. Keys of a connection that
// negotiated Collections start with their collection id; others are in the
// default collection.

// manifest is a bucket's collections manifest, never modified once made.
type manifest struct {
	uid    uint64
	scopes []scopeSpec
	byID   map[uint32]*collectionSpec
	json   []byte // as GET_COLLECTIONS_MANIFEST sends it
}

type scopeSpec struct {
	name        string
	uid         uint32
	collections []collectionSpec
}

type collectionSpec struct {
	name   string
	uid    uint32
	scope  uint32
	maxTTL uint32
}

// manifestJSON is a manifest as Couchbase writes it: uids in hexadecimal
// strings.
type manifestJSON struct {
	UID    string `json:"uid"`
	Scopes []struct {
		Name        string `json:"name"`
		UID         string `json:"uid"`
		Collections []struct {
			Name   string  `json:"name"`
			UID    string  `json:"uid"`
			MaxTTL *uint32 `json:"maxTTL,omitempty"`
		} `json:"collections"`
	} `json:"scopes"`
}

// defaultManifestJSON is the manifest of a new bucket.
const defaultManifestJSON = `{"uid":"0","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]}]}`

func defaultManifest() *manifest {
	m, err := parseManifest([]byte(defaultManifestJSON))
	if err != nil {
		panic(err)
	}
	return m
}

// errManifest is the error of a manifest gocache cannot apply.
var errManifest = errors.New("gocache: invalid collections manifest")

// Couchbase's bounds on a cluster's scopes and collections, the default
// ones counted; a gocache bucket is a cluster of its own. (ns_server
// enforces them: kv_engine takes whatever manifest it is given.)
const (
	maxScopes      = 1000
	maxCollections = 1000
)

// parseManifest reads and checks a manifest: unique names and ids, ids of
// 8 and up but the default scope's and collection's 0, names as Couchbase
// allows them, at most maxScopes scopes and maxCollections collections.
func parseManifest(data []byte) (*manifest, error) {
	var mj manifestJSON
	if err := json.Unmarshal(data, &mj); err != nil {
		return nil, fmt.Errorf("%w: %v", errManifest, err)
	}
	collections := 0
	for i := range mj.Scopes {
		collections += len(mj.Scopes[i].Collections)
	}
	switch {
	case len(mj.Scopes) > maxScopes:
		return nil, fmt.Errorf("%w: %d scopes, more than %d", errManifest, len(mj.Scopes), maxScopes)
	case collections > maxCollections:
		return nil, fmt.Errorf("%w: %d collections, more than %d", errManifest, collections, maxCollections)
	}
	uid, err := strconv.ParseUint(mj.UID, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: uid %q", errManifest, mj.UID)
	}
	m := &manifest{uid: uid, byID: map[uint32]*collectionSpec{}}
	scopeNames, scopeIDs := map[string]bool{}, map[uint32]bool{}
	for _, sj := range mj.Scopes {
		sid, err := parseID(sj.UID, sj.Name)
		if err != nil {
			return nil, err
		}
		if scopeNames[sj.Name] || scopeIDs[sid] {
			return nil, fmt.Errorf("%w: scope %q (%#x) twice", errManifest, sj.Name, sid)
		}
		scopeNames[sj.Name], scopeIDs[sid] = true, true
		sc := scopeSpec{name: sj.Name, uid: sid}
		names := map[string]bool{}
		for _, cj := range sj.Collections {
			cid, err := parseID(cj.UID, cj.Name)
			if err != nil {
				return nil, err
			}
			if cid == 0 && sid != 0 {
				return nil, fmt.Errorf("%w: the default collection outside the default scope", errManifest)
			}
			if names[cj.Name] || m.byID[cid] != nil {
				return nil, fmt.Errorf("%w: collection %q (%#x) twice", errManifest, cj.Name, cid)
			}
			names[cj.Name] = true
			c := collectionSpec{name: cj.Name, uid: cid, scope: sid}
			if cj.MaxTTL != nil {
				c.maxTTL = *cj.MaxTTL
			}
			sc.collections = append(sc.collections, c)
			m.byID[cid] = &sc.collections[len(sc.collections)-1]
		}
		m.scopes = append(m.scopes, sc)
	}
	// byID points into collections slices that may have moved as they
	// grew: index again.
	for i := range m.scopes {
		for j := range m.scopes[i].collections {
			c := &m.scopes[i].collections[j]
			m.byID[c.uid] = c
		}
	}
	m.json = m.encode()
	return m, nil
}

// parseID reads a scope or collection id, in hexadecimal, and checks its
// name: _default goes with id 0, other ids are 8 and up (0 to 7 are
// reserved), and names are 1 to 251 of A-Z a-z 0-9 _ - %, not starting
// with _ or %.
func parseID(hex, name string) (uint32, error) {
	id, err := strconv.ParseUint(hex, 16, 32)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: uid %q of %q", errManifest, hex, name)
	case (name == "_default") != (id == 0):
		return 0, fmt.Errorf("%w: %q has uid %#x", errManifest, name, id)
	case id != 0 && id < 8:
		return 0, fmt.Errorf("%w: uid %#x is reserved", errManifest, id)
	case name == "_default":
		return 0, nil
	case len(name) == 0 || len(name) > 251 || name[0] == '_' || name[0] == '%':
		return 0, fmt.Errorf("%w: name %q", errManifest, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '%') {
			return 0, fmt.Errorf("%w: name %q", errManifest, name)
		}
	}
	return uint32(id), nil
}

// encode writes m as Couchbase writes a manifest.
func (m *manifest) encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"uid":"%x","scopes":[`, m.uid)
	for i, s := range m.scopes {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,"uid":"%x","collections":[`, s.name, s.uid)
		for j, c := range s.collections {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":%q,"uid":"%x"`, c.name, c.uid)
			if c.maxTTL != 0 {
				fmt.Fprintf(&b, `,"maxTTL":%d`, c.maxTTL)
			}
			b.WriteByte('}')
		}
		b.WriteString("]}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// lookup returns the collection named by a path "scope.collection"
// (an empty part is _default).
func (m *manifest) lookup(path string) (scope *scopeSpec, c *collectionSpec, err error) {
	sname, cname, ok := strings.Cut(path, ".")
	if !ok || strings.Contains(cname, ".") {
		return nil, nil, errManifest
	}
	sname, cname = cmpOr(sname, "_default"), cmpOr(cname, "_default")
	for i := range m.scopes {
		if m.scopes[i].name != sname {
			continue
		}
		s := &m.scopes[i]
		for j := range s.collections {
			if s.collections[j].name == cname {
				return s, &s.collections[j], nil
			}
		}
		return s, nil, nil
	}
	return nil, nil, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// hasCollection reports whether the bucket's manifest has collection cid.
func (b *bucket) hasCollection(cid uint32) bool { return b.manifest.Load().byID[cid] != nil }

// setManifest replaces the bucket's manifest with m, recording its system
// events and dropping the items of every collection m no longer has. A
// manifest must have a uid above the present one, or the same uid and
// the same content; errAhead says the bucket's is newer, errEventsNoRoom
// that memory would not take its events (nothing is changed). Once m is
// in force, a vbucket that fails to record its events is logged and
// counted (recordEvents), and m stays: the answer is nil.
func (b *bucket) setManifest(m *manifest) error {
	// One change at a time, so that each vbucket's system events follow
	// the manifests in order (dcp_events.go).
	b.manifestMu.Lock()
	defer b.manifestMu.Unlock()
	for {
		old := b.manifest.Load()
		switch {
		case m.uid < old.uid:
			return errAhead
		case m.uid == old.uid && string(m.json) == string(old.json):
			return nil
		case m.uid == old.uid:
			return fmt.Errorf("%w: uid %x is the present one's, with other content", errManifest, m.uid)
		}
		evs := cacheEvents(old, m)
		if err := b.eventsFit(evs, -1); err != nil {
			return err
		}
		if !b.manifest.CompareAndSwap(old, m) {
			continue
		}
		b.recordEvents(evs, -1) // a failure is logged
		for cid := range old.byID {
			if m.byID[cid] == nil {
				b.cache.DropCollection(cid)
			}
		}
		return nil
	}
}

var errAhead = errors.New("gocache: the bucket's manifest is ahead")

// unknownCollection answers UNKNOWN_COLLECTION with the manifest's uid,
// as Couchbase does, so that the client knows which manifest to fetch.
func (h *handler) unknownCollection(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket) {
	h.extendedBody(w, req, gm.UNKNOWN_COLLECTION, fmt.Appendf(nil, `{"manifest_uid":"%x"}`, b.manifest.Load().uid))
}

// getManifest serves GET_COLLECTIONS_MANIFEST.
func (h *handler) getManifest(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: b.manifest.Load().json, DataType: sentDatatype(state(w), gm.DatatypeFlagJSON)}
	w.WriteResponse(&res)
}

// setManifestCmd serves COLLECTIONS_SET_MANIFEST: the value is the new
// manifest.
func (h *handler) setManifestCmd(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) == 0 {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	m, err := parseManifest(req.Body)
	if err == nil {
		err = b.setManifest(m)
	}
	switch {
	case err == nil:
		succeeded(w, req)
	case errors.Is(err, errAhead):
		h.extendedBody(w, req, gm.COLLECTIONS_MANIFEST_AHEAD, nil)
	case errors.Is(err, errEventsNoRoom):
		w.WriteStatus(req, gm.ENOMEM, []byte(err.Error()))
	default:
		h.extendedBody(w, req, gm.CANNOT_APPLY_COLLECTIONS_MANIFEST, []byte(err.Error()))
	}
}

// getID serves COLLECTIONS_GET_CID and COLLECTIONS_GET_SCOPE_ID: the path
// ("scope.collection", or "scope" for a scope) is in the key or, as older
// clients send it, the value. The answer's extras are the manifest uid (8)
// and the id (4).
func (h *handler) getID(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || (len(req.Key) == 0) == (len(req.Body) == 0) {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	path := string(req.Key)
	if path == "" {
		path = string(req.Body)
	}
	m := b.manifest.Load()
	var id uint32
	if req.Opcode == gm.COLLECTIONS_GET_SCOPE_ID {
		if strings.Contains(path, ".") {
			h.invalid(w, req)
			return
		}
		s, _, _ := m.lookup(path + ".")
		if s == nil {
			h.extendedBody(w, req, gm.UNKNOWN_SCOPE, fmt.Appendf(nil, `{"manifest_uid":"%x"}`, m.uid))
			return
		}
		id = s.uid
	} else {
		s, c, err := m.lookup(path)
		switch {
		case err != nil:
			h.invalid(w, req)
			return
		case s == nil:
			h.extendedBody(w, req, gm.UNKNOWN_SCOPE, fmt.Appendf(nil, `{"manifest_uid":"%x"}`, m.uid))
			return
		case c == nil:
			h.unknownCollection(w, req, b)
			return
		}
		id = c.uid
	}
	var ex [12]byte
	binary.BigEndian.PutUint64(ex[:8], m.uid)
	binary.BigEndian.PutUint32(ex[8:], id)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Extras: ex[:]}
	w.WriteResponse(&res)
}
