package memcached

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Range scans: CREATE_RANGE_SCAN (0xda), CONTINUE_RANGE_SCAN (0xdb) and
// CANCEL_RANGE_SCAN (0xdc), kv_engine's docs/range_scans/*.md. A scan
// walks the keys of one collection in one vbucket, in key order over a
// range or as a random sample; the server holds it, by the 16-byte id
// CREATE returns, until it completes, is cancelled, or its connection
// closes.

// RandomScanSeed is the seed CreateRandomScan uses when the random seed it
// draws is 0.
const RandomScanSeed = 0x5eedbead

// scanJSON is the value of CREATE_RANGE_SCAN. The fields are in the order
// of their names, so that the encoding is the reference's (which marshals
// a map) byte for byte.
type scanJSON struct {
	Collection    string            `json:"collection"`
	IncludeXattrs bool              `json:"include_xattrs,omitempty"`
	KeyOnly       bool              `json:"key_only,omitempty"`
	Name          string            `json:"name,omitempty"`
	Range         *scanRangeJSON    `json:"range,omitempty"`
	Sampling      *scanSamplingJSON `json:"sampling,omitempty"`
	Snapshot      *scanSnapshotJSON `json:"snapshot_requirements,omitempty"`
}

// scanRangeJSON holds the ends of a range, base64: exactly one of End and
// ExclEnd, and of ExclStart and Start.
type scanRangeJSON struct {
	End       *string `json:"end,omitempty"`
	ExclEnd   *string `json:"excl_end,omitempty"`
	ExclStart *string `json:"excl_start,omitempty"`
	Start     *string `json:"start,omitempty"`
}

type scanSamplingJSON struct {
	Samples uint64 `json:"samples"`
	Seed    uint32 `json:"seed"`
}

type scanSnapshotJSON struct {
	Seqno       uint64 `json:"seqno"`
	SeqnoExists bool   `json:"seqno_exists,omitempty"`
	TimeoutMs   uint64 `json:"timeout_ms,omitempty"`
	VbUUID      string `json:"vb_uuid"` // decimal, in a string
}

func newScanRange(start []byte, excludeStart bool, end []byte, excludeEnd bool) *scanRangeJSON {
	s, e := base64.StdEncoding.EncodeToString(start), base64.StdEncoding.EncodeToString(end)
	r := &scanRangeJSON{}
	if excludeStart {
		r.ExclStart = &s
	} else {
		r.Start = &s
	}
	if excludeEnd {
		r.ExclEnd = &e
	} else {
		r.End = &e
	}
	return r
}

// createScan sends a CREATE_RANGE_SCAN with value j, in the reference's
// way: the first context's frames apply, and its collection must be the
// default on a connection without collections.
func (c *Client) createScan(vb uint16, j *scanJSON, context []*ClientContext) (*gomemcached.MCResponse, error) {
	r, err := c.c.scanRequest(vb, j, context)
	if err != nil {
		return nil, err
	}
	return c.c.call(r)
}

// scanRequest builds a CREATE_RANGE_SCAN: no extras, no key (so no
// collection id either), the JSON value with datatype JSON.
func (c *conn) scanRequest(vb uint16, j *scanJSON, context []*ClientContext) (*request, error) {
	r := &request{opcode: gomemcached.CREATE_RANGE_SCAN, vb: vb}
	if err := c.applyContext(r, context); err != nil {
		return nil, err
	}
	r.cidLen = 0
	r.datatype = gomemcached.DatatypeFlagJSON
	body, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	r.body = body
	return r, nil
}

// firstContext returns the collection of the first context and whether
// it asks for extended attributes.
func firstContext(context []*ClientContext) (cid uint32, xattrs bool) {
	if len(context) > 0 && context[0] != nil {
		return context[0].CollId, context[0].IncludeXATTRs
	}
	return 0, false
}

// CreateRangeScan creates a scan of the keys from start to end (each end
// included unless excluded) of the first context's collection (CollId)
// in vbucket vb, returning keys only unless withDocs; with withDocs and
// the context's IncludeXATTRs, documents come with their extended
// attributes. The response's value is the scan's 16-byte id. The JSON
// value is the reference's byte for byte; the request's datatype is
// always JSON (the reference lets Compressed set Snappy, for a value that
// is not compressed). A failed status is returned as the error too
// (KEY_ENOENT for an empty range).
func (c *Client) CreateRangeScan(vb uint16, start []byte, excludeStart bool, end []byte, excludeEnd bool,
	withDocs bool, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	cid, xattrs := firstContext(context)
	j := &scanJSON{
		Collection:    strconv.FormatUint(uint64(cid), 16),
		IncludeXattrs: withDocs && xattrs,
		KeyOnly:       !withDocs,
		Range:         newScanRange(start, excludeStart, end, excludeEnd),
	}
	return c.createScan(vb, j, context)
}

// CreateRandomScan creates a scan of a random sample of about sampleSize
// keys of the first context's collection in vbucket vb, with a random
// seed (RandomScanSeed if it draws 0); otherwise as CreateRangeScan.
func (c *Client) CreateRandomScan(vb uint16, sampleSize int, withDocs bool, context ...*ClientContext) (
	*gomemcached.MCResponse, error) {
	cid, xattrs := firstContext(context)
	seed := rand.Uint32()
	if seed == 0 {
		seed = RandomScanSeed
	}
	j := &scanJSON{
		Collection:    strconv.FormatUint(uint64(cid), 16),
		IncludeXattrs: withDocs && xattrs,
		KeyOnly:       !withDocs,
		Sampling:      &scanSamplingJSON{Samples: uint64(max(sampleSize, 0)), Seed: seed},
	}
	return c.createScan(vb, j, context)
}

// ContinueRangeScan asks the scan uuid of vbucket vb for more keys or
// documents, at most items of them, for at most timeout milliseconds and
// about maxSize bytes (0: no limit), and returns once the request is
// written, as the reference does: the answers, several packets with the
// given opaque, are read with Receive. Each has extras flags(4) (0 keys,
// 1 documents) and a value that DecodeScanKeys or DecodeScanDocuments
// reads; they end with RANGE_SCAN_MORE (continue again),
// RANGE_SCAN_COMPLETE (the scan is over) or another failed status. The
// extras are uuid(16), items(4), timeout(4), maxSize(4). The opaque is
// sent as Transmit sends it (see ErrOpaqueInUse). ContinueScan is the
// call that collects the answers itself.
func (c *Client) ContinueRangeScan(vb uint16, uuid []byte, opaque uint32, items uint32, timeout uint32, maxSize uint32,
	context ...*ClientContext) error {
	var ex [28]byte
	copy(ex[:16], uuid)
	binary.BigEndian.PutUint32(ex[16:20], items)
	binary.BigEndian.PutUint32(ex[20:24], timeout)
	binary.BigEndian.PutUint32(ex[24:28], maxSize)
	r := request{opcode: gomemcached.CONTINUE_RANGE_SCAN, vb: vb, extras: ex[:]}
	if err := c.c.applyContext(&r, context); err != nil {
		return err
	}
	r.cidLen, r.datatype = 0, 0
	return c.c.transmit(&r, opaque, c.c.writeDeadline())
}

// CancelRangeScan cancels the scan uuid of vbucket vb (the extras are the
// uuid) and returns the answer, with the given opaque; a scan the server
// does not know fails with KEY_ENOENT, returned as the error too.
func (c *Client) CancelRangeScan(vb uint16, uuid []byte, opaque uint32, context ...*ClientContext) (
	*gomemcached.MCResponse, error) {
	var ex [16]byte
	copy(ex[:], uuid)
	r := request{opcode: gomemcached.CANCEL_RANGE_SCAN, vb: vb, extras: ex[:]}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	r.cidLen, r.datatype = 0, 0
	w := getWaiter(r.opcode)
	w.restore, w.orig = true, opaque
	res, err := c.c.roundTrip(nil, w, &r, c.c.readDeadline())
	if err != nil {
		return nil, err
	}
	c.c.noteStatus(res)
	return res, statusError(res)
}

// ScanID identifies a range scan on its server.
type ScanID [16]byte

// RangeScan describes a scan for CreateScan: of a range of keys, or, with
// Sample set, of a random sample of them.
type RangeScan struct {
	// Collection is the id of the collection to scan (0: the default
	// collection, or the ClientContext's CollId if set).
	Collection uint32
	// KeysOnly returns keys only, not documents.
	KeysOnly bool
	// IncludeXattrs returns documents with their extended attributes (not
	// with KeysOnly).
	IncludeXattrs bool
	// Start and End bound the range, in key order (without collection
	// id), each included unless ExcludeStart or ExcludeEnd. Ignored with
	// Sample.
	Start, End               []byte
	ExcludeStart, ExcludeEnd bool
	// Sample, if set, scans a random sample instead of a range.
	Sample *ScanSample
	// Snapshot, if set, states what the vbucket must hold for the scan
	// to start.
	Snapshot *ScanSnapshot
	// Name is a name for the server's logs and statistics (at most 50
	// bytes); "" sends none.
	Name string
}

// ScanSample asks for a random sample of about Samples keys, drawn with
// Seed.
type ScanSample struct {
	Samples uint64
	Seed    uint32
}

// ScanSnapshot requires the vbucket to be at VbUUID with Seqno persisted
// (waiting up to Timeout for it, if not 0), and with SeqnoExists, the
// mutation at Seqno to be still stored.
type ScanSnapshot struct {
	VbUUID      uint64
	Seqno       uint64
	SeqnoExists bool
	Timeout     time.Duration
}

// json returns the CREATE_RANGE_SCAN value for s, with cid as the
// collection if s names none.
func (s *RangeScan) json(cid uint32) *scanJSON {
	if s.Collection != 0 {
		cid = s.Collection
	}
	j := &scanJSON{
		Collection:    strconv.FormatUint(uint64(cid), 16),
		IncludeXattrs: s.IncludeXattrs,
		KeyOnly:       s.KeysOnly,
		Name:          s.Name,
	}
	if s.Sample != nil {
		j.Sampling = &scanSamplingJSON{Samples: s.Sample.Samples, Seed: s.Sample.Seed}
	} else {
		j.Range = newScanRange(s.Start, s.ExcludeStart, s.End, s.ExcludeEnd)
	}
	if sn := s.Snapshot; sn != nil {
		j.Snapshot = &scanSnapshotJSON{Seqno: sn.Seqno, SeqnoExists: sn.SeqnoExists,
			VbUUID: strconv.FormatUint(sn.VbUUID, 10)}
		if sn.Timeout > 0 {
			j.Snapshot.TimeoutMs = uint64(max(sn.Timeout/time.Millisecond, 1))
		}
	}
	return j
}

// MarshalJSON returns the value of the CREATE_RANGE_SCAN for s.
func (s *RangeScan) MarshalJSON() ([]byte, error) { return json.Marshal(s.json(0)) }

// CreateScan creates the scan s of vbucket vb and returns its id. The
// ClientContext, if not nil, names a user to impersonate and the
// collection when s names none. A failed status is a
// *gomemcached.ServerError (KEY_ENOENT for an empty range, ERANGE for a
// sample larger than the collection on some servers, NOT_MY_VBUCKET for
// a vbucket that is not active, VBUUID_NOT_EQUAL (older servers:
// NOT_MY_VBUCKET) for a VbUUID that does not match, TMPFAIL for a Seqno
// not persisted in time, ...); a value that is not 16 bytes,
// ErrBadResponse.
func (c *Client) CreateScan(ctx context.Context, vb uint16, s *RangeScan, cc *ClientContext) (ScanID, error) {
	if s == nil {
		return ScanID{}, errNilSpec
	}
	var cid uint32
	if cc != nil {
		cid = cc.CollId
	}
	r, err := c.c.scanRequest(vb, s.json(cid), contexts(cc))
	if err != nil {
		return ScanID{}, err
	}
	res, err := c.c.do(ctx, r)
	if err != nil {
		return ScanID{}, err
	}
	var id ScanID
	if len(res.Body) != len(id) {
		return id, badBody(gomemcached.CREATE_RANGE_SCAN, "scan id of "+strconv.Itoa(len(res.Body))+" bytes, want 16")
	}
	copy(id[:], res.Body)
	return id, nil
}

// ScanLimits bound one ContinueScan: at most Items keys or documents, for
// at most Time, and about Bytes bytes (the server sends whole items, so
// at least one); 0 means no limit. Time is sent in whole milliseconds.
type ScanLimits struct {
	Items uint32
	Time  time.Duration
	Bytes uint32
}

// ScanBatch is what one ContinueScan returned: keys for a KeysOnly scan,
// documents otherwise, sliced from one buffer the batch owns.
type ScanBatch struct {
	Keys [][]byte
	Docs []ScanDocument
	// Complete reports that the scan reached its end (RANGE_SCAN_COMPLETE):
	// the server removed it. Otherwise (RANGE_SCAN_MORE) a limit stopped
	// it, and another ContinueScan goes on.
	Complete bool
}

// ScanDocument is one document of a range scan: its metadata, key
// (without collection id) and value (as Datatype says: Snappy-compressed,
// with extended attributes, ...).
type ScanDocument struct {
	Flags    uint32
	Expiry   uint32
	Seqno    uint64
	Cas      uint64
	Datatype uint8
	Key      []byte
	Value    []byte
}

// ContinueScan goes on with scan id of vbucket vb within lim, collecting
// every packet of the answer, and returns the keys or documents it got.
// The deadline (ReadTimeout) applies to each packet, so a long scan is
// not cut short while packets keep coming. A failed status is a
// *gomemcached.ServerError (KEY_ENOENT for an unknown scan, EBUSY for one
// being continued elsewhere, RANGE_SCAN_CANCELLED, NOT_MY_VBUCKET, ...),
// after which the server has dropped the scan.
func (c *Client) ContinueScan(ctx context.Context, vb uint16, id ScanID, lim ScanLimits, cc *ClientContext) (*ScanBatch, error) {
	var ex [28]byte
	copy(ex[:16], id[:])
	binary.BigEndian.PutUint32(ex[16:20], lim.Items)
	ms := uint64(0)
	if lim.Time > 0 {
		ms = uint64(min(max(lim.Time/time.Millisecond, 1), math.MaxUint32))
	}
	binary.BigEndian.PutUint32(ex[20:24], uint32(ms))
	binary.BigEndian.PutUint32(ex[24:28], lim.Bytes)
	r := request{opcode: gomemcached.CONTINUE_RANGE_SCAN, vb: vb, extras: ex[:]}
	if err := c.c.applyContext(&r, contexts(cc)); err != nil {
		return nil, err
	}
	r.cidLen, r.datatype = 0, 0
	if ctx == nil {
		ctx = context.Background()
	}
	s := &scanCall{kind: -1}
	w := getWaiter(r.opcode)
	w.h = s
	if _, err := c.c.roundTrip(ctx, w, &r, c.c.readDeadline()); err != nil {
		return nil, err
	}
	if s.failed != nil {
		c.c.noteStatus(s.failed)
		return nil, serverError(s.failed)
	}
	if s.err != nil {
		return nil, s.err
	}
	b := &ScanBatch{Complete: s.final == gomemcached.RANGE_SCAN_COMPLETE}
	var err error
	if s.kind == 1 {
		b.Docs, err = DecodeScanDocuments(nil, s.buf)
	} else {
		b.Keys, err = DecodeScanKeys(nil, s.buf)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// scanCall collects the answer to a CONTINUE_RANGE_SCAN on the reader
// goroutine: the values of its packets, back to back, and how it ended.
type scanCall struct {
	buf    []byte
	kind   int // -1 not known yet, 0 keys, 1 documents
	final  gomemcached.Status
	failed *gomemcached.MCResponse
	err    error
}

func (s *scanCall) handle(res *gomemcached.MCResponse, _, _ uint32) bool {
	switch res.Status {
	case gomemcached.SUCCESS, gomemcached.RANGE_SCAN_MORE, gomemcached.RANGE_SCAN_COMPLETE:
	default:
		s.failed = ownResponse(res)
		return true
	}
	if len(res.Body) > 0 && s.err == nil {
		kind := -1
		if len(res.Extras) == 4 {
			kind = int(binary.BigEndian.Uint32(res.Extras))
		}
		switch {
		case kind != 0 && kind != 1:
			s.err = badBody(gomemcached.CONTINUE_RANGE_SCAN, "extras are not the flags 0 (keys) or 1 (documents)")
		case s.kind >= 0 && kind != s.kind:
			s.err = badBody(gomemcached.CONTINUE_RANGE_SCAN, "keys and documents in one answer")
		default:
			s.kind = kind
			s.buf = append(s.buf, res.Body...)
		}
	}
	if res.Status == gomemcached.SUCCESS {
		return false
	}
	s.final = res.Status
	return true
}

// CancelScan cancels scan id of vbucket vb. A scan the server does not
// know (completed, cancelled, or never created) fails with a
// *gomemcached.ServerError matching gomemcached.ErrKeyNotFound.
func (c *Client) CancelScan(ctx context.Context, vb uint16, id ScanID, cc *ClientContext) error {
	r := request{opcode: gomemcached.CANCEL_RANGE_SCAN, vb: vb, extras: id[:]}
	if err := c.c.applyContext(&r, contexts(cc)); err != nil {
		return err
	}
	r.cidLen, r.datatype = 0, 0
	_, err := c.c.do(ctx, &r)
	return err
}

// DecodeScanKeys appends to dst the keys in the value of a
// CONTINUE_RANGE_SCAN answer of a keys-only scan: [LEB128 length, key],
// repeated. The keys slice value.
func DecodeScanKeys(dst [][]byte, value []byte) ([][]byte, error) {
	for b := value; len(b) > 0; {
		n, rest, ok := uleb128(b)
		if !ok {
			return dst, shortBody(gomemcached.CONTINUE_RANGE_SCAN, "key length runs past the end")
		}
		dst = append(dst, rest[:n:n])
		b = rest[n:]
	}
	return dst, nil
}

// scanMetaLen is the fixed metadata before each document of a scan.
const scanMetaLen = 25

// DecodeScanDocuments appends to dst the documents in the value of a
// CONTINUE_RANGE_SCAN answer of a document scan: flags(4), expiry(4),
// seqno(8), CAS(8), datatype(1), LEB128 key length, key, LEB128 value
// length, value, repeated. Keys and values slice value.
func DecodeScanDocuments(dst []ScanDocument, value []byte) ([]ScanDocument, error) {
	const op = gomemcached.CONTINUE_RANGE_SCAN
	for b := value; len(b) > 0; {
		if len(b) < scanMetaLen {
			return dst, shortBody(op, "document metadata cut short")
		}
		d := ScanDocument{
			Flags:    binary.BigEndian.Uint32(b[0:4]),
			Expiry:   binary.BigEndian.Uint32(b[4:8]),
			Seqno:    binary.BigEndian.Uint64(b[8:16]),
			Cas:      binary.BigEndian.Uint64(b[16:24]),
			Datatype: b[24],
		}
		n, rest, ok := uleb128(b[scanMetaLen:])
		if !ok {
			return dst, shortBody(op, "document key length runs past the end")
		}
		d.Key, rest = rest[:n:n], rest[n:]
		n, rest, ok = uleb128(rest)
		if !ok {
			return dst, shortBody(op, "document value length runs past the end")
		}
		d.Value, b = rest[:n:n], rest[n:]
		dst = append(dst, d)
	}
	return dst, nil
}
