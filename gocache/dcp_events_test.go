package gocache

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
)

// unhex decodes hex written with spaces and comments (after #) for the
// golden values.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDCPSysEventFlatBuffersGolden: a collection's creation as events.fbs's
// table Collection, byte for byte: the root offset, the vtable (one
// 16-bit offset per field up to the last present, defaults left out),
// the table (its vtable's offset, then the fields, largest last) and the
// name string; read back with the FlatBuffers runtime's generic table.
func TestDCPSysEventFlatBuffersGolden(t *testing.T) {
	e := sysEvent{event: sysCollectionCreate, uid: 2, scope: 8, cid: 0xa, maxTTL: 100, ttlValid: true, name: "ca"}
	got := e.flatBuffer(flatbuffers.NewBuilder(0))
	want := unhex(t, `
		18 00 00 00              # 0: root table at 24
		00 00 00 00              # 4: padding
		10 00 20 00              # 8: vtable: 16 bytes; the table 32 bytes
		18 00                    # 12: field 0 uid at table+24
		14 00                    # 14: field 1 scopeId at table+20
		10 00                    # 16: field 2 collectionId at table+16
		07 00                    # 18: field 3 ttlValid at table+7
		0c 00                    # 20: field 4 maxTtl at table+12
		08 00                    # 22: field 5 name at table+8 (history... flushUid: defaults, absent)
		10 00 00 00              # 24: table: its vtable 16 bytes before
		00 00 00                 # 28: padding
		01                       # 31: ttlValid true
		18 00 00 00              # 32: name: string 24 bytes on (56)
		64 00 00 00              # 36: maxTtl 100
		0a 00 00 00              # 40: collectionId 0xa
		08 00 00 00              # 44: scopeId 8
		02 00 00 00 00 00 00 00  # 48: uid 2
		02 00 00 00 63 61 00     # 56: name "ca", 2 bytes and the terminator
		00                       # 63: padding`)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	var tab flatbuffers.Table
	tab.Bytes = got
	tab.Pos = flatbuffers.GetUOffsetT(got)
	field := func(slot int) flatbuffers.UOffsetT {
		return flatbuffers.UOffsetT(tab.Offset(flatbuffers.VOffsetT(4 + 2*slot)))
	}
	if o := field(0); o == 0 || tab.GetUint64(o+tab.Pos) != 2 {
		t.Fatal("uid")
	}
	if o := field(2); o == 0 || tab.GetUint32(o+tab.Pos) != 0xa {
		t.Fatal("collectionId")
	}
	if o := field(5); o == 0 || string(tab.ByteVector(o+tab.Pos)) != "ca" {
		t.Fatal("name")
	}
	if field(6) != 0 || field(9) != 0 {
		t.Fatal("default fields written")
	}

	// A scope's drop: DroppedScope {uid 3, scopeId 8}.
	drop := sysEvent{event: sysScopeDrop, uid: 3, scope: 8}
	want = unhex(t, `
		10 00 00 00              # root table at 16
		00 00 00 00              # padding
		08 00 10 00              # vtable: 8 bytes; the table 16
		08 00 04 00              # uid at table+8, scopeId at table+4 (systemScope: default)
		08 00 00 00              # 16: table: its vtable 8 bytes before
		08 00 00 00              # scopeId 8
		03 00 00 00 00 00 00 00  # uid 3`)
	if got := drop.flatBuffer(flatbuffers.NewBuilder(0)); !bytes.Equal(got, want) {
		t.Fatalf("drop: got % x\nwant % x", got, want)
	}
}

// TestDCPSysEventRecord: events survive the cache's record (id and value)
// and a drop kept without its value still names its collection.
func TestDCPSysEventRecord(t *testing.T) {
	for _, e := range []sysEvent{
		{event: sysCollectionCreate, uid: 7, scope: 8, cid: 300, maxTTL: 5, ttlValid: true, name: "c"},
		{event: sysCollectionModify, uid: 8, scope: 0, cid: 9, name: "m"},
		{event: sysCollectionDrop, uid: 9, scope: 8, cid: 300},
		{event: sysScopeCreate, uid: 1, scope: 200, name: "s"},
		{event: sysScopeDrop, uid: 2, scope: 200},
	} {
		deleted := e.event == sysCollectionDrop || e.event == sysScopeDrop
		got, err := parseSysEvent(e.id(), deleted, e.record())
		if err != nil || got != e {
			t.Fatalf("%+v: got %+v %v", e, got, err)
		}
		if deleted {
			got, err := parseSysEvent(e.id(), true, nil)
			if err != nil || got.cid != e.cid || got.scope != e.scope || got.event != e.event {
				t.Fatalf("%+v without value: %+v %v", e, got, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, {9, 1}, {0}, {0, 0x80}, {1, 8, 0}, {2, 9}} {
		if _, err := parseSysEvent(bad, false, make([]byte, 13)); err == nil {
			t.Fatalf("id %x: no error", bad)
		}
	}
	if _, err := parseSysEvent([]byte{1, 8}, false, []byte{1}); err == nil {
		t.Fatal("short value: no error")
	}
}

// TestDCPManifestEvents: the events from one manifest to the next, in
// kv_engine's order, the last one with the new uid.
func TestDCPManifestEvents(t *testing.T) {
	old, err := parseManifest([]byte(`{"uid":"5","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"a","uid":"8"},{"name":"t","uid":"c"}]},{"name":"s","uid":"9","collections":[{"name":"b","uid":"a"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest([]byte(`{"uid":"6","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"t","uid":"c","maxTTL":9}]},{"name":"r","uid":"b","collections":[{"name":"d","uid":"d"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []sysEvent{
		{event: sysCollectionDrop, uid: 5, scope: 0, cid: 8},
		{event: sysCollectionDrop, uid: 5, scope: 9, cid: 0xa},
		{event: sysScopeDrop, uid: 5, scope: 9},
		{event: sysScopeCreate, uid: 5, scope: 0xb, name: "r"},
		{event: sysCollectionCreate, uid: 5, scope: 0xb, cid: 0xd, name: "d"},
		{event: sysCollectionModify, uid: 6, scope: 0, cid: 0xc, name: "t", maxTTL: 9, ttlValid: true},
	}
	got := manifestEvents(old, m)
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// Legacy layouts: a modification has none.
	if _, _, ok := want[5].appendLegacy(nil); ok {
		t.Fatal("modification in a legacy layout")
	}
}
