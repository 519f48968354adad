package memcached

import (
	"encoding/json"
	"errors"
	"strconv"
)

// CollectionsFilter selects what a collections stream sends (the JSON
// value of a stream request, kv_engine's stream-request.md): a list of
// collections or one scope, optionally resuming from a manifest uid or
// tagged with a stream id.
type CollectionsFilter struct {
	ManifestUid    uint64
	UseManifestUid bool
	StreamId       uint16
	UseStreamId    bool

	// Use either ScopeId OR CollectionsList, not both
	CollectionsList []uint32
	ScopeId         uint32
}

// IsValid reports whether the filter can be sent: not both a manifest uid
// and a stream id, not both collections and a (non-zero) scope.
func (c *CollectionsFilter) IsValid() error {
	if c.UseManifestUid && c.UseStreamId {
		return errors.New("memcached: collections filter: manifest uid with stream id is not implemented")
	}
	if len(c.CollectionsList) > 0 && c.ScopeId > 0 {
		return errors.New("memcached: collections filter: both a collection list and a scope id")
	}
	return nil
}

// The shapes of the filter's JSON, in the reference's field order.
type (
	filterUID struct {
		UID string `json:"uid"`
	}
	filterCollections struct {
		Collections []string `json:"collections"`
	}
	filterUIDCollections struct {
		UID         string   `json:"uid"`
		Collections []string `json:"collections"`
	}
	filterScope struct {
		Scope string `json:"scope"`
	}
	filterSIDCollections struct {
		Collections []string `json:"collections"`
		SID         uint16   `json:"sid"`
	}
	filterSIDScope struct {
		Scope string `json:"scope"`
		SID   uint16 `json:"sid"`
	}
)

func hexID(v uint64) string { return strconv.FormatUint(v, 16) }

func (c *CollectionsFilter) hexCollections() []string {
	out := make([]string, len(c.CollectionsList))
	for i, id := range c.CollectionsList {
		out[i] = hexID(uint64(id))
	}
	return out
}

// ToStreamReqBody returns the filter as the JSON value of a stream
// request. A scope without a stream id is sent as {"scope": id}, which
// kv_engine accepts and the reference refuses; a filter that names
// nothing (no collections, scope 0, no uid, no stream id) is an error.
func (c *CollectionsFilter) ToStreamReqBody() ([]byte, error) {
	if err := c.IsValid(); err != nil {
		return nil, err
	}
	var v any
	list := len(c.CollectionsList) > 0
	switch {
	case c.UseStreamId && list:
		v = filterSIDCollections{c.hexCollections(), c.StreamId}
	case c.UseStreamId:
		v = filterSIDScope{hexID(uint64(c.ScopeId)), c.StreamId}
	case c.UseManifestUid && list:
		v = filterUIDCollections{hexID(c.ManifestUid), c.hexCollections()}
	case c.UseManifestUid:
		v = filterUID{hexID(c.ManifestUid)}
	case list:
		v = filterCollections{c.hexCollections()}
	case c.ScopeId > 0:
		v = filterScope{hexID(uint64(c.ScopeId))}
	default:
		return nil, errors.New("memcached: collections filter names no collection or scope")
	}
	return json.Marshal(v)
}
