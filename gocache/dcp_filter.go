package gocache

import (
	"encoding/json"
	"errors"
	"strconv"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
)

// A stream's filter decides which documents and system events it sends,
// as kv_engine's Collections::VB::Filter: a connection that is not
// collections-aware gets the default collection's documents only, keys
// without their collection id, and no system events (legacy); a
// collections-aware one gets everything (passthrough), or with the
// stream request's JSON value the collections it lists
// ({"collections":["8","9"]}) or those of one scope ({"scope":"8"}),
// with their system events. A collection dropped leaves the filter; a
// filter left with nothing (or whose scope is dropped) ends the stream
// (STREAM_END, filter empty).

type filterMode uint8

const (
	filterLegacy filterMode = iota
	filterPassthrough
	filterCollections
	filterScope
)

// dcpFilter is a stream's filter. It is its stream's, used by the
// producer's goroutine only.
type dcpFilter struct {
	mode         filterMode
	scope        uint32
	cids         map[uint32]bool // filterCollections and filterScope; legacy: {0} until dropped
	scopeDropped bool
}

// streamValue is the JSON value of a stream request (stream-request-value.md).
type streamValue struct {
	UID         *json.RawMessage `json:"uid"`
	SID         *json.RawMessage `json:"sid"`
	Collections *json.RawMessage `json:"collections"`
	Scope       *json.RawMessage `json:"scope"`
	PurgeSeqno  *json.RawMessage `json:"purge_seqno"`
	CTS         *json.RawMessage `json:"cts"`
}

// Errors of a stream request's value; errFilterUnknown* are answered
// with the manifest's uid.
var (
	errFilterInvalid           = errors.New("gocache: invalid stream request value")
	errFilterUnknownCollection = errors.New("gocache: unknown collection in stream filter")
	errFilterUnknownScope      = errors.New("gocache: unknown scope in stream filter")
	errFilterStreamID          = errors.New("gocache: stream id 0")
)

// streamOptions are what a stream request's value asks.
type streamOptions struct {
	filter      *dcpFilter
	sid         uint16
	hasSID      bool
	remotePurge uint64
}

// parseStreamValue reads a stream request's value against manifest m,
// for a connection that is collections-aware (collections) or not (then
// value must be empty, which the caller checks).
func parseStreamValue(value []byte, collections bool, m *manifest) (streamOptions, error) {
	var o streamOptions
	if !collections {
		if m.byID[0] == nil {
			return o, errFilterUnknownCollection
		}
		o.filter = &dcpFilter{mode: filterLegacy, cids: map[uint32]bool{0: true}}
		return o, nil
	}
	o.filter = &dcpFilter{mode: filterPassthrough}
	if len(value) == 0 {
		return o, nil
	}
	var v streamValue
	if err := json.Unmarshal(value, &v); err != nil {
		return o, errFilterInvalid
	}
	if v.UID == nil && v.SID == nil && v.Collections == nil && v.Scope == nil && v.PurgeSeqno == nil && v.CTS == nil {
		return o, errFilterInvalid
	}
	if v.UID != nil {
		var s string
		if json.Unmarshal(*v.UID, &s) != nil {
			return o, errFilterInvalid
		}
	}
	if v.SID != nil {
		var sid uint16
		if json.Unmarshal(*v.SID, &sid) != nil {
			return o, errFilterInvalid
		}
		if sid == 0 {
			return o, errFilterStreamID
		}
		o.sid, o.hasSID = sid, true
	}
	if v.PurgeSeqno != nil {
		var s string
		if json.Unmarshal(*v.PurgeSeqno, &s) != nil {
			return o, errFilterInvalid
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return o, errFilterInvalid
		}
		o.remotePurge = n
	}
	if v.CTS != nil {
		var obj map[string]json.RawMessage
		if json.Unmarshal(*v.CTS, &obj) != nil {
			return o, errFilterInvalid
		}
	}
	switch {
	case v.Collections != nil && v.Scope != nil:
		return o, errFilterInvalid
	case v.Scope != nil:
		var s string
		if json.Unmarshal(*v.Scope, &s) != nil {
			return o, errFilterInvalid
		}
		sid, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return o, errFilterInvalid
		}
		f := &dcpFilter{mode: filterScope, scope: uint32(sid), cids: map[uint32]bool{}}
		found := false
		for _, sc := range m.scopes {
			if sc.uid != f.scope {
				continue
			}
			found = true
			for _, c := range sc.collections {
				f.cids[c.uid] = true
			}
		}
		if !found {
			return o, errFilterUnknownScope
		}
		o.filter = f
	case v.Collections != nil:
		var list []string
		if json.Unmarshal(*v.Collections, &list) != nil {
			return o, errFilterInvalid
		}
		f := &dcpFilter{mode: filterCollections, cids: make(map[uint32]bool, len(list))}
		for _, s := range list {
			cid, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return o, errFilterInvalid
			}
			if m.byID[uint32(cid)] == nil {
				return o, errFilterUnknownCollection
			}
			f.cids[uint32(cid)] = true
		}
		o.filter = f
	}
	return o, nil
}

// filtered reports whether the filter selects some collections only.
func (f *dcpFilter) filtered() bool { return f.mode == filterCollections || f.mode == filterScope }

// empty reports whether the filter has nothing left to send: its stream
// ends.
func (f *dcpFilter) empty() bool {
	switch f.mode {
	case filterScope:
		return f.scopeDropped
	case filterCollections, filterLegacy:
		return len(f.cids) == 0
	}
	return false
}

// doc reports whether the filter takes a document of collection cid.
func (f *dcpFilter) doc(cid uint32) bool {
	if f.mode == filterPassthrough {
		return true
	}
	return f.cids[cid]
}

// event reports whether the filter takes system event e, updating itself
// for it (a collection created in its scope joins it, a dropped one
// leaves it).
func (f *dcpFilter) event(e *sysEvent) bool {
	if e.collection() {
		dropped := false
		if e.event == sysCollectionDrop && f.mode != filterPassthrough && f.cids[e.cid] {
			delete(f.cids, e.cid)
			dropped = true
		}
		switch f.mode {
		case filterLegacy:
			return false
		case filterPassthrough:
			return true
		case filterScope:
			if e.scope == f.scope {
				if e.event == sysCollectionCreate {
					f.cids[e.cid] = true
				}
				return true
			}
		}
		return dropped || f.cids[e.cid]
	}
	switch f.mode {
	case filterPassthrough:
		return true
	case filterScope:
		if e.scope != f.scope {
			return false
		}
		if e.event == sysScopeDrop {
			f.scopeDropped = true
		}
		return true
	}
	return false
}

// highSeqno returns the high seqno of the filter's collections in vbucket
// vb: what "to latest" streams to.
func (f *dcpFilter) highSeqno(c *cache.Cache, vb uint16) uint64 {
	var high uint64
	for cid := range f.cids {
		high = max(high, c.CollectionHighSeqno(vb, cid))
	}
	return high
}

// oso reports whether a backfill of the filter may be out of seqno
// order: one collection, as kv_engine's default heuristics choose it.
func (f *dcpFilter) oso() bool { return f.filtered() && len(f.cids) == 1 }

// streamIDFrames returns the framing extras of stream id sid's messages.
func streamIDFrames(sid uint16) []gm.FrameInfo {
	if sid == 0 {
		return nil
	}
	return []gm.FrameInfo{gm.NewStreamIDFrame(sid)}
}

// requestStreamID returns the stream id of a request's frames, and
// whether it has one; ok is false for a malformed one.
func requestStreamID(req *gm.MCRequest) (sid uint16, has, ok bool) {
	for i := range req.FramingExtras {
		f := &req.FramingExtras[i]
		if f.ObjId != gm.FrameDcpStreamId {
			continue
		}
		id, err := f.GetStreamId()
		if err != nil || has {
			return 0, false, false
		}
		sid, has = id, true
	}
	return sid, has, true
}
