package gocachetest

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
)

// Conn is a plain binary-protocol connection for tests: each Do sends one
// request and reads its answer within 5 s, failing the test otherwise.
type Conn struct {
	t testing.TB
	c net.Conn
	r *gm.Reader
}

// Dial connects to addr; the connection is closed when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Conn{t: t, c: c, r: gm.NewReader(c)}
}

// Do sends req and returns the answer, its body copied.
func (c *Conn) Do(req gm.MCRequest) gm.MCResponse {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := req.Transmit(c.c); err != nil {
		c.t.Fatal(err)
	}
	var res gm.MCResponse
	if err := c.r.ReadResponse(&res); err != nil {
		c.t.Fatal(err)
	}
	res.Body = bytes.Clone(res.Body)
	return res
}

// SetVBucket sets vbucket vb's state with SET_VBUCKET, failing the test
// unless it succeeds.
func (c *Conn) SetVBucket(vb uint16, st cache.VBState) {
	c.t.Helper()
	if res := c.Do(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: vb, Extras: []byte{byte(st)}}); res.Status != gm.SUCCESS {
		c.t.Fatalf("SET_VBUCKET %d %v: %v", vb, st, res.Status)
	}
}

// SetRequest is a SET of key in vbucket vb with flags.
func SetRequest(vb uint16, key, value string, flags uint32) gm.MCRequest {
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex, flags)
	return gm.MCRequest{Opcode: gm.SET, VBucket: vb, Key: []byte(key), Body: []byte(value), Extras: ex}
}
