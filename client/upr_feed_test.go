package memcached

// End-to-end tests of the DCP feed against gocache's producer, in
// process. A test whose command gocache does not serve (it answers
// UNKNOWN_COMMAND) skips with a message starting "!!!"; any other failure
// fails.

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// dcpVB is the vbucket the tests stream.
const dcpVB = 5

// dcpWait bounds each wait for an event.
const dcpWait = 5 * time.Second

// dcpGocache starts gocache and returns a client for documents and one
// for the feed.
func dcpGocache(t *testing.T) (kv, dc *Client) {
	t.Helper()
	_, addr := gocachetest.Start(t, gocache.Config{})
	return dialT(t, addr), dialT(t, addr)
}

// skipUnknown skips the test if err says gocache does not know op.
func skipUnknown(t *testing.T, err error, op string) {
	t.Helper()
	if errors.Is(err, gomemcached.ErrUnknownCommand) {
		t.Skip("!!! gocache lacks " + op)
	}
}

// openFeed makes a feed on dc, opens it with features and starts it.
func openFeed(t *testing.T, dc *Client, name string, bufSize uint32, features UprFeatures, ackByClient bool) *UprFeed {
	t.Helper()
	feed, err := dc.NewUprFeedWithConfig(ackByClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.Close)
	err, got := feed.UprOpenWithFeatures(name, 0, bufSize, features)
	skipUnknown(t, err, "DCP_OPEN or DCP_CONTROL")
	if err != nil {
		t.Fatalf("UprOpenWithFeatures: %v", err)
	}
	if got.SendStreamEndOnClose != features.SendStreamEndOnClose {
		t.Fatalf("activated %+v", got)
	}
	if err := feed.StartFeed(); err != nil {
		t.Fatal(err)
	}
	if dc.IsHealthy() {
		t.Error("a client running a feed is healthy")
	}
	return feed
}

// nextEvent returns the feed's next event, failing after dcpWait.
func nextEvent(t *testing.T, feed *UprFeed) *UprEvent {
	t.Helper()
	select {
	case ev, ok := <-feed.GetUprEventCh():
		if !ok {
			t.Fatalf("feed ended: %v", feed.GetError())
		}
		return ev
	case <-time.After(dcpWait):
		t.Fatalf("no event in %v", dcpWait)
	}
	return nil
}

// noEvent checks that no event comes within d.
func noEvent(t *testing.T, feed *UprFeed, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-feed.C:
		if ok {
			t.Fatalf("unexpected %s event: %+v (feed error %v)", ev, ev, feed.GetError())
		}
		t.Fatalf("feed ended: %v", feed.GetError())
	case <-time.After(d):
	}
}

// requestStream requests a stream of dcpVB and returns the answer's event.
func requestStream(t *testing.T, feed *UprFeed, app uint16, vbuuid, start, end uint64) *UprEvent {
	t.Helper()
	if err := feed.UprRequestStream(dcpVB, app, 0, vbuuid, start, end, start, start); err != nil {
		t.Fatalf("UprRequestStream: %v", err)
	}
	ev := nextEvent(t, feed)
	if ev.Opcode != gomemcached.UPR_STREAMREQ {
		t.Fatalf("first event %s, want the stream request's answer", ev)
	}
	if ev.Status == gomemcached.UNKNOWN_COMMAND {
		t.Skip("!!! gocache lacks DCP_STREAM_REQ")
	}
	if ev.Opaque != app || ev.VBucket != dcpVB {
		t.Fatalf("answer for vb %d opaque %#x", ev.VBucket, ev.Opaque)
	}
	return ev
}

// failoverLog returns the latest vbuuid of dcpVB.
func failoverLog(t *testing.T, c *Client) uint64 {
	t.Helper()
	var used int
	logs, err := c.UprGetFailoverLog([]uint16{dcpVB}, &ClientContext{BytesUsedCallback: func(n int) { used = n }})
	skipUnknown(t, err, "DCP_GET_FAILOVER_LOG")
	if err != nil {
		t.Fatalf("UprGetFailoverLog: %v", err)
	}
	uuid, _, err := logs[dcpVB].Latest()
	if err != nil || used < 2*gomemcached.HDR_LEN+16 {
		t.Fatalf("failover log %v (%v), %d bytes", logs[dcpVB], err, used)
	}
	return uuid
}

func setDocs(t *testing.T, kv *Client, from, to int, size int) {
	t.Helper()
	val := make([]byte, size)
	for i := from; i < to; i++ {
		if _, err := kv.Set(dcpVB, fmt.Sprintf("k%04d", i), 7, 0, val); err != nil {
			t.Fatal(err)
		}
	}
}

// mutations reads events until n mutations came, checking their keys and
// order, skipping snapshot markers.
func mutations(t *testing.T, feed *UprFeed, from, n int) (last uint64) {
	t.Helper()
	for i := from; i < from+n; {
		ev := nextEvent(t, feed)
		switch ev.Opcode {
		case gomemcached.UPR_SNAPSHOT:
			if ev.SnapendSeq < ev.SnapstartSeq {
				t.Fatalf("marker %d-%d", ev.SnapstartSeq, ev.SnapendSeq)
			}
		case gomemcached.UPR_MUTATION:
			if want := fmt.Sprintf("k%04d", i); string(ev.Key) != want || ev.Flags != 7 || ev.Seqno <= last {
				t.Fatalf("mutation %q flags %d seqno %d after %d, want %q", ev.Key, ev.Flags, ev.Seqno, last, want)
			}
			if ev.VBucket != dcpVB || ev.AckSize == 0 || ev.Cas == 0 {
				t.Fatalf("mutation %+v", ev)
			}
			last = ev.Seqno
			i++
		default:
			t.Fatalf("unexpected %s event: %+v", ev, ev)
		}
	}
	return last
}

// TestUprFeedStream: backfill, then live changes, then CloseStream.
func TestUprFeedStream(t *testing.T) {
	kv, dc := dcpGocache(t)
	setDocs(t, kv, 0, 5, 10)
	uuid := failoverLog(t, kv)
	feed := openFeed(t, dc, "stream", 1<<20, UprFeatures{}, false)
	if err := feed.SetPriorityAsync(PriorityHigh); err != nil {
		t.Fatal(err)
	}

	ev := requestStream(t, feed, 0xbeef, uuid, 0, math.MaxUint64)
	if ev.Status != gomemcached.SUCCESS || ev.Error != nil || ev.FailoverLog == nil {
		t.Fatalf("stream request: status %v, %v", ev.Status, ev.Error)
	}
	if u, _, _ := ev.FailoverLog.Latest(); u != uuid {
		t.Fatalf("failover log %v, vbuuid %#x", *ev.FailoverLog, uuid)
	}
	last := mutations(t, feed, 0, 5) // the backfill
	setDocs(t, kv, 5, 8, 10)
	if l := mutations(t, feed, 5, 3); l <= last { // live
		t.Fatalf("live seqno %d after %d", l, last)
	}

	if err := feed.CloseStream(dcpVB, 0xbeef); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, feed)
	if ev.Opcode != gomemcached.UPR_STREAMEND || ev.VBucket != dcpVB || ev.VBuuid != uuid {
		t.Fatalf("after CloseStream: %s %+v", ev, ev)
	}
	if err := feed.CloseStream(dcpVB, 0xbeef); err == nil {
		t.Error("CloseStream of a closed stream succeeded")
	}
	st := feed.GetUprStats()
	if st.TotalMutation != 8 || st.TotalSnapShot == 0 || st.TotalBytes == 0 {
		t.Errorf("stats %+v", st)
	}
	feed.Close()
	if !feed.Closed() {
		t.Error("not Closed")
	}
	for range feed.C {
	}
}

// TestUprFeedStreamEnd: a stream with an end seqno ends by itself, reason
// OK, and a second stream of the feed goes on.
func TestUprFeedStreamEnd(t *testing.T) {
	kv, dc := dcpGocache(t)
	setDocs(t, kv, 0, 3, 10)
	uuid := failoverLog(t, kv)
	feed := openFeed(t, dc, "end", 0, UprFeatures{}, false)
	ev := requestStream(t, feed, 1, uuid, 0, 2)
	if ev.Status != gomemcached.SUCCESS {
		t.Fatalf("status %v: %v", ev.Status, ev.Error)
	}
	mutations(t, feed, 0, 2)
	for {
		ev = nextEvent(t, feed)
		if ev.Opcode != gomemcached.UPR_SNAPSHOT {
			break
		}
	}
	if !ev.IsStreamEnd() || ev.Flags != streamEndOK || ev.AckSize == 0 {
		t.Fatalf("got %s %+v, want a stream end with reason 0", ev, ev)
	}
	// The stream is gone: a new one may be requested.
	if ev := requestStream(t, feed, 2, uuid, 0, math.MaxUint64); ev.Status != gomemcached.SUCCESS {
		t.Fatalf("second stream: %v", ev.Status)
	}
	mutations(t, feed, 0, 3)
}

// TestUprFeedFailedRequests: rollback and range errors are delivered as
// events, and the feed goes on (the reference's ends on any status but
// success and rollback).
func TestUprFeedFailedRequests(t *testing.T) {
	kv, dc := dcpGocache(t)
	setDocs(t, kv, 0, 3, 10)
	uuid := failoverLog(t, kv)
	feed := openFeed(t, dc, "fail", 0, UprFeatures{}, false)

	// A vbuuid the vbucket never had, from seqno 2: roll back to 0.
	ev := requestStream(t, feed, 1, uuid^0xffff, 2, math.MaxUint64)
	if ev.Status != gomemcached.ROLLBACK || ev.Seqno != 0 || len(ev.Value) != 8 {
		t.Fatalf("status %v seqno %d value % x", ev.Status, ev.Seqno, ev.Value)
	}
	// start > end: ERANGE.
	if err := feed.UprRequestStream(dcpVB, 2, 0, uuid, 3, 1, 3, 3); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, feed)
	if ev.Opcode != gomemcached.UPR_STREAMREQ || ev.Status != gomemcached.ERANGE || !errors.Is(ev.Error, gomemcached.ErrRange) {
		t.Fatalf("got %s status %v error %v", ev, ev.Status, ev.Error)
	}
	if err := feed.CloseStream(dcpVB, 2); err == nil {
		t.Error("CloseStream of a refused stream succeeded")
	}
	// The feed still streams.
	if ev := requestStream(t, feed, 3, uuid, 0, math.MaxUint64); ev.Status != gomemcached.SUCCESS {
		t.Fatalf("status %v: %v", ev.Status, ev.Error)
	}
	mutations(t, feed, 0, 3)
}

// TestUprFeedFlowControl streams more than the flow-control window many
// times over: it flows only if the feed acknowledges the bytes.
func TestUprFeedFlowControl(t *testing.T) {
	const n, size, window = 300, 200, 4096
	t.Run("feed acks", func(t *testing.T) {
		kv, dc := dcpGocache(t)
		setDocs(t, kv, 0, n, size)
		feed := openFeed(t, dc, "flow", window, UprFeatures{}, false)
		requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
		mutations(t, feed, 0, n)
		if acks := feed.GetUprStats().TotalBufferAckSent; acks < n*size/window {
			t.Errorf("%d buffer acks", acks)
		}
	})
	t.Run("client acks", func(t *testing.T) {
		kv, dc := dcpGocache(t)
		setDocs(t, kv, 0, n, size)
		feed := openFeed(t, dc, "flow", window, UprFeatures{}, true)
		requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
		// Without acks the producer stops at the window.
		got := 0
		var held []*UprEvent
	drain:
		for {
			select {
			case ev := <-feed.C:
				held = append(held, ev)
				if ev.Opcode == gomemcached.UPR_MUTATION {
					got++
				}
			case <-time.After(300 * time.Millisecond):
				break drain
			}
		}
		if got == 0 || got >= n || got*(size+55) > 3*window {
			t.Fatalf("%d mutations without acks, window %d", got, window)
		}
		if err := (&UprFeed{}).ClientAck(held[0]); err == nil {
			t.Error("ClientAck on a feed without ackByClient succeeded")
		}
		for _, ev := range held {
			if err := feed.ClientAck(ev); err != nil {
				t.Fatal(err)
			}
		}
		for got < n {
			ev := nextEvent(t, feed)
			if ev.Opcode == gomemcached.UPR_MUTATION {
				got++
			}
			feed.ClientAck(ev)
		}
	})
}

// TestUprFeedNoop: the producer's noops are answered, so an idle feed
// lives past twice the noop interval (gocache closes a connection that
// leaves a noop unanswered for two intervals).
func TestUprFeedNoop(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3.5 seconds")
	}
	kv, dc := dcpGocache(t)
	skipNoResponses(t, dc)
	feed := openFeed(t, dc, "noop", 1<<20, UprFeatures{}, false)
	if err := feed.control("set_noop_interval", "1"); err != nil {
		t.Fatal(err)
	}
	requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
	noEvent(t, feed, 3500*time.Millisecond)
	setDocs(t, kv, 0, 1, 10)
	mutations(t, feed, 0, 1)
}

// skipNoResponses fails the test if the server c is connected to closes
// a connection that sends it a response (magic 0x81), as a DCP consumer
// answers the producer's NOOPs (kv_engine's no-op.md): it probes with a
// second connection.
func skipNoResponses(t *testing.T, c *Client) {
	t.Helper()
	addr := c.c.rw.(net.Conn).RemoteAddr().String()
	conn, err := net.DialTimeout("tcp", addr, dcpWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	noopRes := dcpPacket(gomemcached.RES_MAGIC, gomemcached.UPR_NOOP, 0, 0, 1, 0, nil, nil, nil, nil)
	noopReq := dcpPacket(gomemcached.REQ_MAGIC, gomemcached.NOOP, 0, 0, 2, 0, nil, nil, nil, nil)
	conn.SetDeadline(time.Now().Add(dcpWait))
	if _, err := conn.Write(join(noopRes, noopReq)); err != nil {
		t.Fatal(err)
	}
	var res gomemcached.MCResponse
	if _, err := res.Receive(conn, nil); err != nil {
		t.Fatalf("gocache closed a connection that sent a response (a consumer's NOOP reply): %v", err)
	}
}

// TestUprFeedConnClosed: closing the client ends the feed; its streams
// end with reason disconnected, and GetError says why.
func TestUprFeedConnClosed(t *testing.T) {
	kv, dc := dcpGocache(t)
	feed := openFeed(t, dc, "closed", 0, UprFeatures{}, false)
	requestStream(t, feed, 7, failoverLog(t, kv), 0, math.MaxUint64)
	dc.Close()
	ev := nextEvent(t, feed)
	if !ev.IsStreamEnd() || ev.Flags != streamEndDisconnected || ev.VBucket != dcpVB {
		t.Fatalf("got %s %+v", ev, ev)
	}
	select {
	case _, ok := <-feed.C:
		if ok {
			t.Fatal("more events")
		}
	case <-time.After(dcpWait):
		t.Fatal("feed not ended")
	}
	if err := feed.GetError(); !errors.Is(err, ErrClosed) {
		t.Errorf("GetError %v", err)
	}
	if !feed.Closed() {
		t.Error("not Closed")
	}
}

// TestUprFeedDeadConnection: with dead-connection detection, a producer
// silent past the threshold ends the feed (the threshold is shortened
// here; the API's least is 240 seconds).
func TestUprFeedDeadConnection(t *testing.T) {
	var f UprFeatures
	if err := f.EnableDeadConnDetection(10); err == nil {
		t.Error("a threshold under twice the noop interval accepted")
	}
	if err := f.EnableDeadConnDetection(240); err != nil {
		t.Fatal(err)
	}
	kv, dc := dcpGocache(t)
	feed := openFeed(t, dc, "dead", 0, f, false)
	feed.readThreshold.Store(int64(300 * time.Millisecond))
	noEvent(t, feed, 600*time.Millisecond) // no stream yet: no clock
	requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
	ev := nextEvent(t, feed)
	if !ev.IsStreamEnd() || ev.Flags != streamEndDisconnected {
		t.Fatalf("got %s %+v", ev, ev)
	}
	for range feed.C {
	}
	if err := feed.GetError(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("GetError %v", err)
	}
}

// TestUprFeedStreamEndOnClose: with SendStreamEndOnClose the stream ends
// with the producer's STREAM_END (reason closed), once.
func TestUprFeedStreamEndOnClose(t *testing.T) {
	kv, dc := dcpGocache(t)
	feed := openFeed(t, dc, "eoc", 0, UprFeatures{SendStreamEndOnClose: true}, false)
	requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
	if err := feed.CloseStream(dcpVB, 1); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, feed)
	if !ev.IsStreamEnd() || ev.Flags != streamEndClosed || ev.AckSize == 0 {
		t.Fatalf("got %s %+v", ev, ev)
	}
	noEvent(t, feed, 200*time.Millisecond)
}

// TestUprFeedCollections: on a collections connection, keys arrive
// without their collection id, which is in CollectionId.
func TestUprFeedCollections(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Manifest: []byte(couchbaseManifest)})
	kv := dialT(t, addr, ClientOptions{Features: couchbaseFeatures})
	dc := dialT(t, addr, ClientOptions{Features: couchbaseFeatures})
	if !dc.CollectionEnabled() {
		t.Fatal("gocache did not turn collections on")
	}
	if _, err := kv.Set(dcpVB, "doc", 0, 0, []byte("v"), &ClientContext{CollId: testCollection}); err != nil {
		t.Fatal(err)
	}
	feed := openFeed(t, dc, "coll", 0, UprFeatures{}, false)
	requestStream(t, feed, 1, failoverLog(t, kv), 0, math.MaxUint64)
	for {
		ev := nextEvent(t, feed)
		if ev.Opcode != gomemcached.UPR_MUTATION {
			continue
		}
		if string(ev.Key) != "doc" || ev.CollectionId != testCollection || !ev.IsCollectionType() {
			t.Fatalf("mutation key %q collection %#x", ev.Key, ev.CollectionId)
		}
		return
	}
}
