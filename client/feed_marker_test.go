package memcached_test

import (
	"context"
	"errors"
	"testing"

	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// TestFeedMarkerV22: a feed with MarkerV22 receives disk snapshots'
// markers of version 2.2, with the producer's purge seqno.
func TestFeedMarkerV22(t *testing.T) {
	// No tombstones: a deletion is purged at once.
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{VBuckets: 4, TombstoneTTL: -1}})
	kv := dialT(t, addr)
	for _, k := range []string{"k1", "k2"} {
		if _, err := kv.Set(0, k, 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Del(0, "k1"); err != nil {
		t.Fatal(err)
	}
	copts := memcached.ClientOptions{Features: memcached.Features{memcached.FeatureCollections}}
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	if _, err := memcached.NewFeed(ctx, dialT(t, addr), memcached.FeedOptions{Name: "v22", MarkerV22: true}); err == nil {
		t.Fatal("MarkerV22 without Collections: no error")
	}
	f := newFeedT(t, addr, memcached.FeedOptions{Name: "v22", Collections: true, MarkerV22: true}, copts)
	if err := f.Add(memcached.StreamSpec{VBucket: 0}); err != nil {
		t.Fatal(err)
	}
	rec := newRec()
	stop, errc := runFeed(t, f, rec)
	evs := rec.waitFor(t, "the backfill", errc, func(evs []memcached.Event) bool { return count(evs, memcached.EventMutation) == 1 })
	var marker *memcached.Event
	for i := range evs {
		if evs[i].Kind == memcached.EventSnapshot {
			marker = &evs[i]
			break
		}
	}
	switch {
	case marker == nil:
		t.Fatal("no snapshot marker")
	case marker.SnapFlags&0x02 == 0:
		t.Fatalf("the backfill's marker %+v is not a disk snapshot's", marker)
	case marker.SnapStart != 0 || marker.SnapEnd != 3 || marker.PurgeSeqno != 3:
		t.Fatalf("marker %d-%d with purge seqno %d, want 0-3 with 3", marker.SnapStart, marker.SnapEnd, marker.PurgeSeqno)
	}
	stop()
	if err := runErr(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
}
