package gocache

import (
	"errors"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// SetTapLimits shrinks the TAP producers' limits of s for the tests: the
// ack interval and window (in intervals), the grace period before a
// consumer that keeps a producer blocked is cut, and the pause before
// messages refused with ETMPFAIL are sent again.
func SetTapLimits(s *Server, interval, window uint32, grace, backoff time.Duration) {
	t := s.srv.Handler.(*handler).mux.Handler(gm.TAP_CONNECT).(*tapServer)
	t.ackInterval, t.ackWindow, t.grace, t.backoff = interval, window, grace, backoff
}

// FuzzTapConnect: parseTapConnect never panics, and what it accepts holds
// only vbucket ids of the bucket, each once, and known flags.
func FuzzTapConnect(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x35}, []byte("node1"), []byte{0, 0, 0, 0, 0, 0, 0, 5, 0, 5, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4})
	f.Add([]byte{0, 0, 0, 0x04}, []byte{}, []byte{0xff, 0xff, 0, 1})
	f.Add([]byte{0, 0, 0, 0x40}, []byte("cp"), []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41})
	f.Add([]byte{}, []byte("x"), []byte{})
	f.Fuzz(func(t *testing.T, extras, key, body []byte) {
		req := gm.MCRequest{Opcode: gm.TAP_CONNECT, Extras: extras, Key: key, Body: body}
		tc, err := parseTapConnect(&req, 16)
		if err != nil {
			if !errors.Is(err, errTapConnect) {
				t.Fatalf("error %v is not errTapConnect", err)
			}
			return
		}
		if tc.flags&^tapKnownFlags != 0 {
			t.Fatalf("unknown flags %v accepted", tc.flags)
		}
		seen := map[uint16]bool{}
		for _, vb := range tc.vbuckets {
			if vb >= 16 || seen[vb] {
				t.Fatalf("vbuckets %v", tc.vbuckets)
			}
			seen[vb] = true
		}
		if len(tc.vbuckets) > len(body)/2 {
			t.Fatalf("%d vbuckets from %d bytes", len(tc.vbuckets), len(body))
		}
	})
}
