package peer

import (
	"bytes"
	"net"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// The helper starts a memcached that answers a binary NOOP.
func TestMemcachedAnswers(t *testing.T) {
	addr := Memcached(t)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := gm.MCRequest{Opcode: gm.VERSION, Opaque: 42}
	if _, err := req.Transmit(c); err != nil {
		t.Fatal(err)
	}
	var res gm.MCResponse
	if _, err := res.Receive(c, nil); err != nil {
		t.Fatal(err)
	}
	if res.Status != gm.SUCCESS || res.Opaque != 42 || !bytes.HasPrefix(res.Body, []byte("1.6")) {
		t.Fatalf("VERSION answered %v %q", &res, res.Body)
	}
}

// memcached -S accepts the sasldb user with PLAIN and refuses a wrong
// password.
func TestMemcachedSASL(t *testing.T) {
	addr := MemcachedSASL(t, "tester", "sekrit")
	for _, tc := range []struct {
		pass string
		want gm.Status
	}{{"wrong", gm.AUTH_ERROR}, {"sekrit", gm.SUCCESS}} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req := gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte("PLAIN"), Body: []byte("\x00tester\x00" + tc.pass)}
		req.Transmit(c)
		var res gm.MCResponse
		if _, err := res.Receive(c, nil); err != nil || res.Status != tc.want {
			t.Fatalf("password %q: %v %v", tc.pass, res.Status, err)
		}
		c.Close()
	}
}
