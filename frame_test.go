package gomemcached

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// No protocol document prints a packet with framing extras, so these are
// built from the rules of BinaryProtocol.md ("Request header with flexible
// framing extras", "ID:1 - Durability Requirement", "ID:0 - Server Recv->Send
// duration") and commented field by field.

// A SET with a durability requirement, an impersonated user and a key in
// collection 8.
var flexSetWire = []byte{
	0x08,       // magic: request with framing extras
	0x01,       // opcode: SET
	0x0b,       // framing extras length: 11 = 4 + 7
	0x02,       // key length: 2 (collection id 1 byte + "k")
	0x08,       // extras length: 8
	0x01,       // datatype: JSON
	0x00, 0x03, // vbucket: 3
	0x00, 0x00, 0x00, 0x17, // total body length: 23 = 11 + 8 + 2 + 2
	0x00, 0x00, 0xab, 0xcd, // opaque
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // CAS: 42
	0x13,       // frame: id 1 (durability), length 3
	0x01,       //   level: majority
	0x12, 0x34, //   timeout: 0x1234 ms
	0x46,                         // frame: id 4 (impersonate), length 6
	'^', 'a', 'l', 'i', 'c', 'e', //   user: external "alice"
	0x00, 0x00, 0x00, 0x07, // extras: flags 7
	0x00, 0x00, 0x00, 0x00, // extras: expiry 0
	0x08,     // key: collection id 8 (LEB128)
	'k',      // key
	'{', '}', // value
}

// A GET response with a server duration and read units.
var flexGetResponseWire = []byte{
	0x18,       // magic: response with framing extras
	0x00,       // opcode: GET
	0x06,       // framing extras length: 6 = 3 + 3
	0x00,       // key length
	0x04,       // extras length: 4
	0x00,       // datatype
	0x00, 0x00, // status: SUCCESS
	0x00, 0x00, 0x00, 0x0f, // total body length: 15 = 6 + 4 + 5
	0x00, 0x00, 0x00, 0x09, // opaque
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // CAS
	0x02,       // frame: id 0 (server duration), length 2
	0x00, 0x1f, //   encoded duration 31: 31^1.74/2 = 196.8 µs
	0x12,       // frame: id 1 (read units), length 2
	0x00, 0x03, //   3 units
	0x00, 0x00, 0x00, 0x00, // extras: flags
	'h', 'e', 'l', 'l', 'o', // value
}

func TestFlexRequestGolden(t *testing.T) {
	req := MCRequest{
		Opcode: SET, DataType: DatatypeFlagJSON, VBucket: 3, Opaque: 0xabcd, Cas: 42,
		FramingExtras: []FrameInfo{NewDurabilityFrame(DuraMajority, 0x1234)},
		Extras:        []byte{0, 0, 0, 7, 0, 0, 0, 0},
		Key:           []byte("k"),
		Body:          []byte("{}"),
	}
	req.SetCollectionID(8)
	if err := req.SetImpersonate("^alice"); err != nil {
		t.Fatal(err)
	}
	if got := req.Bytes(); !bytes.Equal(got, flexSetWire) {
		t.Fatalf("Bytes\n %x\nwant\n %x", got, flexSetWire)
	}
	if req.Size() != len(flexSetWire) || req.HdrSize() != len(flexSetWire)-2 {
		t.Fatalf("Size %d HdrSize %d", req.Size(), req.HdrSize())
	}

	var got MCRequest
	if _, err := got.Receive(bytes.NewReader(flexSetWire), nil); err != nil {
		t.Fatal(err)
	}
	want := MCRequest{
		Opcode: SET, DataType: DatatypeFlagJSON, VBucket: 3, Opaque: 0xabcd, Cas: 42,
		Keylen: 2, FramingElen: 11,
		FramingExtras: []FrameInfo{
			{ObjId: FrameDurability, ObjLen: 3, ObjData: []byte{1, 0x12, 0x34}},
			{ObjId: FrameImpersonate, ObjLen: 6, ObjData: []byte("^alice")},
		},
		Extras: []byte{0, 0, 0, 7, 0, 0, 0, 0},
		Key:    []byte{0x08, 'k'},
		Body:   []byte("{}"),
	}
	sameRequest(t, &got, &want)
	lvl, hasTimeout, timeout, err := got.FramingExtras[0].GetDurabilityRequirements()
	if err != nil || lvl != DuraMajority || !hasTimeout || timeout != 0x1234 {
		t.Fatalf("durability = %v %v %#x %v", lvl, hasTimeout, timeout, err)
	}
	cid, key, err := SplitCollectionID(got.Key)
	if err != nil || cid != 8 || string(key) != "k" {
		t.Fatalf("SplitCollectionID = %d %q %v", cid, key, err)
	}
	// Re-encoding the decoded request gives the same bytes.
	if b := got.Bytes(); !bytes.Equal(b, flexSetWire) {
		t.Fatalf("re-encoded\n %x\nwant\n %x", b, flexSetWire)
	}
}

func TestFlexResponseGolden(t *testing.T) {
	res := MCResponse{Opcode: GET, Opaque: 9, Cas: 1, Extras: make([]byte, 4), Body: []byte("hello")}
	res.FlexibleExtras, _ = AppendFrame(nil, FrameServerDuration, []byte{0x00, 0x1f})
	res.FlexibleExtras, _ = AppendFrame(res.FlexibleExtras, FrameReadUnits, []byte{0x00, 0x03})
	if got := res.Bytes(); !bytes.Equal(got, flexGetResponseWire) {
		t.Fatalf("Bytes\n %x\nwant\n %x", got, flexGetResponseWire)
	}
	var got MCResponse
	if _, err := got.Receive(bytes.NewReader(flexGetResponseWire), nil); err != nil {
		t.Fatal(err)
	}
	sameResponse(t, &got, &res)
	if ru, wu := got.ComputeUnits(); ru != 3 || wu != 0 {
		t.Fatalf("ComputeUnits = %d, %d", ru, wu)
	}
	d, ok := got.ServerDuration()
	if !ok || d < 196*time.Microsecond || d > 197*time.Microsecond {
		t.Fatalf("ServerDuration = %v, %v", d, ok)
	}
}

func TestAppendFrameEscapes(t *testing.T) {
	long := bytes.Repeat([]byte{0xaa}, 20)
	for _, tc := range []struct {
		name string
		id   FrameObjType
		data []byte
		want []byte
	}{
		{"empty", FrameBarrier, nil, []byte{0x00}},
		{"short", FrameDcpStreamId, []byte{0, 7}, []byte{0x22, 0, 7}},
		{"length 14", 3, bytes.Repeat([]byte{1}, 14), append([]byte{0x3e}, bytes.Repeat([]byte{1}, 14)...)},
		{"length 15", 3, bytes.Repeat([]byte{1}, 15), append([]byte{0x3f, 0x00}, bytes.Repeat([]byte{1}, 15)...)},
		{"id 14", 14, nil, []byte{0xe0}},
		{"id 15", 15, nil, []byte{0xf0, 0x00}},
		{"id 17 length 20", 17, long, append([]byte{0xff, 0x02, 0x05}, long...)},
		{"max", 270, bytes.Repeat([]byte{2}, 270), append([]byte{0xff, 0xff, 0xff}, bytes.Repeat([]byte{2}, 270)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendFrame(nil, tc.id, tc.data)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("AppendFrame = %x, %v; want %x", got, err, tc.want)
			}
			if frameSize(tc.id, len(tc.data)) != len(tc.want) {
				t.Fatalf("frameSize = %d, want %d", frameSize(tc.id, len(tc.data)), len(tc.want))
			}
			id, data, rest, err := NextFrame(append(got, 0x99))
			if err != nil || id != tc.id || !bytes.Equal(data, tc.data) || !bytes.Equal(rest, []byte{0x99}) {
				t.Fatalf("NextFrame = %d %x %x %v", id, data, rest, err)
			}
		})
	}
	for _, id := range []FrameObjType{-1, 271} {
		if _, err := AppendFrame(nil, id, nil); !errors.Is(err, ErrFieldTooLong) {
			t.Errorf("AppendFrame(id %d) = %v, want ErrFieldTooLong", id, err)
		}
	}
	if _, err := AppendFrame(nil, 1, make([]byte, 271)); !errors.Is(err, ErrFieldTooLong) {
		t.Errorf("AppendFrame(271 bytes) = %v, want ErrFieldTooLong", err)
	}
}

func TestNextFrameMalformed(t *testing.T) {
	for _, b := range [][]byte{
		{},                 // nothing
		{0xf0},             // id escape byte missing
		{0x0f},             // length escape byte missing
		{0xff, 0x01},       // length escape byte missing after id escape
		{0x13, 0x01, 0x00}, // 3 bytes announced, 2 present
		{0x0f, 0x00, 0x01}, // 15 bytes announced, 1 present
	} {
		if _, _, _, err := NextFrame(b); !errors.Is(err, ErrBadFrame) || !errors.Is(err, ErrProtocol) {
			t.Errorf("NextFrame(%x) = %v, want ErrBadFrame", b, err)
		}
	}
}

func TestFrameValidate(t *testing.T) {
	ok := []FrameInfo{
		{FrameBarrier, 0, nil},
		NewDurabilityFrame(DuraMajority, 0),
		NewDurabilityFrame(DuraPersistToMajority, 1),
		NewStreamIDFrame(9),
		{FrameOpenTracing, 3, []byte("ctx")},
		{FrameImpersonate, 3, []byte("bob")},
		{FramePreserveExpiry, 0, nil},
		{FrameExtraPrivilege, 4, []byte("Read")},
	}
	for _, f := range ok {
		if err := f.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", f, err)
		}
	}
	bad := []FrameInfo{
		{FrameBarrier, 1, []byte{0}},
		{FrameDurability, 2, []byte{1, 0}},
		{FrameDurability, 1, []byte{0}},             // level 0
		{FrameDurability, 1, []byte{4}},             // level 4
		{FrameDurability, 3, []byte{1, 0, 0}},       // timeout 0 reserved
		{FrameDurability, 3, []byte{1, 0xff, 0xff}}, // timeout 0xffff reserved
		{FrameDcpStreamId, 1, []byte{1}},            // short stream id
		{FrameOpenTracing, 0, nil},                  // empty context
		{FrameImpersonate, 0, nil},                  // empty user
		{FramePreserveExpiry, 1, []byte{1}},         // data on a flag
		{FrameObjType(9), 0, nil},                   // unknown id
		{FrameDcpStreamId, 2, []byte{1}},            // ObjLen disagrees with data
	}
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", f)
		}
	}
}

func TestFrameAccessors(t *testing.T) {
	sid := NewStreamIDFrame(0x0102)
	if id, err := sid.GetStreamId(); err != nil || id != 0x0102 {
		t.Fatalf("GetStreamId = %#x, %v", id, err)
	}
	if _, _, _, err := sid.GetDurabilityRequirements(); err != ErrorInvalidOp {
		t.Fatalf("GetDurabilityRequirements on a stream id = %v", err)
	}
	dura := NewDurabilityFrame(DuraMajorityAndPersistOnMaster, 0)
	if _, err := dura.GetStreamId(); err != ErrorInvalidOp {
		t.Fatalf("GetStreamId on durability = %v", err)
	}
	lvl, has, _, err := dura.GetDurabilityRequirements()
	if err != nil || lvl != DuraMajorityAndPersistOnMaster || has {
		t.Fatalf("GetDurabilityRequirements = %v %v %v", lvl, has, err)
	}
	short := FrameInfo{ObjId: FrameDcpStreamId, ObjLen: 2, ObjData: []byte{1}}
	if _, err := short.GetStreamId(); err != ErrorObjLenNotMatch {
		t.Fatalf("GetStreamId(short) = %v", err)
	}
	if b, half := dura.Bytes(); half || !bytes.Equal(b, []byte{0x11, 0x02}) {
		t.Fatalf("Bytes = %x %v", b, half)
	}
	if b, _ := short.Bytes(); b != nil {
		t.Fatalf("Bytes of an unencodable frame = %x, want nil", b)
	}
}

func TestServerDuration(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, 100 * time.Microsecond, 10 * time.Millisecond, time.Second} {
		got := DecodeServerDuration(EncodeServerDuration(d))
		// The encoding keeps about 1.74/encoded of relative precision.
		if diff := (got - d).Abs(); diff > d/50+time.Microsecond {
			t.Errorf("round trip of %v = %v", d, got)
		}
	}
	if EncodeServerDuration(0) != 0 || EncodeServerDuration(time.Hour) != 0xffff {
		t.Fatal("EncodeServerDuration does not saturate")
	}
}

func TestCollectionIDs(t *testing.T) {
	for _, tc := range []struct {
		cid  uint32
		wire []byte
	}{
		{0, []byte{0x00}},
		{8, []byte{0x08}},
		{0x7f, []byte{0x7f}},
		{0x80, []byte{0x80, 0x01}},
		{0x3fff, []byte{0xff, 0x7f}},
		{0x4000, []byte{0x80, 0x80, 0x01}},
		{0xffffffff, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
	} {
		if got := AppendCollectionID(nil, tc.cid); !bytes.Equal(got, tc.wire) {
			t.Errorf("AppendCollectionID(%#x) = %x, want %x", tc.cid, got, tc.wire)
		}
		cid, rest, err := SplitCollectionID(append(tc.wire, 'k'))
		if err != nil || cid != tc.cid || string(rest) != "k" {
			t.Errorf("SplitCollectionID(%x) = %#x %q %v", tc.wire, cid, rest, err)
		}
		var req MCRequest
		req.SetCollectionID(tc.cid)
		if !bytes.Equal(req.CollId[:req.CollIdLen], tc.wire) {
			t.Errorf("SetCollectionID(%#x) = %x", tc.cid, req.CollId[:req.CollIdLen])
		}
	}
	for _, bad := range [][]byte{
		{},                                   // no id
		{0x80},                               // unterminated
		{0x80, 0x00},                         // non-canonical: final zero group
		{0xff, 0xff, 0xff, 0xff, 0x10},       // 33 bits
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // 6 bytes
	} {
		if _, _, err := SplitCollectionID(bad); !errors.Is(err, ErrBadLength) {
			t.Errorf("SplitCollectionID(%x) = %v, want ErrBadLength", bad, err)
		}
	}
}

func TestImpersonate(t *testing.T) {
	var req MCRequest
	if err := req.SetImpersonate(string(bytes.Repeat([]byte{'u'}, MAX_USER_LEN+1))); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("SetImpersonate(129 bytes) = %v", err)
	}
	// A user of 15 bytes or more needs the length escape.
	user := "a-rather-long-user-name"
	if err := req.SetImpersonate(user); err != nil {
		t.Fatal(err)
	}
	req.Opcode = GET
	req.Key = []byte("k")
	wire := req.Bytes()
	frames := 1 + 1 + len(user)
	if wire[0] != FLEX_MAGIC || int(wire[2]) != frames || wire[24] != 0x4f || int(wire[25]) != len(user)-15 {
		t.Fatalf("impersonate frame header: %x", wire[:26])
	}
	var got MCRequest
	if _, err := got.Receive(bytes.NewReader(wire), nil); err != nil {
		t.Fatal(err)
	}
	if len(got.FramingExtras) != 1 || string(got.FramingExtras[0].ObjData) != user || string(got.Key) != "k" {
		t.Fatalf("decoded %+v", got)
	}
}

func TestTapEngineData(t *testing.T) {
	// A TAP_MUTATION carries 16 bytes of extras, then as many bytes of
	// engine-specific data as the first two bytes of the extras say, then
	// the key and the value.
	wire := []byte{
		0x80, 0x41, 0x00, 0x01, // magic, TAP_MUTATION, key length 1
		0x10, 0x00, 0x00, 0x05, // extras length 16, datatype, vbucket 5
		0x00, 0x00, 0x00, 0x15, // total body length: 21 = 16 + 2 + 1 + 2
		0x00, 0x00, 0x00, 0x01, // opaque
		0, 0, 0, 0, 0, 0, 0, 0, // CAS
		0x00, 0x02, 0x00, 0x00, // extras: engine length 2, TAP flags
		0x00, 0x00, 0x00, 0x00, // extras: TTL, reserved
		0x00, 0x00, 0x00, 0x00, // extras: item flags
		0x00, 0x00, 0x00, 0x00, // extras: expiry
		0xee, 0xee, // engine-specific data
		'k',      // key
		'v', 'v', // value
	}
	var req MCRequest
	if _, err := req.Receive(bytes.NewReader(wire), nil); err != nil {
		t.Fatal(err)
	}
	if len(req.Extras) != 18 || string(req.Key) != "k" || string(req.Body) != "vv" {
		t.Fatalf("decoded extras %x key %q body %q", req.Extras, req.Key, req.Body)
	}
	if got := req.Bytes(); !bytes.Equal(got, wire) {
		t.Fatalf("re-encoded\n %x\nwant\n %x", got, wire)
	}
	// Engine data that runs past the body is a malformed packet.
	bad := bytes.Clone(wire)
	bad[25] = 0x40
	if _, err := req.Receive(bytes.NewReader(bad), nil); !errors.Is(err, ErrBadLength) {
		t.Fatalf("overlong engine data: %v", err)
	}
}

func TestParseTapCommands(t *testing.T) {
	req := MCRequest{
		Opcode: TAP_CONNECT,
		Key:    []byte("replica"),
		Extras: []byte{0, 0, 0, byte(BACKFILL | LIST_VBUCKETS | SUPPORT_ACK)},
		Body: []byte{
			0, 0, 0, 0, 0, 0, 0x10, 0x00, // backfill since 4096
			0, 2, 0, 1, 0, 9, // vbuckets 1 and 9
			'x', // left over
		},
	}
	tc, err := req.ParseTapCommands()
	if err != nil {
		t.Fatal(err)
	}
	if tc.Name != "replica" || tc.Flags[BACKFILL] != uint64(4096) || tc.Flags[SUPPORT_ACK] != true ||
		len(tc.Flags) != 3 || string(tc.RemainingBody) != "x" {
		t.Fatalf("ParseTapCommands = %+v", tc)
	}
	if vbs := tc.Flags[LIST_VBUCKETS].([]uint16); len(vbs) != 2 || vbs[0] != 1 || vbs[1] != 9 {
		t.Fatalf("vbuckets = %v", vbs)
	}
	if s := (BACKFILL | SUPPORT_ACK | 0x1000).String(); s != "BACKFILL|SUPPORT_ACK|0x1000" {
		t.Fatalf("String = %q", s)
	}
	// A vbucket list longer than the body is an error, not a large allocation.
	req.Body = []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 1}
	if _, err := req.ParseTapCommands(); err == nil {
		t.Fatal("truncated vbucket list parsed")
	}
	req.Extras = []byte{0}
	if _, err := req.ParseTapCommands(); err == nil {
		t.Fatal("short extras parsed")
	}
}
