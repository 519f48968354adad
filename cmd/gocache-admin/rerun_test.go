package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// startInProcess starts in-process gocache nodes of a vbucket cluster of
// addrs (one replica, the balanced map) for the indexes in run, the
// others left unstarted (dead), and returns their servers by index.
func startInProcess(t *testing.T, addrs []string, vbuckets int, run ...int) map[int]*gocache.Server {
	t.Helper()
	srvs := map[int]*gocache.Server{}
	for _, i := range run {
		srvs[i] = gocachetest.StartOn(t, addrs[i], gocache.Config{Cache: cache.Config{VBuckets: vbuckets},
			Cluster: &gocache.ClusterConfig{Nodes: addrs, Self: i, Replicas: 1}})
	}
	return srvs
}

// A failover whose promotions did not all happen (here undone after it)
// is finished by a rerun: the survivors hold the new map already, which
// no longer names the failed node, and the rerun still promotes every
// vbucket that map makes active on a survivor and that is not.
func TestFailoverRerun(t *testing.T) {
	const vbuckets, victim = 12, 2
	addrs := make([]string, 3)
	for i := range addrs {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.FreePort(t)))
	}
	srvs := startInProcess(t, addrs, vbuckets, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	count := func(r *FailoverResult) int {
		n := 0
		for _, vbs := range r.Promoted {
			n += len(vbs)
		}
		return n
	}
	first, err := Failover(ctx, addrs, victim, gocache.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(first); n != vbuckets/3 {
		t.Fatalf("first run promoted %d vbuckets, want %d: %v", n, vbuckets/3, first)
	}
	// As if the SET_VBUCKETs had failed: the promoted vbuckets replicas
	// again, the map left as the failover gave it.
	for a, vbs := range first.Promoted {
		c := gocachetest.Dial(t, a)
		for _, vb := range vbs {
			c.SetVBucket(vb, cache.Replica)
		}
	}
	again, err := Failover(ctx, addrs, victim, gocache.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rev != first.Rev+1 || count(again) != vbuckets/3 {
		t.Errorf("rerun: rev %d (first %d), promoted %d, want %d: %v", again.Rev, first.Rev, count(again), vbuckets/3, again)
	}
	for vb := range uint16(vbuckets) {
		if vb%3 != victim {
			continue
		}
		on := (int(vb) + 1) % 3 // the replica of the balanced map
		if st := srvs[on].Cache(gocache.DefaultBucket).State(vb); st != cache.Active {
			t.Errorf("vbucket %d on node %d after the rerun: %v, want active", vb, on, st)
		}
	}
}
