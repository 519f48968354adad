package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// proxyHook sees each packet a proxy passes (toServer: a request), and
// says whether to pass it; false drops it and cuts the connection. It may
// block.
type proxyHook func(toServer bool, pkt []byte) bool

// startProxy serves lp, passing each connection's packets to backend
// through hook.
func startProxy(t *testing.T, lp net.Listener, backend string, hook proxyHook) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { lp.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lp.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			pass := func(dst, src net.Conn, toServer bool) {
				defer wg.Done()
				defer dst.Close()
				defer src.Close()
				for {
					hdr := make([]byte, 24)
					if _, err := io.ReadFull(src, hdr); err != nil {
						return
					}
					pkt := append(hdr, make([]byte, binary.BigEndian.Uint32(hdr[8:12]))...)
					if _, err := io.ReadFull(src, pkt[24:]); err != nil {
						return
					}
					if !hook(toServer, pkt) {
						return
					}
					if _, err := dst.Write(pkt); err != nil {
						return
					}
				}
			}
			wg.Add(2)
			go pass(b, c, true)
			go pass(c, b, false)
		}
	}()
}

// startProxiedCluster is startVBClusterServers with node 0 behind a proxy
// whose address the configs name for it. It returns the addresses the
// configs name and node 0's own.
func startProxiedCluster(t *testing.T, hook proxyHook) (addrs []string, node0 string) {
	t.Helper()
	lp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	_, real := gocachetest.StartCluster(t, vbNodes, func(i int, real []string) gocache.Config {
		named = append([]string{lp.Addr().String()}, real[1:]...)
		return gocache.Config{Cache: cache.Config{VBuckets: vbCount},
			Cluster: &gocache.ClusterConfig{Nodes: named, Self: i, Replicas: 1}}
	})
	startProxy(t, lp, real[0], hook)
	return named, real[0]
}

// A call that may count twice (an increment) whose node applied it and
// then failed before answering (the connection cut, as a node killed
// then does; a timeout) is not run again on the node the map names next:
// only NOT_MY_VBUCKET says the node did nothing. d027ea9 ran it again,
// and the increment counted on both nodes.
func TestVBNoRetryOfAppliedIncrement(t *testing.T) {
	var cut sync.Once
	cutting := make(chan struct{})
	addrs, _ := startProxiedCluster(t, func(toServer bool, pkt []byte) bool {
		if !toServer && gomemcached.CommandCode(pkt[1]) == gomemcached.INCREMENT {
			select {
			case <-cutting:
				drop := false
				cut.Do(func() { drop = true })
				return !drop // applied on node 0, never answered
			default:
			}
		}
		return true
	})
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	const vb = 3 // [0 1]
	key := keyIn(t, vb, "counter")
	if _, err := v.Set(0, key, 0, 0, []byte("5")); err != nil {
		t.Fatal(err)
	}
	// Node 2 claims the vbucket (its map, rev 2): where a refresh after a
	// failure of node 0 sends the call.
	gocachetest.Dial(t, addrs[2]).SetVBucket(vb, cache.Active)
	close(cutting)
	n, err := v.Incr(0, key, 1, 100, 0)
	if err == nil {
		t.Errorf("Incr whose answer was lost succeeded with %d: run again elsewhere", n)
	}
	if res, err := plain(t, addrs[2]).Get(vb, key); err == nil {
		t.Fatalf("node 2 has the counter (%q): the increment node 0 applied ran again there", res.Body)
	}
	// An idempotent call still follows the map after a failure.
	if _, err := v.Set(0, key, 0, 0, []byte("7")); err != nil {
		t.Fatalf("Set after the failure: %v", err)
	}
}

// A DeleteMulti group whose vbucket leaves its node during the pipeline
// (the first delete applied, the others NOT_MY_VBUCKET) sends only the
// refused deletes to the next node: the applied one, replicated there,
// is not deleted again (3cdc7c5 sent the whole group again, and the
// key this call deleted came back as not found).
func TestVBDeleteMultiResendsOnlyRefused(t *testing.T) {
	const vb = 3 // [0 1]
	var keys []string
	for i := 0; len(keys) < 4; i++ {
		keys = append(keys, keyIn(t, vb, "dm"+string(rune('a'+i))))
	}
	var node0, node2 *Client
	var once sync.Once
	armed := make(chan struct{})
	hookErr := make(chan error, 1)
	var deletes atomic.Int32
	addrs, real0 := startProxiedCluster(t, func(toServer bool, pkt []byte) bool {
		if !toServer || gomemcached.CommandCode(pkt[1]) != gomemcached.DELETEQ {
			return true
		}
		select {
		case <-armed:
		default:
			return true
		}
		if deletes.Add(1) != 2 {
			return true
		}
		once.Do(func() {
			// The first delete applied on node 0 and replicated to node 2;
			// then the vbucket leaves node 0.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				_, err := node0.Get(vb, keys[0])
				if errors.Is(err, gomemcached.ErrKeyNotFound) {
					break
				}
				if ctx.Err() != nil {
					hookErr <- errors.New("node 0 never applied the first delete")
					return
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := node2.Del(vb, keys[0]); err != nil {
				hookErr <- err
				return
			}
			if _, err := node0.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.SET_VBUCKET, VBucket: vb,
				Extras: []byte{byte(cache.Dead)}}); err != nil {
				hookErr <- err
			}
		})
		return true
	})
	node0, node2 = plain(t, real0), plain(t, addrs[2])
	v := newVBClient(t, addrs[:1], VBOptions{Timeout: 2 * time.Second})
	gocachetest.Dial(t, addrs[2]).SetVBucket(vb, cache.Active) // node 2's map: rev 2, vbucket 3 there
	for _, k := range keys {
		if _, err := node0.Set(vb, k, 0, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := node2.Set(vb, k, 0, 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	close(armed)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := v.DeleteMulti(ctx, keys)
	select {
	case e := <-hookErr:
		t.Fatalf("proxy: %v", e)
	default:
	}
	if n := deletes.Load(); n < 2 {
		t.Fatalf("%d deletes seen", n)
	}
	if err != nil {
		t.Fatalf("DeleteMulti: %v", err)
	}
	for _, k := range keys {
		if _, err := node2.Get(vb, k); !errors.Is(err, gomemcached.ErrKeyNotFound) {
			t.Fatalf("%s on node 2 after DeleteMulti: %v", k, err)
		}
	}
}
