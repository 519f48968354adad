package gocache_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// statsClient is our client, for STAT calls.
func statsClient(t *testing.T, addr string) *mc.Client {
	t.Helper()
	c, err := mc.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitStats polls group with our client until ok accepts the statistics,
// failing after 5 seconds with the last ones.
func waitStats(t *testing.T, c *mc.Client, group string, ok func(map[string]string) error) map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := c.StatsMap(group)
		if err != nil {
			t.Fatalf("STAT %q: %v", group, err)
		}
		err = ok(m)
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("STAT %q: %v", group, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// want checks exact values: a value "" means the statistic must be
// absent.
func want(m map[string]string, kv ...string) error {
	for i := 0; i < len(kv); i += 2 {
		got, ok := m[kv[i]]
		switch {
		case kv[i+1] == "" && ok:
			return fmt.Errorf("%s = %q, want none", kv[i], got)
		case kv[i+1] != "" && got != kv[i+1]:
			return fmt.Errorf("%s = %q (present %v), want %q", kv[i], got, ok, kv[i+1])
		}
	}
	return nil
}

// rawStats sends STAT key with value over d and returns the statistics.
func rawStats(d *dcpConn, key, value string) map[string]string {
	d.t.Helper()
	op := d.send(gm.MCRequest{Opcode: gm.STAT, Key: []byte(key), Body: []byte(value)})
	m := map[string]string{}
	for {
		pkt, magic := d.must()
		if magic != gm.RES_MAGIC || pkt.Opaque != op {
			continue
		}
		if pkt.VBucket != 0 {
			d.t.Fatalf("STAT %q: status 0x%x", key, pkt.VBucket)
		}
		if len(pkt.Key) == 0 {
			return m
		}
		m[string(pkt.Key)] = string(pkt.Body)
	}
}

// TestDCPStats: STAT dcp and STAT "dcpagg :" report each producer, its
// streams and the bucket's totals under kv_engine's names, as the
// producers send, pause for flow control and close.
func TestDCPStats(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	sc := statsClient(t, addr)
	for i := range 10 {
		if _, err := sc.Set(0, fmt.Sprintf("k%02d", i), 0, 0, []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	m := waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m, "ep_dcp_count", "0", "ep_dcp_producer_count", "0", "ep_dcp_items_sent", "0")
	})
	if len(m) != 8 {
		t.Fatalf("no producer: %v", m)
	}

	// A replication producer with flow control and noops, streaming
	// vbucket 0: a backfill of 10, then live changes.
	const name = "replication:ns_0->ns_1:default"
	const p = "eq_dcpq:" + name + ":"
	const s0 = p + "stream_0_"
	rep := openDCP(t, addr, name, 0)
	for _, kv := range [][2]string{{"connection_buffer_size", "100000"}, {"enable_noop", "true"}, {"send_stream_end_on_client_close_stream", "true"}} {
		if st := rep.control(kv[0], kv[1]); st != 0 {
			t.Fatalf("%s: 0x%x", kv[0], st)
		}
	}
	before := time.Now().Unix()
	res := rep.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0))
	if res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	opaque := res.Opaque
	var sent int // bytes of stream messages
	read := func(mutations int) {
		t.Helper()
		for n := 0; n < mutations; {
			pkt, magic := rep.must()
			if magic != gm.REQ_MAGIC {
				t.Fatalf("response %s", pkt.Opcode)
			}
			sent += pkt.Size()
			if pkt.Opcode == gm.UPR_MUTATION {
				n++
			}
		}
	}
	read(10)
	m = waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m,
			p+"type", "producer",
			p+"items_sent", "10",
			p+"items_remaining", "0",
			p+"total_bytes_sent", strconv.Itoa(sent),
			p+"flow_control", "enabled",
			p+"max_buffer_bytes", "100000",
			p+"unacked_bytes", strconv.Itoa(sent),
			p+"total_acked_bytes", "0",
			p+"supports_ack", "true",
			p+"paused", "false",
			p+"paused_count", "0",
			p+"noop_enabled", "true",
			p+"noop_tx_interval", "120 s",
			p+"noop_wait", "false",
			p+"send_stream_end_on_client_close_stream", "true",
			p+"enable_expiry_opcode", "false",
			p+"cursor_dropping", "false",
			p+"pending_disconnect", "false",
			p+"num_streams", "1",
			p+"num_dead_streams", "0",
			s0+"opaque", strconv.Itoa(int(opaque)),
			s0+"flags", "0",
			s0+"start_seqno", "0",
			s0+"end_seqno", strconv.FormatUint(math.MaxUint64, 10),
			s0+"vb_uuid", "0",
			s0+"snap_start_seqno", "0",
			s0+"snap_end_seqno", "0",
			s0+"state", "in-memory",
			s0+"items_ready", "false",
			s0+"backfill_mem_items", "10",
			s0+"backfill_sent", "10",
			s0+"memory_phase", "0",
			s0+"last_sent_seqno", "10",
			s0+"last_sent_snap_end_seqno", "10",
			s0+"last_read_seqno", "10",
			"ep_dcp_count", "1",
			"ep_dcp_producer_count", "1",
			"ep_dcp_consumer_count", "0",
			"ep_dcp_items_sent", "10",
			"ep_dcp_items_remaining", "0",
			"ep_dcp_total_bytes", strconv.Itoa(sent),
			"ep_dcp_backfill_memory", "10",
			"ep_dcp_num_running_backfills", "0",
			p+"stream_1_opaque", "",
			p+"paused_current_reason", "")
	})
	if c, err := strconv.ParseInt(m[p+"created"], 10, 64); err != nil || c < before-5 || c > before {
		t.Fatalf("created %q, want about %d", m[p+"created"], before)
	}
	if f, err := strconv.ParseFloat(m[p+"last_sent_time"], 64); err != nil || math.Abs(f-float64(time.Now().Unix())) > 5 {
		t.Fatalf("last_sent_time %q", m[p+"last_sent_time"])
	}
	acked := sent
	rep.send(gm.MCRequest{Opcode: gm.UPR_BUFFERACK, Extras: binary.BigEndian.AppendUint32(nil, uint32(acked))})

	// Live changes: the memory phase.
	for i := range 3 {
		if _, err := sc.Set(0, fmt.Sprintf("live%d", i), 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	read(3)
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m,
			p+"items_sent", "13",
			p+"total_bytes_sent", strconv.Itoa(sent),
			p+"unacked_bytes", strconv.Itoa(sent-acked),
			p+"total_acked_bytes", strconv.Itoa(acked),
			s0+"state", "in-memory",
			s0+"memory_phase", "3",
			s0+"backfill_sent", "10",
			s0+"last_sent_seqno", "13",
			s0+"last_sent_snap_end_seqno", "13",
			s0+"last_read_seqno", "13")
	})

	// A second producer, named with no type, with a one-second noop
	// interval and no stream; a third that streams vbucket 1 (empty) and
	// has a 1000 s interval.
	other := openDCP(t, addr, "plain", 0)
	if st := other.control("set_noop_interval", "1"); st != 0 {
		t.Fatal(st)
	}
	third := openDCP(t, addr, "replication:ns_0->ns_2:default", 0)
	if st := third.control("set_noop_interval", "1000"); st != 0 {
		t.Fatal(st)
	}
	if res := third.call(streamReq(1, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m,
			"eq_dcpq:plain:noop_tx_interval", "1000 ms",
			"eq_dcpq:plain:num_streams", "0",
			"eq_dcpq:plain:flow_control", "disabled",
			"eq_dcpq:plain:max_buffer_bytes", "",
			"eq_dcpq:replication:ns_0->ns_2:default:noop_tx_interval", "16m:40s",
			"eq_dcpq:replication:ns_0->ns_2:default:stream_1_state", "in-memory",
			"eq_dcpq:replication:ns_0->ns_2:default:stream_1_last_sent_seqno", "0",
			"ep_dcp_count", "3",
			"ep_dcp_items_sent", "13")
	})
	waitStats(t, sc, "dcpagg :", func(m map[string]string) error {
		return want(m,
			":total:count", "3",
			":total:producer_count", "3",
			":total:activestream_count", "2",
			":total:items_sent", "13",
			":total:items_remaining", "0",
			":total:total_bytes", strconv.Itoa(sent),
			":total:items_backfilled_memory", "10",
			"replication:count", "2",
			"replication:producer_count", "2",
			"replication:items_sent", "13",
			"_unknown:count", "1",
			"_unknown:items_sent", "0",
			"eq_dcpq:count", "")
	})
	// Another separator: "replication:ns_0->ns_1:default" up to "->".
	waitStats(t, sc, "dcpagg ->", func(m map[string]string) error {
		return want(m, "->total:count", "3", "replication:ns_0:count", "2", "_unknown:count", "1")
	})
	if _, err := sc.StatsMap("dcpagg"); err == nil {
		t.Fatal("dcpagg without a separator answered")
	}

	// kv_engine's options: no stream statistics, or each stream's as
	// one JSON object.
	skip := rawStats(other, "dcp", `{"stream_format":"skip"}`)
	if err := want(skip, p+"items_sent", "13", s0+"opaque", "", "ep_dcp_count", "3"); err != nil {
		t.Fatal(err)
	}
	js := rawStats(other, "dcp", `{"stream_format":"json"}`)
	var obj map[string]any
	if err := json.Unmarshal([]byte(js[p+"stream_0"]), &obj); err != nil {
		t.Fatalf("json stream stats %q: %v", js[p+"stream_0"], err)
	}
	if obj["state"] != "in-memory" || obj["last_sent_seqno"] != 13.0 || obj["items_ready"] != false || obj["opaque"] != float64(opaque) {
		t.Fatalf("json stream stats: %v", obj)
	}
	if _, ok := js[s0+"opaque"]; ok {
		t.Fatal("legacy stream stats with stream_format json")
	}

	// Flow control: a window of 500 bytes, not acknowledged, pauses the
	// producer once.
	slow := openDCP(t, addr, "slow", 0)
	if st := slow.control("connection_buffer_size", "500"); st != 0 {
		t.Fatal(st)
	}
	if res := slow.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		if err := want(m, "eq_dcpq:slow:paused", "true", "eq_dcpq:slow:paused_count", "1",
			"eq_dcpq:slow:unpaused_count", "0", "eq_dcpq:slow:paused_current_reason", "BufferLogFull",
			"eq_dcpq:slow:stream_0_state", "backfilling"); err != nil {
			return err
		}
		if r, _ := strconv.Atoi(m["eq_dcpq:slow:items_remaining"]); r == 0 {
			return fmt.Errorf("items_remaining %q", m["eq_dcpq:slow:items_remaining"])
		}
		return nil
	})
	slow.send(gm.MCRequest{Opcode: gm.UPR_BUFFERACK, Extras: binary.BigEndian.AppendUint32(nil, 1<<20)})
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m, "eq_dcpq:slow:unpaused_count", "1", "eq_dcpq:slow:total_acked_bytes", strconv.Itoa(1<<20))
	})

	// Stream ids: the connection says it has them, a stream its id.
	sids := dialDCP(t, addr)
	if hello := sids.call(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("sids"), Body: binary.BigEndian.AppendUint16(nil, uint16(gm.FeatureCollections))}); len(hello.Body) != 2 {
		t.Fatalf("HELLO: %x", hello.Body)
	}
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER)
	if res := sids.call(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte("sids"), Extras: ex}); res.VBucket != 0 {
		t.Fatalf("open: 0x%x", res.VBucket)
	}
	if st := sids.control("enable_stream_id", "true"); st != 0 {
		t.Fatalf("enable_stream_id: 0x%x", st)
	}
	sreq := streamReq(3, 0, 0, math.MaxUint64, 0, 0, 0)
	sreq.Body = []byte(`{"sid":7}`)
	if res := sids.call(sreq); res.VBucket != 0 {
		t.Fatalf("stream with an id: 0x%x", res.VBucket)
	}
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m, "eq_dcpq:sids:enable_stream_id", "true", "eq_dcpq:sids:stream_3_filter_sid", "sid:7",
			p+"enable_stream_id", "false", s0+"filter_sid", "")
	})

	// A closed stream, a closed connection: gone from the statistics.
	if res := third.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, VBucket: 1}); res.VBucket != 0 {
		t.Fatalf("close: 0x%x", res.VBucket)
	}
	rep.c.Close()
	waitStats(t, sc, "dcp", func(m map[string]string) error {
		return want(m, p+"type", "", s0+"opaque", "",
			"eq_dcpq:replication:ns_0->ns_2:default:num_streams", "0",
			"eq_dcpq:replication:ns_0->ns_2:default:stream_1_opaque", "",
			"ep_dcp_count", "4")
	})
}
