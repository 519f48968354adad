package gomemcached

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Golden vectors for every DCP message a producer or consumer sends, from
// the layouts of couchbase/kv_engine docs/dcp/documentation/commands/*.md,
// with vbuuids, seqnos and CAS values that have every byte set, so that a
// decoder reading a length where there is none (as the reference does at
// offset 28 of any extras over 29 bytes) gets it wrong. They are added to
// goldenRequests, so TestGoldenRequests round-trips them byte for byte and
// the fuzzers start from them.

// The values with every byte set.
var (
	dcpVBUUID = []byte{0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x57, 0x68}
	dcpSeqno  = []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	dcpEnd    = []byte{0x19, 0x2a, 0x3b, 0x4c, 0x5d, 0x6e, 0x7f, 0x80}
	dcpRev    = []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09}
	dcpCAS    = uint64(0x8877665544332211)
)

// dcpHeader is a request header: magic, opcode, key length, extras
// length, datatype, vbucket, body length, opaque, CAS.
func dcpHeader(op CommandCode, keylen, extlen int, datatype uint8, vb uint16, bodylen int, opaque uint32, cas uint64) []byte {
	h := []byte{0x80, byte(op)}
	h = binary.BigEndian.AppendUint16(h, uint16(keylen))
	h = append(h, byte(extlen), datatype)
	h = binary.BigEndian.AppendUint16(h, vb)
	h = binary.BigEndian.AppendUint32(h, uint32(bodylen))
	h = binary.BigEndian.AppendUint32(h, opaque)
	return binary.BigEndian.AppendUint64(h, cas)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var goldenDCP = func() []struct {
	name string
	wire []byte
	want MCRequest
} {
	type golden = struct {
		name string
		wire []byte
		want MCRequest
	}
	var out []golden
	add := func(name string, op CommandCode, vb uint16, opaque uint32, cas uint64, datatype uint8, extras, key, value, extMeta []byte) {
		body := len(extras) + len(key) + len(value) + len(extMeta)
		wire := cat(dcpHeader(op, len(key), len(extras), datatype, vb, body, opaque, cas), extras, key, value, extMeta)
		out = append(out, golden{name, wire, MCRequest{Opcode: op, VBucket: vb, Opaque: opaque, Cas: cas, DataType: datatype,
			Keylen: len(key), Extras: extras, Key: key, Body: value, ExtMeta: extMeta}})
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

	// open-connection.md: extras seqno(4, reserved) + flags(4); key the
	// connection name. Flags: producer | include xattrs | delete times.
	add("DCP_OPEN", UPR_OPEN, 0, 0xdeadbeef, 0, 0, cat(u32(0), u32(0x01|0x04|0x20)), []byte("indexer:1"), nil, nil)
	// control.md: key and value, no extras.
	add("DCP_CONTROL", UPR_CONTROL, 0, 0x01020304, 0, 0, nil, []byte("connection_buffer_size"), []byte("1048576"), nil)
	// stream-request.md: flags(4), reserved(4), start, end, vbuuid,
	// snapshot start, snapshot end (8 each). The vbuuid's bytes 4-5 sit at
	// extras offset 28, where the reference reads an nmeta.
	add("DCP_STREAM_REQ", UPR_STREAMREQ, 0x03ff, 0xa0b0c0d0, 0, 0,
		cat(u32(0x04), u32(0), dcpSeqno, dcpEnd, dcpVBUUID, dcpSeqno, dcpEnd), nil, nil, nil)
	// stream-request.md: with a JSON value (the collections filter).
	add("DCP_STREAM_REQ JSON", UPR_STREAMREQ, 7, 0xa0b0c0d1, 0, DatatypeFlagJSON,
		cat(u32(0), u32(0), dcpSeqno, dcpEnd, dcpVBUUID, dcpSeqno, dcpSeqno), nil, []byte(`{"collections":["8"]}`), nil)
	// failover-log.md: no extras, key or value.
	add("DCP_GET_FAILOVER_LOG", UPR_FAILOVERLOG, 0x0102, 0x11223344, 0, 0, nil, nil, nil, nil)
	// close-stream.md.
	add("DCP_CLOSE_STREAM", UPR_CLOSESTREAM, 9, 0x55667788, 0, 0, nil, nil, nil, nil)
	// stream-end.md: flags(4), the reason.
	add("DCP_STREAM_END", UPR_STREAMEND, 9, 0xa0b0c0d0, 0, 0, u32(4), nil, nil, nil)
	// snapshot-marker.md v1: start(8), end(8), type(4): memory|checkpoint.
	add("DCP_SNAPSHOT_MARKER v1", UPR_SNAPSHOT, 0x03ff, 0xa0b0c0d0, 0, 0, cat(dcpSeqno, dcpEnd, u32(0x05)), nil, nil, nil)
	// snapshot-marker.md v2.0: extras one version byte (0), the value
	// start, end, type(4), max visible, high completed.
	add("DCP_SNAPSHOT_MARKER v2", UPR_SNAPSHOT, 0x03ff, 0xa0b0c0d0, 0, 0, []byte{0},
		nil, cat(dcpSeqno, dcpEnd, u32(0x02), dcpEnd, dcpSeqno), nil)
	// mutation.md: by seqno, rev seqno (8 each), flags, expiration, lock
	// time (4 each), nmeta (2, at offset 28), nru (1); key; value; then
	// nmeta bytes of extended metadata.
	add("DCP_MUTATION", UPR_MUTATION, 0x03ff, 0xa0b0c0d0, dcpCAS, DatatypeFlagJSON,
		cat(dcpSeqno, dcpRev, u32(0xfeedface), u32(0x7fffffff), u32(0), []byte{0x00, 0x03}, []byte{0x02}),
		[]byte("user:1"), []byte(`{"a":1}`), []byte{0x01, 0x02, 0x03})
	add("DCP_MUTATION no meta", UPR_MUTATION, 1, 0xa0b0c0d0, dcpCAS, 0,
		cat(dcpSeqno, dcpRev, u32(0), u32(0), u32(0), []byte{0x00, 0x00}, []byte{0x00}), []byte("k"), []byte("v"), nil)
	// deletion.md v1: by seqno, rev seqno, nmeta (2, at offset 16).
	add("DCP_DELETION v1", UPR_DELETION, 2, 0xa0b0c0d0, dcpCAS, 0,
		cat(dcpSeqno, dcpRev, []byte{0x00, 0x02}), []byte("gone"), nil, []byte{0xaa, 0xbb})
	// deletion.md v2 (delete times): by seqno, rev seqno, delete time (4),
	// one unused byte; an xattr value may follow.
	add("DCP_DELETION v2", UPR_DELETION, 2, 0xa0b0c0d0, dcpCAS, DatatypeFlagXattrs,
		cat(dcpSeqno, dcpRev, u32(0x65a1b2c3), []byte{0}), []byte("gone"), []byte{0, 0, 0, 0}, nil)
	// expiration.md: by seqno, rev seqno, delete time (4).
	add("DCP_EXPIRATION", UPR_EXPIRATION, 2, 0xa0b0c0d0, dcpCAS, 0,
		cat(dcpSeqno, dcpRev, u32(0x65a1b2c3)), []byte("old"), nil, nil)
	// system_event.md: by seqno (8), event (4), version (1); key the
	// collection's name; value manifest uid (8), scope (4), collection (4).
	add("DCP_SYSTEM_EVENT", DCP_SYSTEM_EVENT, 5, 0xa0b0c0d0, 0, 0,
		cat(dcpSeqno, u32(0), []byte{0}), []byte("orders"), cat(dcpEnd, u32(8), u32(9)), nil)
	// seqno-advanced.md: the seqno (8).
	add("DCP_SEQNO_ADVANCED", DCP_SEQNO_ADV, 5, 0xa0b0c0d0, 0, 0, dcpEnd, nil, nil, nil)
	// oso_snapshot.md: flags (4): 1 start, 2 end.
	add("DCP_OSO_SNAPSHOT", DCP_OSO_SNAPSHOT, 5, 0xa0b0c0d0, 0, 0, u32(1), nil, nil, nil)
	// set-vbucket-state.md: the state (1).
	add("DCP_SET_VBUCKET_STATE", DCP_SET_VBUCKET_STATE, 5, 0xa0b0c0d0, 0, 0, []byte{1}, nil, nil, nil)
	// no-op.md and buffer-ack.md: nothing; the bytes acknowledged (4).
	add("DCP_NOOP", UPR_NOOP, 0, 0x0a0b0c0d, 0, 0, nil, nil, nil, nil)
	add("DCP_BUFFER_ACKNOWLEDGEMENT", UPR_BUFFERACK, 0, 0x0a0b0c0d, 0, 0, u32(0x00102030), nil, nil, nil)
	// set_with_meta.md: flags, expiry, rev seqno, CAS, options, nmeta
	// (30: at 28; 26: at 24); the extended metadata ends the value.
	add("SET_WITH_META nmeta 30", SET_WITH_META, 3, 0, 0, 0,
		cat(u32(7), u32(10), dcpRev, binary.BigEndian.AppendUint64(nil, dcpCAS), u32(0x08), []byte{0x00, 0x02}),
		[]byte("mykey"), []byte("myvalue"), []byte{0x01, 0x02})
	add("DEL_WITH_META nmeta 26", DELETE_WITH_META, 3, 0, 0, 0,
		cat(u32(0), u32(0), dcpRev, binary.BigEndian.AppendUint64(nil, dcpCAS), []byte{0x00, 0x01}),
		[]byte("mykey"), nil, []byte{0x09})
	return out
}()

func init() { goldenRequests = append(goldenRequests, goldenDCP...) }

// TestStreamRequestVBUUID is the bug as a user met it: a stream request
// whose vbuuid has bytes at extras offset 28-29 decodes, its value empty.
func TestStreamRequestVBUUID(t *testing.T) {
	for _, g := range goldenDCP {
		if g.name != "DCP_STREAM_REQ" {
			continue
		}
		var req MCRequest
		if _, err := req.Receive(bytes.NewReader(g.wire), nil); err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(req.Extras) != 48 || len(req.Body) != 0 || len(req.ExtMeta) != 0 ||
			!bytes.Equal(req.Extras[24:32], dcpVBUUID) {
			t.Fatalf("decoded %v", &req)
		}
		return
	}
	t.Fatal("no DCP_STREAM_REQ vector")
}
