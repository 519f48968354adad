package gocache_test

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// Writers on several connections store one key, pipelined, in both
// connection models: the mutation tokens they get back number the stores
// in the order they were applied, which their CAS values give. (Before the
// engine numbered its own changes, gocache took the seqno after the store
// and two writers could get theirs in the opposite order.)
func TestSeqnosFollowApplyOrder(t *testing.T) {
	for _, loops := range []int{0, 2} {
		_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
		const conns, batches, batch = 4, 50, 100
		type token struct{ cas, seqno uint64 }
		var mu sync.Mutex
		var tokens []token
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := storeMany(addr, batches, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range got {
					tokens = append(tokens, token{r[0], r[1]})
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(tokens) != conns*batches*batch {
			t.Fatalf("event loops %d: %d answers", loops, len(tokens))
		}
		slices.SortFunc(tokens, func(a, b token) int { return int(a.cas) - int(b.cas) })
		for i := 1; i < len(tokens); i++ {
			if tokens[i].seqno <= tokens[i-1].seqno {
				t.Fatalf("event loops %d: the store with CAS %d has seqno %d, the one applied before it (CAS %d) seqno %d",
					loops, tokens[i].cas, tokens[i].seqno, tokens[i-1].cas, tokens[i-1].seqno)
			}
		}
	}
}

// storeMany negotiates mutation tokens on a connection of its own, then
// sends batches of SETs of one key in vbucket 9, each batch in one write,
// and returns each answer's CAS and seqno.
func storeMany(addr string, batches, batch int) ([][2]uint64, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := gm.NewReader(nc)
	hello := gm.MCRequest{Opcode: gm.HELLO, Body: binary.BigEndian.AppendUint16(nil, uint16(gm.FeatureMutationSeqno))}
	if _, err := hello.Transmit(nc); err != nil {
		return nil, err
	}
	var res gm.MCResponse
	if err := r.ReadResponse(&res); err != nil || len(res.Body) != 2 {
		return nil, err
	}
	set := gm.MCRequest{Opcode: gm.SET, VBucket: 9, Key: []byte("contended"), Extras: make([]byte, 8), Body: []byte("v")}
	var wire []byte
	var out [][2]uint64
	for range batches {
		wire = wire[:0]
		for range batch {
			wire, _ = set.AppendTo(wire)
		}
		if _, err := nc.Write(wire); err != nil {
			return nil, err
		}
		for range batch {
			if err := r.ReadResponse(&res); err != nil {
				return nil, err
			}
			if res.Status != gm.SUCCESS || len(res.Extras) != 16 {
				return nil, &gm.ServerError{Opcode: res.Opcode, Status: res.Status}
			}
			out = append(out, [2]uint64{res.Cas, binary.BigEndian.Uint64(res.Extras[8:])})
		}
	}
	return out, nil
}
