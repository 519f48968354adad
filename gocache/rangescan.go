package gocache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Range scans, as kv_engine defines them (docs/range_scans/): CREATE
// collects the keys of one collection in one vbucket, in a range or a
// random sample (see cache.Scan), and answers with the scan's 16-byte
// uuid; each CONTINUE returns the next keys or documents, in SUCCESS
// responses of about 8 KiB and a last one, RANGE_SCAN_MORE or
// RANGE_SCAN_COMPLETE; CANCEL ends a scan. A scan is found by its uuid in
// the request's vbucket, from any connection of its bucket; it is
// cancelled when the connection that made it closes, when its lifetime
// ends, and when its vbucket changes history or its collection is dropped.
//
// gocache has no disk: a scan reads memory, and a snapshot requirement's
// seqno is met once the vbucket's high seqno reaches it (kv_engine waits
// for it to be persisted). A create that waits for it is answered when it
// is met or its time is up, possibly after the connection's later
// requests.

// Limits, as kv_engine's defaults.
const (
	// scanLifetime is how long a scan lives after its create
	// (range_scan_max_lifetime); kv_engine counts from the create, busy
	// or idle.
	scanLifetime = 180 * time.Second
	// scanSendSize is the data a continue gathers before it sends a
	// SUCCESS response (range_scan_read_buffer_send_size).
	scanSendSize = 8192
	// maxScanName is the longest "name" a create may give.
	maxScanName = 50
)

// maxContinueBytes caps one continue, whatever its limits: the scan then
// answers RANGE_SCAN_MORE, as a throttled kv_engine may. It bounds the
// output a continue queues on a connection that an event loop serves,
// where a flush does not wait for the client.
const maxContinueBytes = 4 << 20

// scanFlushBytes is how much a continue sends between flushes.
const scanFlushBytes = 64 << 10

// maxRangeScans is how many scans a bucket holds at once, as kv_engine
// reckons it from the quota: one scan per 10 KiB of 1% of it, at least 2
// and at most 4096, of which range scans may take 80% (at least 1). A
// create beyond it gets EBUSY.
func maxRangeScans(quota int64) int {
	scans := max(2, min(quota/100/(10<<10), 4096))
	return int(max(1, scans*8/10))
}

// scanID is a scan's uuid: a random (version 4) UUID.
type scanID [16]byte

func newScanID() scanID {
	var id scanID
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// rangeScans serves the range scan commands and holds every bucket's
// open scans. Its limits may be changed before the server serves.
type rangeScans struct {
	h           *handler
	lifetime    time.Duration
	maxContinue int // bytes; see maxContinueBytes
	tables      map[*bucket]*scanTable
}

// scanTable is a bucket's open scans. Beside their number, it bounds the
// memory their keys hold, which the bucket's memory limit does not count:
// to the limit itself (a scan of every key fits: an item costs more than
// its key in a scan).
type scanTable struct {
	mu       sync.Mutex
	scans    map[scanID]*rangeScan
	reserved int // creates under way, counted against max
	max      int
	bytes    int64 // held by the scans' keys
	maxBytes int64
}

// rangeScan is one open scan. Its fields but state are set at its create;
// a continue has it to itself (state continuing).
type rangeScan struct {
	id      scanID
	b       *bucket
	vb      uint16
	vbuuid  uint64 // the vbucket's history when it was made
	cid     uint32
	prefix  int // bytes of collection id before each key's name
	keyOnly bool
	scan    *cache.Scan
	buf     []byte

	state     scanState // guarded by the table's lock
	cancelled atomic.Bool
	done      chan struct{} // closed when it leaves its table
}

type scanState uint8

const (
	scanIdle scanState = iota
	scanContinuing
	scanRemoved
)

// registerRangeScan registers the range scan commands.
func (h *handler) registerRangeScan(m *memcached.ServeMux) {
	rs := &rangeScans{h: h, lifetime: scanLifetime, maxContinue: maxContinueBytes, tables: make(map[*bucket]*scanTable, len(h.srv.buckets))}
	for _, b := range h.srv.buckets {
		rs.tables[b] = &scanTable{scans: map[scanID]*rangeScan{}, max: maxRangeScans(b.cache.MaxBytes()), maxBytes: b.cache.MaxBytes()}
	}
	m.Handle(rs, gm.CREATE_RANGE_SCAN, gm.CONTINUE_RANGE_SCAN, gm.CANCEL_RANGE_SCAN)
}

var _ memcached.Handler = (*rangeScans)(nil)

// ServeMC serves CREATE_RANGE_SCAN, CONTINUE_RANGE_SCAN and
// CANCEL_RANGE_SCAN.
func (rs *rangeScans) ServeMC(w memcached.ResponseWriter, req *gm.MCRequest) {
	var extlen int
	switch req.Opcode {
	case gm.CONTINUE_RANGE_SCAN:
		extlen = 28
	case gm.CANCEL_RANGE_SCAN:
		extlen = 16
	}
	if len(req.Extras) != extlen || len(req.Key) != 0 || req.Cas != 0 ||
		(extlen != 0 && len(req.Body) != 0) {
		rs.h.invalid(w, req)
		return
	}
	if _, ok := rs.h.frames(w, req); !ok {
		return
	}
	b := rs.h.bucketFor(w, req)
	if b == nil {
		return
	}
	vb, ok := rs.h.vbActive(w, req, b)
	if !ok {
		return
	}
	switch req.Opcode {
	case gm.CREATE_RANGE_SCAN:
		rs.create(w, req, b, vb)
	case gm.CONTINUE_RANGE_SCAN:
		rs.cont(w, req, b, vb)
	default:
		rs.cancel(w, req, b, vb)
	}
}

// scanConfig is a create's JSON value, checked.
type scanConfig struct {
	cid     uint32
	keyOnly bool
	// xattrs: include_xattrs is given (true or false), which needs the
	// XATTR feature.
	xattrs bool
	// start and end are names in the collection; without a range, the
	// whole collection.
	start, end         []byte
	exclStart, exclEnd bool
	wholeCollection    bool
	sample             bool
	samples, seed      uint64
	snapshot           *snapshotReq
	name               string
}

// snapshotReq is what a create requires of the vbucket.
type snapshotReq struct {
	vbuuid      uint64
	seqno       uint64
	seqnoExists bool
	timeout     time.Duration // 0: fail at once
}

// errScanConfig is the error of a create's value that is not as kv_engine
// reads it.
var errScanConfig = errors.New("gocache: invalid range scan")

// scanConfigError is an errScanConfig with what is wrong, kv_engine's
// error context.
type scanConfigError struct{ context string }

func (e *scanConfigError) Error() string { return errScanConfig.Error() + ": " + e.context }
func (e *scanConfigError) Unwrap() error { return errScanConfig }

func badScan(format string, args ...any) error {
	return &scanConfigError{fmt.Sprintf(format, args...)}
}

// parseScanConfig reads a create's JSON value as kv_engine does: unknown
// keys are ignored, known ones must have their type (numbers unsigned
// integers), a range has a start or an excl_start and an end or an
// excl_end (base64, at most 250 bytes decoded), a sample has samples, and
// a range and a sample do not go together (neither is a scan of the whole
// collection).
func parseScanConfig(data []byte) (scanConfig, error) {
	var cfg scanConfig
	var root map[string]json.RawMessage
	if err := json.Unmarshal(data, &root); err != nil || root == nil {
		return cfg, badScan("not a JSON object")
	}
	var collection string
	if ok, err := member(root, "collection", &collection); err != nil {
		return cfg, err
	} else if ok {
		cid, err := strconv.ParseUint(collection, 16, 32)
		// kv_engine: 1 to 8 hex digits (no sign, no 0x), not a
		// reserved id (1 to 7).
		if err != nil || len(collection) > 8 || !isHex(collection) || cid >= 1 && cid <= 7 {
			return cfg, badScan("invalid formatting of the collection field")
		}
		cfg.cid = uint32(cid)
	}
	var rng, sampling, snap map[string]json.RawMessage
	hasRange, err := member(root, "range", &rng)
	if err != nil {
		return cfg, err
	}
	hasSample, err := member(root, "sampling", &sampling)
	if err != nil {
		return cfg, err
	}
	hasSnap, err := member(root, "snapshot_requirements", &snap)
	if err != nil {
		return cfg, err
	}
	if hasRange && hasSample {
		return cfg, badScan("range and sampling together")
	}
	if hasRange {
		if cfg.start, cfg.exclStart, err = rangeKey(rng, "start", "excl_start"); err != nil {
			return cfg, err
		}
		if cfg.end, cfg.exclEnd, err = rangeKey(rng, "end", "excl_end"); err != nil {
			return cfg, err
		}
		if len(cfg.start) > maxKeyLen || len(cfg.end) > maxKeyLen {
			return cfg, badScan("invalid key size in range start:%d, end:%d", len(cfg.start), len(cfg.end))
		}
	} else {
		cfg.wholeCollection = true
	}
	if hasSnap {
		if cfg.snapshot, err = snapshotRequirements(snap); err != nil {
			return cfg, err
		}
	}
	if hasSample {
		cfg.sample, cfg.wholeCollection = true, false
		if ok, err := member(sampling, "samples", &cfg.samples); err != nil {
			return cfg, err
		} else if !ok {
			return cfg, badScan("sampling without samples")
		}
		if _, err := member(sampling, "seed", &cfg.seed); err != nil {
			return cfg, err
		}
	}
	if _, err := member(root, "name", &cfg.name); err != nil {
		return cfg, err
	} else if len(cfg.name) > maxScanName {
		return cfg, badScan("name exceeds %d bytes", maxScanName)
	}
	if _, err := member(root, "key_only", &cfg.keyOnly); err != nil {
		return cfg, err
	}
	var xattrs bool
	if cfg.xattrs, err = member(root, "include_xattrs", &xattrs); err != nil {
		return cfg, err
	}
	if xattrs && cfg.keyOnly {
		return cfg, badScan("cannot set key_only:true and include_xattrs:true")
	}
	return cfg, nil
}

// member decodes obj[name] into dst, reporting whether it is there. A
// member of the wrong type (null included) is an error.
func member[T any](obj map[string]json.RawMessage, name string, dst *T) (bool, error) {
	raw, ok := obj[name]
	if !ok {
		return false, nil
	}
	if string(bytes.TrimSpace(raw)) == "null" || json.Unmarshal(raw, dst) != nil {
		return true, badScan("wrong type for key:%s", name)
	}
	if m, isMap := any(*dst).(map[string]json.RawMessage); isMap && m == nil {
		return true, badScan("wrong type for key:%s", name)
	}
	return true, nil
}

// rangeKey reads one end of a range: the inclusive key or the exclusive
// one, exactly one of them, base64.
func rangeKey(rng map[string]json.RawMessage, incl, excl string) (key []byte, exclusive bool, err error) {
	var a, b string
	hasA, err := member(rng, incl, &a)
	if err != nil {
		return nil, false, err
	}
	hasB, err := member(rng, excl, &b)
	switch {
	case err != nil:
		return nil, false, err
	case hasA && hasB:
		return nil, false, badScan("range included both %s and %s", incl, excl)
	case !hasA && !hasB:
		return nil, false, badScan("range did not include %s or %s", incl, excl)
	case hasB:
		a, exclusive = b, true
	}
	if key, err = base64.StdEncoding.DecodeString(a); err != nil {
		name := incl
		if exclusive {
			name = excl
		}
		return nil, false, badScan("%s is not base64", name)
	}
	return key, exclusive, nil
}

// snapshotRequirements reads snapshot_requirements: vb_uuid (a decimal
// string) and seqno are required, seqno_exists and timeout_ms optional.
func snapshotRequirements(obj map[string]json.RawMessage) (*snapshotReq, error) {
	var r snapshotReq
	var uuid string
	if ok, err := member(obj, "vb_uuid", &uuid); err != nil {
		return nil, err
	} else if !ok {
		return nil, badScan("snapshot_requirements without vb_uuid")
	}
	v, err := strconv.ParseUint(uuid, 10, 64)
	if err != nil {
		return nil, badScan("non-numeric character(s) found as part of vb_uuid: %q", uuid)
	}
	r.vbuuid = v
	if ok, err := member(obj, "seqno", &r.seqno); err != nil {
		return nil, err
	} else if !ok {
		return nil, badScan("snapshot_requirements without seqno")
	}
	if _, err := member(obj, "seqno_exists", &r.seqnoExists); err != nil {
		return nil, err
	}
	var ms uint64
	if _, err := member(obj, "timeout_ms", &ms); err != nil {
		return nil, err
	} else if ms > math.MaxUint32 {
		return nil, badScan("timeout_ms over 32 bits")
	}
	r.timeout = time.Duration(ms) * time.Millisecond
	return &r, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// scanInvalid answers EINVAL for a create's value, with kv_engine's error
// context for clients that negotiated XERROR; the connection stays open.
func scanInvalid(w memcached.ResponseWriter, req *gm.MCRequest, context string) {
	st := state(w)
	if !st.features.Has(gm.FeatureXError) {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	body, _ := json.Marshal(map[string]map[string]string{"error": {"context": context}})
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.EINVAL, Body: body,
		DataType: sentDatatype(st, gm.DatatypeFlagJSON)}
	w.WriteResponse(&res)
}

// create serves CREATE_RANGE_SCAN.
func (rs *rangeScans) create(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket, vb uint16) {
	st := state(w)
	if req.DataType != gm.DatatypeFlagJSON || !st.features.Has(gm.FeatureJSON) {
		scanInvalid(w, req, "Datatype must be JSON")
		return
	}
	cfg, err := parseScanConfig(req.Body)
	if err != nil {
		var e *scanConfigError
		errors.As(err, &e)
		scanInvalid(w, req, e.context)
		return
	}
	if !b.hasCollection(cfg.cid) {
		rs.h.unknownCollection(w, req, b)
		return
	}
	if cfg.xattrs && !st.features.Has(gm.FeatureXattr) {
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	if r := cfg.snapshot; r != nil {
		high, uuid := b.cache.HighSeqno(vb)
		switch {
		case uuid != r.vbuuid:
			rs.h.extended(w, req, gm.VBUUID_NOT_EQUAL)
			return
		case high < r.seqno && r.timeout == 0:
			w.WriteStatus(req, gm.TMPFAIL, nil)
			return
		case high < r.seqno:
			rs.createLater(w.Conn(), st.features, req, b, vb, cfg)
			return
		}
	}
	status, body := rs.open(w.Conn(), b, vb, &cfg)
	switch {
	case isExtended(status):
		rs.h.extendedBody(w, req, status, body)
		return
	case status == gm.NOT_MY_VBUCKET:
		rs.h.notMyVBucket(w, req) // with the cluster config, as any key command's
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: status, Body: body}
	w.WriteResponse(&res)
}

// isExtended reports whether a create's status is one that only clients
// with XERROR read.
func isExtended(s gm.Status) bool { return s == gm.VBUUID_NOT_EQUAL || s == gm.UNKNOWN_COLLECTION }

// createLater waits, on a goroutine of its own, for vbucket vb to reach
// the seqno cfg requires, then makes the scan and sends the answer
// through the connection's queue: TMPFAIL if the time is up first. A
// status the client cannot read without XERROR (the vbucket's history or
// the collection gone meanwhile), where a handler would close the
// connection, becomes a classic one: NOT_MY_VBUCKET, or EINVAL as
// kv_engine answers UNKNOWN_COLLECTION to clients that cannot read it.
func (rs *rangeScans) createLater(c *memcached.Conn, features gm.FeatureSet, req *gm.MCRequest, b *bucket, vb uint16, cfg scanConfig) {
	opcode, opaque := req.Opcode, req.Opaque
	go func() {
		status, body := rs.waitSeqno(c, b, vb, cfg.snapshot)
		if status == gm.SUCCESS {
			status, body = rs.open(c, b, vb, &cfg)
		}
		var datatype uint8
		switch {
		case status == gm.NOT_MY_VBUCKET:
		case !isExtended(status) || features.Has(gm.FeatureXError):
		case status == gm.VBUUID_NOT_EQUAL:
			status = gm.NOT_MY_VBUCKET
		default:
			status, body = gm.EINVAL, nil
		}
		if status == gm.NOT_MY_VBUCKET {
			st, _ := c.Data.(*connState)
			body, datatype = nil, 0
			if st != nil {
				body, datatype = rs.h.notMyVBucketConfigOf(st, features, b) // not st.features: a HELLO may rewrite them meanwhile
			}
		}
		c.Send(context.Background(), &gm.MCResponse{Opcode: opcode, Opaque: opaque, Status: status, Body: body, DataType: datatype})
	}()
}

// waitSeqno waits until vbucket vb's high seqno reaches r.seqno, for at
// most r.timeout: SUCCESS, or TMPFAIL when the time is up (or the
// connection gone).
func (rs *rangeScans) waitSeqno(c *memcached.Conn, b *bucket, vb uint16, r *snapshotReq) (gm.Status, []byte) {
	deadline := time.NewTimer(r.timeout)
	defer deadline.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for {
		if high, _ := b.cache.HighSeqno(vb); high >= r.seqno {
			return gm.SUCCESS, nil
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			return gm.TMPFAIL, nil
		case <-c.Done():
			return gm.TMPFAIL, nil
		}
	}
}

// open makes the scan cfg describes, in vbucket vb of b, for connection
// c, and returns the create's status and value: the scan's uuid, or
// KEY_ENOENT for an empty range or collection, EBUSY with as many scans
// open as the bucket holds (or as much memory held by their keys),
// NOT_STORED when the seqno that must exist does not, the snapshot
// requirement's statuses, NOT_MY_VBUCKET.
func (rs *rangeScans) open(c *memcached.Conn, b *bucket, vb uint16, cfg *scanConfig) (gm.Status, []byte) {
	tbl := rs.tables[b]
	if !tbl.reserve() {
		return gm.EBUSY, nil
	}
	s, status := rs.collect(b, vb, cfg)
	if status != gm.SUCCESS {
		tbl.unreserve()
		if status == gm.UNKNOWN_COLLECTION {
			return status, fmt.Appendf(nil, `{"manifest_uid":"%x"}`, b.manifest.Load().uid)
		}
		return status, nil
	}
	if !tbl.add(s) {
		return gm.EBUSY, nil
	}
	go rs.watch(tbl, s, c)
	return gm.SUCCESS, s.id[:]
}

// collect checks the vbucket and collection again and collects the keys.
func (rs *rangeScans) collect(b *bucket, vb uint16, cfg *scanConfig) (*rangeScan, gm.Status) {
	high, uuid := b.cache.HighSeqno(vb)
	switch r := cfg.snapshot; {
	case !b.hasCollection(cfg.cid):
		return nil, gm.UNKNOWN_COLLECTION
	case r != nil && uuid != r.vbuuid:
		return nil, gm.VBUUID_NOT_EQUAL
	case r != nil && high < r.seqno:
		return nil, gm.TMPFAIL
	case r != nil && r.seqnoExists && !b.cache.HasSeqno(vb, r.seqno):
		return nil, gm.NOT_STORED
	}
	prefix := cache.CollectionKey(nil, cfg.cid, nil)
	var sc *cache.Scan
	var err error
	switch {
	case cfg.sample:
		// A sample of an empty collection fails as an empty range; a
		// sample of none from one that has keys is a scan that
		// completes at once, as kv_engine's.
		n := int(min(cfg.samples, math.MaxInt32))
		if sc, err = b.cache.ScanSample(vb, prefix, max(n, 1), cfg.seed); err == nil && n == 0 && sc.Len() > 0 {
			sc, err = b.cache.ScanSample(vb, prefix, 0, 0)
		} else if err == nil && sc.Len() == 0 {
			return nil, gm.KEY_ENOENT
		}
	case cfg.wholeCollection:
		// Every key that starts with prefix, and no other, is below
		// prefix with its last byte one more (a LEB128 id's last byte
		// is below 0x80).
		end := bytes.Clone(prefix)
		end[len(end)-1]++
		sc, err = b.cache.ScanRange(vb, cache.KeyRange{Start: prefix, End: end, ExcludeEnd: true})
	default:
		sc, err = b.cache.ScanRange(vb, cache.KeyRange{
			Start: cache.CollectionKey(nil, cfg.cid, cfg.start), ExcludeStart: cfg.exclStart,
			End: cache.CollectionKey(nil, cfg.cid, cfg.end), ExcludeEnd: cfg.exclEnd,
		})
	}
	switch {
	case err != nil:
		return nil, gm.NOT_MY_VBUCKET
	case sc.Len() == 0 && !cfg.sample:
		return nil, gm.KEY_ENOENT
	}
	return &rangeScan{
		id: newScanID(), b: b, vb: vb, vbuuid: uuid, cid: cfg.cid, prefix: len(prefix),
		keyOnly: cfg.keyOnly, scan: sc, done: make(chan struct{}),
	}, gm.SUCCESS
}

// watch cancels s when its lifetime ends or the connection that made it
// closes, unless it has left its table first.
func (rs *rangeScans) watch(tbl *scanTable, s *rangeScan, c *memcached.Conn) {
	t := time.NewTimer(rs.lifetime)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Done():
	case <-s.done:
		return
	}
	tbl.remove(s)
}

func (t *scanTable) reserve() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.scans)+t.reserved >= t.max {
		return false
	}
	t.reserved++
	return true
}

func (t *scanTable) unreserve() {
	t.mu.Lock()
	t.reserved--
	t.mu.Unlock()
}

// add puts a reserved scan in the table, if the memory its keys hold
// fits.
func (t *scanTable) add(s *rangeScan) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reserved--
	n := int64(s.scan.Size())
	if t.bytes+n > t.maxBytes {
		return false
	}
	t.bytes += n
	t.scans[s.id] = s
	return true
}

// remove takes s out of the table, and tells a continue of it that it is
// cancelled.
func (t *scanTable) remove(s *rangeScan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.state == scanRemoved {
		return
	}
	s.cancelled.Store(s.state == scanContinuing)
	s.state = scanRemoved
	delete(t.scans, s.id)
	t.bytes -= int64(s.scan.Size())
	close(s.done)
}

// begin finds scan id of vbucket vb for a continue and marks it
// continuing: KEY_ENOENT if there is none, EBUSY if it is continuing.
func (t *scanTable) begin(id []byte, vb uint16) (*rangeScan, gm.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.scans[scanID(id)]
	switch {
	case s == nil || s.vb != vb:
		return nil, gm.KEY_ENOENT
	case s.state == scanContinuing:
		return nil, gm.EBUSY
	}
	s.state = scanContinuing
	return s, gm.SUCCESS
}

// pause makes a continuing scan idle again, if it is still in the table.
func (t *scanTable) pause(s *rangeScan) {
	t.mu.Lock()
	if s.state == scanContinuing {
		s.state = scanIdle
	}
	t.mu.Unlock()
}

// continueLimits are a continue's limits; 0 is none.
type continueLimits struct {
	items, bytes uint32
	deadline     time.Time
}

// cont serves CONTINUE_RANGE_SCAN: extras uuid(16), item limit(4), time
// limit in ms(4), byte limit(4).
func (rs *rangeScans) cont(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket, vb uint16) {
	tbl := rs.tables[b]
	s, status := tbl.begin(req.Extras[:16], vb)
	if status != gm.SUCCESS {
		w.WriteStatus(req, status, nil)
		return
	}
	st := state(w)
	if !st.features.Has(gm.FeatureXError) {
		// Every continue ends with a range scan status.
		tbl.remove(s)
		rs.h.extended(w, req, gm.RANGE_SCAN_CANCELLED)
		return
	}
	if !rs.scannable(s) {
		tbl.remove(s)
		rs.h.notMyVBucket(w, req)
		return
	}
	if !b.hasCollection(s.cid) {
		tbl.remove(s)
		rs.h.unknownCollection(w, req, b)
		return
	}
	lim := continueLimits{items: binary.BigEndian.Uint32(req.Extras[16:]), bytes: binary.BigEndian.Uint32(req.Extras[24:])}
	if ms := binary.BigEndian.Uint32(req.Extras[20:]); ms != 0 {
		lim.deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	status = rs.run(w, req, st, s, lim)
	switch status {
	case gm.RANGE_SCAN_MORE:
		tbl.pause(s)
	case gm.UNKNOWN_COLLECTION:
		tbl.remove(s)
		rs.h.unknownCollection(w, req, b)
	default:
		tbl.remove(s)
	}
}

// scannable reports whether s's vbucket is still active and in the
// history s was made in.
func (rs *rangeScans) scannable(s *rangeScan) bool {
	_, uuid := s.b.cache.HighSeqno(s.vb)
	return s.b.cache.State(s.vb) == cache.Active && uuid == s.vbuuid
}

// checkEvery is how many records a continue reads between checks of its
// vbucket, collection and connection.
const checkEvery = 1024

// run reads s from where it stands until a limit, the end or a failure,
// writing SUCCESS responses of scanSendSize and the last response, and
// returns the last one's status (UNKNOWN_COLLECTION is left to the
// caller to answer).
func (rs *rangeScans) run(w memcached.ResponseWriter, req *gm.MCRequest, st *connState, s *rangeScan, lim continueLimits) gm.Status {
	flags := [4]byte{3: 1}
	if s.keyOnly {
		flags[3] = 0
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Extras: flags[:]}
	buf := s.buf[:0]
	var items, read uint64
	sent, unflushed := 0, 0
	status := gm.RANGE_SCAN_COMPLETE
	for n := 1; ; n++ {
		if s.cancelled.Load() {
			status = gm.RANGE_SCAN_CANCELLED
			break
		}
		if n%checkEvery == 0 {
			if status = rs.check(w, s); status != gm.SUCCESS {
				break
			}
		}
		key, it, ok := s.scan.Next()
		if !ok {
			if status = rs.check(w, s); status == gm.SUCCESS {
				status = gm.RANGE_SCAN_COMPLETE
			}
			break
		}
		name := key[s.prefix:]
		items++
		read += uint64(len(key))
		if s.keyOnly {
			buf = binary.AppendUvarint(buf, uint64(len(name)))
			buf = append(buf, name...)
		} else {
			read += uint64(len(it.Value))
			buf = appendDocument(buf, st, name, &it)
		}
		if len(buf) >= scanSendSize {
			res.Body = buf
			if w.WriteResponse(&res) != nil {
				status = gm.RANGE_SCAN_CANCELLED
				break
			}
			sent += len(buf)
			unflushed += len(buf)
			buf = buf[:0]
			if unflushed >= scanFlushBytes {
				unflushed = 0
				if w.Flush() != nil {
					status = gm.RANGE_SCAN_CANCELLED
					break
				}
			}
		}
		if lim.items != 0 && items >= uint64(lim.items) || lim.bytes != 0 && read >= uint64(lim.bytes) ||
			!lim.deadline.IsZero() && !time.Now().Before(lim.deadline) || sent+len(buf) >= rs.maxContinue {
			status = gm.RANGE_SCAN_MORE
			if _, more := s.scan.Peek(); !more {
				status = gm.RANGE_SCAN_COMPLETE
			}
			break
		}
	}
	s.buf = buf[:0]
	switch status {
	case gm.RANGE_SCAN_MORE, gm.RANGE_SCAN_COMPLETE:
		res.Status, res.Body = status, buf
		w.WriteResponse(&res)
	case gm.UNKNOWN_COLLECTION:
	case gm.NOT_MY_VBUCKET:
		rs.h.notMyVBucket(w, req)
	default: // cancelled: no data
		w.WriteStatus(req, status, nil)
	}
	if cap(s.buf) > 2*scanSendSize {
		s.buf = nil
	}
	return status
}

// check tells whether a continue may go on: SUCCESS, or the status that
// ends it (the vbucket or collection gone, the connection closed).
func (rs *rangeScans) check(w memcached.ResponseWriter, s *rangeScan) gm.Status {
	select {
	case <-w.Conn().Done():
		return gm.RANGE_SCAN_CANCELLED
	default:
	}
	switch {
	case !rs.scannable(s):
		return gm.NOT_MY_VBUCKET
	case !s.b.hasCollection(s.cid):
		return gm.UNKNOWN_COLLECTION
	}
	return gm.SUCCESS
}

// appendDocument appends a document record: flags(4), expiry(4, unix
// seconds, 0 for none), seqno(8), cas(8), datatype(1), then the name and
// the value, each after its length in LEB128.
func appendDocument(dst []byte, st *connState, name []byte, it *cache.Item) []byte {
	var exp uint32
	if !it.Expires.IsZero() {
		exp = uint32(it.Expires.Unix())
	}
	dst = binary.BigEndian.AppendUint32(dst, it.Flags)
	dst = binary.BigEndian.AppendUint32(dst, exp)
	dst = binary.BigEndian.AppendUint64(dst, it.Seqno)
	dst = binary.BigEndian.AppendUint64(dst, it.CAS)
	dst = append(dst, sentDatatype(st, it.Datatype))
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	body := docBody(it)
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// cancel serves CANCEL_RANGE_SCAN: the uuid in the extras. A continue of
// the scan under way ends with RANGE_SCAN_CANCELLED.
func (rs *rangeScans) cancel(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket, vb uint16) {
	tbl := rs.tables[b]
	tbl.mu.Lock()
	s := tbl.scans[scanID(req.Extras)]
	tbl.mu.Unlock()
	if s == nil || s.vb != vb {
		w.WriteStatus(req, gm.KEY_ENOENT, nil)
		return
	}
	tbl.remove(s)
	succeeded(w, req)
}
