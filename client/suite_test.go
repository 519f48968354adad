package memcached

// The behaviour suite: every method of the client against a real server.
// TestMemcached runs it against Debian's memcached 1.6; another server
// (gocache) plugs in with its own Test function calling runBehaviourSuite.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// target is a server for the behaviour suite.
type target struct {
	addr string
	// net is the network of addr; "" means "tcp".
	net string
	// opts are the options of every client (TLSConfig, say).
	opts ClientOptions
	// maxItem is the largest value the server stores: one byte more must
	// be refused with E2BIG. It must be at least 1 MiB + 1 KiB, since the
	// suite stores values of 1 MiB.
	maxItem int
}

func (tg target) network() string {
	if tg.net == "" {
		return "tcp"
	}
	return tg.net
}

// dial connects a client to the target, with the target's options under
// those given; it is closed when the test ends.
func (tg target) dial(t testing.TB, opts ...ClientOptions) *Client {
	t.Helper()
	o := tg.opts
	if len(opts) > 0 {
		o = tg.with(opts[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, tg.network(), tg.addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// with returns o with the target's transport and preparation options
// (TLS, credentials, features, bucket) in place of its own.
func (tg target) with(o ClientOptions) ClientOptions {
	t := tg.opts
	o.TLSConfig = t.TLSConfig
	o.Username, o.Password, o.Mechanism = t.Username, t.Password, t.Mechanism
	o.Features, o.Bucket, o.Name = t.Features, t.Bucket, t.Name
	return o
}

func TestMemcached(t *testing.T) {
	addr := peer.Memcached(t, "-I", "2m", "-t", "2")
	runBehaviourSuite(t, target{addr: addr, maxItem: 2 << 20})
}

// TestMemcachedTLS runs the suite over TLS, with a certificate made for the
// test.
func TestMemcachedTLS(t *testing.T) {
	certFile, keyFile, roots := testCertificate(t)
	addr := peer.Memcached(t, "-I", "2m", "-t", "2", "-Z",
		"-o", "ssl_chain_cert="+certFile+",ssl_key="+keyFile)
	runBehaviourSuite(t, target{addr: addr, maxItem: 2 << 20,
		opts: ClientOptions{TLSConfig: &tls.Config{RootCAs: roots}}})
	// The reference's entry point, and a custom dialer under TLS.
	c, err := ConnectTLS("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	alive(t, c)
	dialed := 0
	d, err := Dial(context.Background(), "tcp", addr, ClientOptions{
		TLSConfig: &tls.Config{RootCAs: roots},
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed++
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	if err != nil || dialed != 1 {
		t.Fatalf("Dial with a custom dialer: %v (dialled %d times)", err, dialed)
	}
	defer d.Close()
	alive(t, d)
	if _, err := ConnectTLS("tcp", addr, &tls.Config{}); err == nil {
		t.Error("TLS with an unknown certificate authority succeeded")
	}
}

// TestMemcachedUnix runs the suite over a unix socket.
func TestMemcachedUnix(t *testing.T) {
	runBehaviourSuite(t, target{addr: memcachedUnix(t, "-I", "2m", "-t", "2"), net: "unix", maxItem: 2 << 20})
}

// memcachedUnix starts memcached on a unix socket (peer.Memcached listens
// on TCP only) and returns the socket's path.
func memcachedUnix(t *testing.T, args ...string) string {
	bin := peer.Require(t, "memcached")
	sock := filepath.Join(t.TempDir(), "mc.sock")
	full := []string{"-s", sock}
	if os.Geteuid() == 0 {
		full = append(full, "-u", "root")
	}
	cmd := exec.Command(bin, append(full, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		select {
		case <-exited:
			t.Fatalf("memcached exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached not listening on %s: %s", sock, out.String())
		}
	}
}

// testCertificate writes a self-signed certificate for 127.0.0.1 and its
// key, and returns their files and a pool trusting it.
func testCertificate(t testing.TB) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile = peer.SelfSignedCert(t, t.TempDir())
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in " + certFile)
	}
	return certFile, keyFile, roots
}

// runBehaviourSuite runs every behaviour test against tg. The tests share
// the server, so each uses keys of its own.
func runBehaviourSuite(t *testing.T, tg target) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tg target)
	}{
		{"SetGet", testSetGet},
		{"Flags", testFlags},
		{"Missing", testMissing},
		{"Add", testAdd},
		{"SetCas", testSetCas},
		{"Append", testAppend},
		{"Del", testDel},
		{"IncrDecr", testIncrDecr},
		{"GetAndTouch", testGetAndTouch},
		{"Expiry", testExpiry},
		{"BinaryValues", testBinaryValues},
		{"LargeValues", testLargeValues},
		{"TooLarge", testTooLarge},
		{"KeyTooLong", testKeyTooLong},
		{"ClientContext", testClientContext},
		{"CAS", testCAS},
		{"CASConcurrent", testCASConcurrent},
		{"GetBulk", testGetBulk},
		{"GetBulkLarge", testGetBulkLarge},
		{"GetBulkEdges", testGetBulkEdges},
		{"Stats", testStats},
		{"SendDo", testSendDo},
		{"DoQuiet", testDoQuiet},
		{"DoContext", testDoContext},
		{"TransmitReceive", testTransmitReceive},
		{"ReceiveDeadline", testReceiveDeadline},
		{"DataPool", testDataPool},
		{"Hijack", testHijack},
		{"Deadlines", testDeadlines},
		{"Settings", testSettings},
		{"Concurrent64", testConcurrent64},
		{"Pool", testPool},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, tg) })
	}
}

// dialT connects a client to addr, closed when the test ends.
func dialT(t testing.TB, addr string, opts ...ClientOptions) *Client {
	t.Helper()
	var o ClientOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// keyPrefix returns a prefix unique to this test and run.
func keyPrefix(t testing.TB) string {
	return fmt.Sprintf("%x:%s:", rand.Uint32(), strings.ReplaceAll(t.Name(), "/", "."))
}

// alive checks that c answers a NOOP.
func alive(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil || res.Opcode != gomemcached.NOOP {
		t.Fatalf("NOOP: %v, %v", res, err)
	}
}

// ok returns a function that checks a call's results for success:
// ok(t)(c.Get(0, k)).
func ok(t testing.TB) func(*gomemcached.MCResponse, error) *gomemcached.MCResponse {
	return func(res *gomemcached.MCResponse, err error) *gomemcached.MCResponse {
		t.Helper()
		return mustOK(t, res, err)
	}
}

func mustOK(t testing.TB, res *gomemcached.MCResponse, err error) *gomemcached.MCResponse {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if res == nil || res.Status != gomemcached.SUCCESS {
		t.Fatalf("unexpected response %v", res)
	}
	return res
}

// wantStatus checks a failed call of the reference's style: the response
// returned both as value and as error, with the status and its sentinel.
func wantStatus(t testing.TB, res *gomemcached.MCResponse, err error, st gomemcached.Status, sentinel error) {
	t.Helper()
	if res == nil || err == nil {
		t.Fatalf("want status %v, got res %v err %v", st, res, err)
	}
	if res.Status != st {
		t.Fatalf("status %v, want %v", res.Status, st)
	}
	if err != error(res) {
		t.Errorf("the error is not the response: %v", err)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) is false", err, sentinel)
	}
	if got := gomemcached.IsNotFound(err); got != (st == gomemcached.KEY_ENOENT) {
		t.Errorf("IsNotFound(%v) = %v", err, got)
	}
}

func testSetGet(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	res := ok(t)(c.Set(0, k, 0, 0, []byte("hello")))
	if res.Cas == 0 {
		t.Error("Set returned no CAS")
	}
	got := ok(t)(c.Get(0, k))
	if string(got.Body) != "hello" || got.Cas != res.Cas || got.Opcode != gomemcached.GET {
		t.Errorf("Get = %v %q, want hello with CAS %d", got, got.Body, res.Cas)
	}
	ok(t)(c.Set(0, k, 0, 0, nil))
	got = ok(t)(c.Get(0, k))
	if len(got.Body) != 0 || got.Body == nil {
		t.Errorf("empty value read as %#v", got.Body)
	}
}

func testFlags(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	for _, flags := range []int{0, 1, 0x7fffffff, 0xdeadbeef} {
		ok(t)(c.Set(0, k, flags, 0, []byte("v")))
		got := ok(t)(c.Get(0, k))
		if len(got.Extras) != 4 || binary.BigEndian.Uint32(got.Extras) != uint32(flags) {
			t.Errorf("flags %#x read back as %x", flags, got.Extras)
		}
	}
}

func testMissing(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "missing"
	res, err := c.Get(0, k)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	var mr *gomemcached.MCResponse
	if !errors.As(err, &mr) || mr != res {
		t.Error("errors.As does not find the response")
	}
	if !c.IsHealthy() {
		t.Error("a miss made the client unhealthy")
	}
}

func testAdd(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Add(0, k, 0, 0, []byte("first")))
	res, err := c.Add(0, k, 0, 0, []byte("second"))
	wantStatus(t, res, err, gomemcached.KEY_EEXISTS, gomemcached.ErrKeyExists)
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "first" {
		t.Errorf("Add overwrote: %q", got.Body)
	}
}

func testSetCas(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	set := ok(t)(c.Set(0, k, 0, 0, []byte("v1")))
	res, err := c.SetCas(0, k, 0, 0, set.Cas+1, []byte("v2"))
	wantStatus(t, res, err, gomemcached.KEY_EEXISTS, gomemcached.ErrKeyExists)
	upd := ok(t)(c.SetCas(0, k, 0, 0, set.Cas, []byte("v3")))
	if upd.Cas == set.Cas {
		t.Error("CAS unchanged by a write")
	}
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "v3" {
		t.Errorf("value %q, want v3", got.Body)
	}
	res, err = c.SetCas(0, keyPrefix(t)+"missing", 0, 0, 12345, []byte("x"))
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
}

func testAppend(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("abc")))
	ok(t)(c.Append(0, k, []byte("def")))
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "abcdef" {
		t.Errorf("value %q, want abcdef", got.Body)
	}
	res, err := c.Append(0, keyPrefix(t)+"missing", []byte("x"))
	wantStatus(t, res, err, gomemcached.NOT_STORED, gomemcached.ErrNotStored)
}

func testDel(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	ok(t)(c.Del(0, k))
	res, err := c.Del(0, k)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	res, err = c.Get(0, k)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
}

func testIncrDecr(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "n"
	steps := []struct {
		name string
		do   func() (uint64, error)
		want uint64
	}{
		{"seed", func() (uint64, error) { return c.Incr(0, k, 5, 40, 0) }, 40},
		{"incr", func() (uint64, error) { return c.Incr(0, k, 2, 0, 0) }, 42},
		{"decr", func() (uint64, error) { return c.Decr(0, k, 10, 0, 0) }, 32},
		{"floor", func() (uint64, error) { return c.Decr(0, k, 100, 0, 0) }, 0},
		{"wrap", func() (uint64, error) {
			c.Set(0, k, 0, 0, []byte(strconv.FormatUint(1<<64-1, 10)))
			return c.Incr(0, k, 2, 0, 0)
		}, 1},
	}
	for _, s := range steps {
		got, err := s.do()
		if err != nil || got != s.want {
			t.Errorf("%s: %d, %v; want %d", s.name, got, err, s.want)
		}
	}
	ok(t)(c.Set(0, k, 0, 0, []byte("not a number")))
	_, err := c.Incr(0, k, 1, 0, 0)
	var res *gomemcached.MCResponse
	if !errors.As(err, &res) || res.Status != gomemcached.DELTA_BADVAL || !errors.Is(err, gomemcached.ErrDeltaBadValue) {
		t.Errorf("incr of a non-number: %v", err)
	}
	if c.IsHealthy() {
		t.Error("DELTA_BADVAL is fatal by gomemcached.IsFatal, yet the client is healthy")
	}
	_, err = c.Incr(0, keyPrefix(t)+"missing", 1, 0, 0xffffffff)
	if !gomemcached.IsNotFound(err) {
		t.Errorf("incr of a missing key with exp 0xffffffff: %v", err)
	}
	if !c.IsHealthy() {
		t.Error("a later non-fatal answer did not restore health")
	}
}

func testGetAndTouch(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 3, 0, []byte("v")))
	got := ok(t)(c.GetAndTouch(0, k, 100))
	if string(got.Body) != "v" || binary.BigEndian.Uint32(got.Extras) != 3 {
		t.Errorf("GAT = %v %q", got, got.Body)
	}
	res, err := c.GetAndTouch(0, keyPrefix(t)+"missing", 100)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
}

// testExpiry checks that exp reaches the server: items set, and touched,
// with one second to live disappear.
func testExpiry(t *testing.T, tg target) {
	c := tg.dial(t)
	p := keyPrefix(t)
	ok(t)(c.Set(0, p+"set", 0, 1, []byte("v")))
	ok(t)(c.Set(0, p+"gat", 0, 0, []byte("v")))
	ok(t)(c.GetAndTouch(0, p+"gat", 1))
	ok(t)(c.Set(0, p+"keep", 0, 100, []byte("v")))
	for _, k := range []string{"set", "gat"} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := c.Get(0, p+k)
			if gomemcached.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: item with 1s to live still there: %v", k, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ok(t)(c.Get(0, p+"keep"))
}

func testBinaryValues(t *testing.T, tg target) {
	c := tg.dial(t)
	p := keyPrefix(t)
	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	values := map[string][]byte{
		"bytes":  all,
		"zeros":  make([]byte, 1000),
		"header": {0x81, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01},
		"one":    {0xff},
	}
	keys := []string{p + "k\x00\x01\xff", p + "k with spaces\r\n", p + "k"}
	for name, v := range values {
		for _, k := range keys {
			ok(t)(c.Set(0, k, 0, 0, v))
			if got := ok(t)(c.Get(0, k)); !bytes.Equal(got.Body, v) {
				t.Errorf("%s under %q: read back %d bytes differing", name, k, len(got.Body))
			}
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testLargeValues(t *testing.T, tg target) {
	c := tg.dial(t)
	p := keyPrefix(t)
	for _, n := range []int{64 << 10, 1 << 20, tg.maxItem - 1024} {
		v := randomBytes(n, uint64(n))
		k := p + strconv.Itoa(n)
		ok(t)(c.Set(0, k, 0, 0, v))
		got := ok(t)(c.Get(0, k))
		if !bytes.Equal(got.Body, v) {
			t.Errorf("%d-byte value read back differing (%d bytes)", n, len(got.Body))
		}
	}
}

func testTooLarge(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "big"
	res, err := c.Set(0, k, 0, 0, make([]byte, tg.maxItem+1))
	wantStatus(t, res, err, gomemcached.E2BIG, gomemcached.ErrValueTooLarge)
	// The connection is still in step.
	ok(t)(c.Set(0, k, 0, 0, []byte("small")))
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "small" {
		t.Errorf("after E2BIG read %q", got.Body)
	}
}

func testKeyTooLong(t *testing.T, tg target) {
	c := tg.dial(t)
	long := strings.Repeat("k", MaxKeyLen+1)
	calls := map[string]func() error{
		"Get":     func() error { _, err := c.Get(0, long); return err },
		"Set":     func() error { _, err := c.Set(0, long, 0, 0, nil); return err },
		"Incr":    func() error { _, err := c.Incr(0, long, 1, 0, 0); return err },
		"GetBulk": func() error { return c.GetBulk(0, []string{"a", long}, map[string]*gomemcached.MCResponse{}, nil) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrKeyTooLong) || !errors.Is(err, gomemcached.ErrInvalidArguments) {
			t.Errorf("%s with a %d-byte key: %v", name, len(long), err)
		}
	}
	k := strings.Repeat("k", MaxKeyLen-len(keyPrefix(t))) // the longest allowed
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	ok(t)(c.Get(0, k))
	if !c.IsHealthy() {
		t.Error("client unhealthy after refused keys")
	}
}

func testClientContext(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	cases := []struct {
		name string
		cc   *ClientContext
		want error
	}{
		{"default collection", &ClientContext{CollId: 0}, nil},
		{"collection", &ClientContext{CollId: 8}, ErrNoCollections},
		{"preserve expiry", &ClientContext{PreserveExpiry: true}, ErrPreserveExpiryNotSupported},
		{"durability", &ClientContext{DurabilityLevel: gomemcached.DuraMajority}, ErrDurabilityNotSupported},
		{"impersonation ignored", &ClientContext{User: "bob"}, nil},
		{"nil context", nil, nil},
	}
	for _, tc := range cases {
		_, err := c.Set(0, k, 0, 0, []byte("v"), tc.cc)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Set returned %v, want %v", tc.name, err, tc.want)
		}
	}
	cp := (&ClientContext{CollId: 3, User: "u", BytesUsedCallback: func(int) {}}).Copy()
	if cp.CollId != 3 || cp.User != "u" || cp.VbState == nil || cp.BytesUsedCallback != nil {
		t.Errorf("Copy = %+v", cp)
	}
}

func testCAS(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	// Create through CAS, then transform.
	res, err := c.CAS(0, k, func(cur []byte) ([]byte, CasOp) {
		if cur != nil {
			t.Errorf("CAS of a missing key saw %q", cur)
		}
		return []byte("1"), CASStore
	}, 0)
	mustOK(t, res, err)
	res, err = c.CAS(0, k, func(cur []byte) ([]byte, CasOp) { return append(cur, '2'), CASStore }, 0)
	mustOK(t, res, err)
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "12" || got.Cas != res.Cas {
		t.Errorf("after CAS: %q cas %d, want 12 cas %d", got.Body, got.Cas, res.Cas)
	}
	if res, err := c.CAS(0, k, func([]byte) ([]byte, CasOp) { return nil, CASQuit }, 0); res != nil || err != CASQuit {
		t.Errorf("CASQuit: %v, %v", res, err)
	}
	ok(t)(c.CAS(0, k, func([]byte) ([]byte, CasOp) { return []byte("ignored"), CASDelete }, 0))
	if _, err := c.Get(0, k); !gomemcached.IsNotFound(err) {
		t.Errorf("CASDelete left the key: %v", err)
	}
	if _, err := c.CAS(0, k, func([]byte) ([]byte, CasOp) { return nil, CASDelete }, 0); err != CASDelete {
		t.Errorf("CASDelete of a missing key: %v", err)
	}

	// CASNext, losing a race once.
	ok(t)(c.Set(0, k, 0, 0, []byte("a")))
	var st CASState
	rounds := 0
	for c.CASNext(0, k, 0, &st) {
		if rounds++; rounds == 1 {
			ok(t)(c.Set(0, k, 0, 0, []byte("b"))) // a concurrent writer
		}
		st.Value = append(st.Value, 'x')
	}
	if st.Err != nil || rounds != 2 {
		t.Fatalf("CASNext: err %v after %d rounds", st.Err, rounds)
	}
	if got := ok(t)(c.Get(0, k)); string(got.Body) != "bx" || got.Cas != st.Cas {
		t.Errorf("CASNext wrote %q (cas %d, state %d), want bx", got.Body, got.Cas, st.Cas)
	}
	for _, op := range []CasOp{CASStore, CASQuit, CASDelete, 9} {
		if op.Error() == "" {
			t.Errorf("CasOp %d has no message", op)
		}
	}
}

// testCASConcurrent increments a counter with CAS from many goroutines on
// one client: every increment must land once.
func testCASConcurrent(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "n"
	const workers, each = 8, 25
	deadline := time.Now().Add(20 * time.Second)
	var done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := 0; i < each && time.Now().Before(deadline); i++ {
				_, err := c.CAS(0, k, func(cur []byte) ([]byte, CasOp) {
					n, _ := strconv.Atoi(string(cur))
					return []byte(strconv.Itoa(n + 1)), CASStore
				}, 0)
				if err != nil {
					t.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if got := ok(t)(c.Get(0, k)); string(got.Body) != strconv.FormatInt(done.Load(), 10) {
		t.Errorf("counter %q after %d increments", got.Body, done.Load())
	}
	if done.Load() != workers*each {
		t.Errorf("%d increments done in the time allowed, want %d", done.Load(), workers*each)
	}
}

func testGetBulk(t *testing.T, tg target) {
	c := tg.dial(t)
	p := keyPrefix(t)
	const n = 5000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = p + strconv.Itoa(i)
		if i%2 == 0 {
			ok(t)(c.Set(0, keys[i], i, 0, []byte("v"+strconv.Itoa(i))))
		}
	}
	rv := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(0, keys, rv, nil); err != nil {
		t.Fatal(err)
	}
	if len(rv) != n/2 {
		t.Errorf("%d results, want %d", len(rv), n/2)
	}
	for i, k := range keys {
		res, ok := rv[k]
		if ok != (i%2 == 0) {
			t.Fatalf("key %d: present %v", i, ok)
		}
		if ok && (string(res.Body) != "v"+strconv.Itoa(i) || binary.BigEndian.Uint32(res.Extras) != uint32(i) ||
			res.Opcode != gomemcached.GET || res.Status != gomemcached.SUCCESS || res.Cas == 0) {
			t.Fatalf("key %d: %v %q", i, res, res.Body)
		}
	}
	// The connection is in step after the fence.
	ok(t)(c.Get(0, keys[0]))
}

func testGetBulkLarge(t *testing.T, tg target) {
	c := tg.dial(t, ClientOptions{ReadTimeout: 10 * time.Second})
	p := keyPrefix(t)
	var keys []string
	want := map[string][]byte{}
	for i := range 6 {
		k := p + strconv.Itoa(i)
		keys = append(keys, k)
		if i == 3 {
			continue // a miss among them
		}
		want[k] = randomBytes(1<<20, uint64(i))
		ok(t)(c.Set(0, k, 0, 0, want[k]))
	}
	// Bulk gets from several goroutines at once, mixed with small gets.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rv := map[string]*gomemcached.MCResponse{}
			if err := c.GetBulk(0, keys, rv, nil); err != nil {
				t.Error(err)
				return
			}
			if len(rv) != len(want) {
				t.Errorf("goroutine %d: %d results, want %d", g, len(rv), len(want))
			}
			for k, v := range want {
				if res := rv[k]; res == nil || !bytes.Equal(res.Body, v) {
					t.Errorf("goroutine %d: %s differs", g, k)
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				if _, err := c.Get(0, p+"absent"); !gomemcached.IsNotFound(err) {
					t.Errorf("small get during bulk: %v", err)
				}
			}
		})
	}
	wg.Wait()
}

func testGetBulkEdges(t *testing.T, tg target) {
	c := tg.dial(t)
	p := keyPrefix(t)
	ok(t)(c.Set(0, p+"one", 0, 0, []byte("1")))
	rv := map[string]*gomemcached.MCResponse{}
	cases := []struct {
		name  string
		keys  []string
		paths []string
		rv    map[string]*gomemcached.MCResponse
		want  error
		n     int
	}{
		{"no keys", nil, nil, rv, nil, 0},
		{"one key", []string{p + "one"}, nil, rv, nil, 1},
		{"one missing key", []string{p + "none"}, nil, rv, nil, 0},
		{"all missing", []string{p + "x", p + "y", p + "z"}, nil, rv, nil, 0},
		{"nil map", []string{p + "one"}, nil, nil, errNilMap, 0},
	}
	for _, tc := range cases {
		clear(rv)
		err := c.GetBulk(0, tc.keys, tc.rv, tc.paths)
		if err != tc.want || len(rv) != tc.n {
			t.Errorf("%s: err %v, %d results; want %v, %d", tc.name, err, len(rv), tc.want, tc.n)
		}
	}
}

func testStats(t *testing.T, tg target) {
	c := tg.dial(t)
	all, err := c.Stats("")
	if err != nil || len(all) < 10 {
		t.Fatalf("Stats: %d values, %v", len(all), err)
	}
	m, err := c.StatsMap("")
	if err != nil || m["pid"] == "" || m["version"] == "" {
		t.Fatalf("StatsMap: %v, %v", m, err)
	}
	if all[0].Key != "pid" {
		t.Errorf("first stat %q, want pid (server order)", all[0].Key)
	}
	n := 0
	if err := c.StatsFunc("", func(k, v []byte) { n++ }); err != nil || n != len(all) {
		t.Errorf("StatsFunc: %d calls, %v; want %d", n, err, len(all))
	}
	used := 0
	spec := map[string]string{"pid": "stale", "version": "", "no such stat": "stale"}
	err = c.StatsMapForSpecifiedStats("", spec, &ClientContext{BytesUsedCallback: func(b int) { used = b }})
	if err != nil || spec["pid"] != m["pid"] || spec["version"] != m["version"] || spec["no such stat"] != "" || len(spec) != 3 {
		t.Errorf("StatsMapForSpecifiedStats: %v, %v", spec, err)
	}
	if used < 24*len(all) {
		t.Errorf("BytesUsedCallback told %d bytes for %d stats", used, len(all))
	}
	settings, err := c.StatsMap("settings")
	if err != nil || settings["item_size_max"] == "" {
		t.Errorf("StatsMap(settings): %v, %v", settings, err)
	}
	_, err = c.Stats("no such group")
	var res *gomemcached.MCResponse
	if !errors.As(err, &res) || res.Status == gomemcached.SUCCESS {
		t.Errorf("Stats of an unknown group: %v", err)
	}
	alive(t, c)
}

func testSendDo(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	req := &gomemcached.MCRequest{Opcode: gomemcached.VERSION, Opaque: 77}
	res, err := c.Send(req)
	if err != nil || !bytes.HasPrefix(res.Body, []byte("1.")) || res.Opaque != 77 {
		t.Fatalf("Send(VERSION) = %v %q, %v", res, res.Body, err)
	}
	if req.Opaque != 77 {
		t.Error("Send modified the request")
	}
	ctx := context.Background()
	res, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k), Opaque: 5})
	var se *gomemcached.ServerError
	if !errors.As(err, &se) || se.Status != gomemcached.KEY_ENOENT || !errors.Is(err, gomemcached.ErrKeyNotFound) ||
		res == nil || res.Opaque != 5 {
		t.Errorf("Do(GET missing) = %v, %v", res, err)
	}
	set := &gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte(k), Extras: make([]byte, 8), Body: []byte("v")}
	if res, err := c.Do(ctx, set); err != nil || res.Status != gomemcached.SUCCESS {
		t.Errorf("Do(SET) = %v, %v", res, err)
	}
	res, err = c.Send(&gomemcached.MCRequest{Opcode: gomemcached.ADD, Key: []byte(k), Extras: make([]byte, 8)})
	wantStatus(t, res, err, gomemcached.KEY_EEXISTS, gomemcached.ErrKeyExists)
	if res, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil || res.Opcode != gomemcached.NOOP {
		t.Errorf("Do(NOOP) = %v, %v", res, err)
	}
	// Encoding errors come back before anything is sent.
	_, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.SET, Extras: make([]byte, 300)})
	if !errors.Is(err, gomemcached.ErrFieldTooLong) {
		t.Errorf("Do with 300 bytes of extras: %v", err)
	}
	ok(t)(c.Get(0, k))
}

func testDoQuiet(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ctx := context.Background()
	res, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GETQ, Key: []byte(k)})
	if res != nil || err != nil {
		t.Errorf("GETQ miss = %v, %v; want nil, nil", res, err)
	}
	res, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.SETQ, Key: []byte(k), Extras: make([]byte, 8), Body: []byte("q")})
	if res != nil || err != nil {
		t.Errorf("SETQ = %v, %v; want nil, nil", res, err)
	}
	res, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GETKQ, Key: []byte(k), Opaque: 9})
	if err != nil || res == nil || string(res.Body) != "q" || string(res.Key) != k || res.Opaque != 9 {
		t.Errorf("GETKQ hit = %v, %v", res, err)
	}
	res, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.ADDQ, Key: []byte(k), Extras: make([]byte, 8)})
	if !errors.Is(err, gomemcached.ErrKeyExists) || res == nil {
		t.Errorf("ADDQ on an existing key = %v, %v", res, err)
	}
}

func testDoContext(t *testing.T, tg target) {
	c := tg.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context: %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Do past its deadline: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil {
		t.Errorf("Do with a live context: %v", err)
	}
}

func testTransmitReceive(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("raw")))
	// Pipelined calls from other goroutines run meanwhile, until the test
	// returns (also by t.Fatal).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := c.Get(0, k); err != nil || string(got.Body) != "raw" {
					t.Errorf("Get during raw use: %v", err)
					return
				}
			}
		})
	}
	for i := uint32(1); i <= 50; i++ {
		op := gomemcached.GET
		if i%2 == 0 {
			op = gomemcached.NOOP
		}
		if err := c.Transmit(&gomemcached.MCRequest{Opcode: op, Key: keyFor(op, k), Opaque: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint32(1); i <= 50; i++ {
		res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
		if err != nil || res.Opaque != i {
			t.Fatalf("Receive %d: %v, %v", i, res, err)
		}
		if i%2 == 1 && string(res.Body) != "raw" {
			t.Errorf("Receive %d: %q", i, res.Body)
		}
	}
	// A failed status comes as the error too.
	c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k + "missing"), Opaque: 99})
	res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	if err := c.TransmitWithDeadline(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 100}, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Receive(); err != nil || res.Opaque != 100 {
		t.Errorf("Receive after TransmitWithDeadline: %v, %v", res, err)
	}
}

func keyFor(op gomemcached.CommandCode, k string) []byte {
	if op == gomemcached.NOOP {
		return nil
	}
	return []byte(k)
}

func testReceiveDeadline(t *testing.T, tg target) {
	c := tg.dial(t)
	start := time.Now()
	_, err := c.ReceiveWithDeadline(start.Add(50 * time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive with nothing to receive: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Receive(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Receive after SetReadDeadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if !c.IsHealthy() {
		t.Error("a Receive timeout made the client unhealthy")
	}
	alive(t, c)
}

func testDataPool(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("pooled value")))
	var got, done atomic.Int32
	var asked atomic.Uint64
	var lent []byte
	err := c.EnableDataPool(func(n uint64) ([]byte, error) {
		got.Add(1)
		asked.Store(n)
		lent = make([]byte, n, 1024)
		return lent, nil
	}, func(b []byte) {
		if cap(b) != 1024 || &b[:1][0] != &lent[:1][0] {
			t.Error("done was handed another buffer than the getter's")
		}
		done.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnableDataPool(nil, nil); err == nil {
		t.Error("EnableDataPool twice succeeded")
	}
	c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k), Opaque: 3})
	res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
	if err != nil || string(res.Body) != "pooled value" || got.Load() != 1 {
		t.Fatalf("Receive with a data pool: %v %q, %v (getter called %d times)", res, res.Body, err, got.Load())
	}
	// Asked for the body (flags and value; the mutation token's extras do
	// not come with a GET), which the response's sections share.
	if n := asked.Load(); n != uint64(len(res.Extras)+len(res.Body)) || &res.Body[:1][0] != &lent[len(res.Extras)] {
		t.Errorf("getter asked for %d bytes for %d of extras and %d of value, or the value is not in its buffer",
			n, len(res.Extras), len(res.Body))
	}
	res.Recycle()
	res.Recycle()
	if done.Load() != 1 {
		t.Errorf("done called %d times", done.Load())
	}
	ok(t)(c.Get(0, k)) // calls do not use the pool
	if got.Load() != 1 {
		t.Errorf("getter called %d times", got.Load())
	}
}

func testHijack(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("before")))
	// A raw response waits in the Receive queue when the hijack happens.
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k), Opaque: 1}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(c.c.raw) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("response never queued")
		}
	}
	conn := c.Hijack()
	if c.IsHealthy() {
		t.Error("healthy after Hijack")
	}
	if _, err := c.Get(0, k); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrHijacked) {
		t.Errorf("Get after Hijack: %v", err)
	}
	if _, ok := conn.(net.Conn); !ok {
		t.Errorf("hijacked connection %T is no longer a net.Conn", conn)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var res gomemcached.MCResponse
	if _, err := res.Receive(conn, nil); err != nil || res.Opaque != 1 || string(res.Body) != "before" {
		t.Fatalf("first packet of the hijacked connection: %v %q, %v", res, res.Body, err)
	}
	c.Close() // leaves the hijacked connection open
	req := gomemcached.MCRequest{Opcode: gomemcached.VERSION, Opaque: 2}
	if _, err := req.Transmit(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Receive(conn, nil); err != nil || res.Opaque != 2 {
		t.Fatalf("raw use after Hijack: %v, %v", res, err)
	}
	conn.Close()
	if again := c.Hijack(); again != c.c.rw {
		t.Error("a second Hijack did not return the transport")
	}
}

func testDeadlines(t *testing.T, tg target) {
	c := tg.dial(t)
	k := keyPrefix(t) + "k"
	c.SetDeadline(time.Now().Add(-time.Second))
	_, err := c.Get(0, k)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Op != gomemcached.GET || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Get past the deadline: %v", err)
	}
	c.SetDeadline(time.Time{})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	c.SetReadDeadline(time.Time{})
	if !c.IsHealthy() {
		t.Error("a timeout made the client unhealthy")
	}
	// A client with a read timeout.
	d := tg.dial(t, ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	ok(t)(d.Get(0, k))
}

func testSettings(t *testing.T, tg target) {
	c := tg.dial(t)
	if c.Replica() {
		t.Error("replica reads on by default")
	}
	c.SetReplica(true)
	if !c.Replica() {
		t.Error("SetReplica(true) did not stick")
	}
	c.SetReplica(false)
	name := c.GetConnName()
	if !strings.HasPrefix(name, ConnName+":") || len(name) != len(ConnName)+1+36 || name == c.GetConnName() {
		t.Errorf("default name %q", name)
	}
	c.SetConnName("mine")
	if c.GetConnName() != "mine" {
		t.Errorf("name %q after SetConnName", c.GetConnName())
	}
	c.SetKeepAliveOptions(30 * time.Second)
	if _, ok := c.Conn().(net.Conn); !ok {
		t.Errorf("Conn() is a %T", c.Conn())
	}
	alive(t, c)
}

// testConcurrent64 hammers one client from 64 goroutines, checking every
// answer.
func testConcurrent64(t *testing.T, tg target) {
	c := tg.dial(t, ClientOptions{ReadTimeout: 10 * time.Second})
	p := keyPrefix(t)
	const goroutines, ops = 64, 300
	deadline := time.Now().Add(30 * time.Second)
	var total atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			k := p + strconv.Itoa(g)
			ck := k + ":n"
			var counter uint64
			seeded := false
			for i := 0; i < ops && time.Now().Before(deadline); i++ {
				switch i % 4 {
				case 0, 1:
					v := make([]byte, 1+r.IntN(2000))
					for j := range v {
						v[j] = byte(r.Uint32())
					}
					if _, err := c.Set(0, k, i, 0, v); err != nil {
						t.Error(err)
						return
					}
					got, err := c.Get(0, k)
					if err != nil || !bytes.Equal(got.Body, v) || binary.BigEndian.Uint32(got.Extras) != uint32(i) {
						t.Errorf("goroutine %d op %d: read back a different value (%v)", g, i, err)
						return
					}
				case 2:
					n, err := c.Incr(0, ck, 3, 0, 0)
					if seeded {
						counter += 3
					}
					seeded = true // the first Incr creates the counter with 0
					if err != nil || n != counter {
						t.Errorf("goroutine %d: counter %d, want %d (%v)", g, n, counter, err)
						return
					}
				case 3:
					if _, err := c.Get(0, k+":absent"); !gomemcached.IsNotFound(err) {
						t.Errorf("goroutine %d: missing key: %v", g, err)
						return
					}
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	if total.Load() < goroutines*20 {
		t.Errorf("only %d operations done in the time allowed", total.Load())
	}
	if c.Pending() != 0 {
		t.Errorf("%d calls still pending", c.Pending())
	}
}

func testPool(t *testing.T, tg target) {
	p := NewPool(tg.network(), tg.addr, PoolOptions{Client: tg.opts, MaxOpen: 4, MaxShared: 2, SharedDepth: 2, MaxIdle: 1})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := keyPrefix(t) + "k"
	set := &gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte(k), Extras: make([]byte, 8), Body: []byte("v")}
	if _, err := p.Do(ctx, set); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 50 {
				c, err := p.Shared(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := c.Get(0, k); err != nil || string(got.Body) != "v" {
					t.Errorf("Get through the pool: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := p.Stats(); s.Shared < 1 || s.Shared > 2 || s.Open > 4 {
		t.Errorf("stats after shared use: %+v", s)
	}

	// Exclusive use: lend every remaining slot, then wait for one.
	var lent []*Client
	for p.Stats().Open < 4 {
		c, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lent = append(lent, c)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := p.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with the pool full: %v", err)
	}
	cancelShort()
	got := make(chan *Client)
	go func() {
		c, err := p.Get(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	time.Sleep(20 * time.Millisecond)
	p.Put(lent[0])
	c := <-got
	if c != lent[0] {
		t.Error("Get did not reuse the connection Put back")
	}
	ok(t)(c.Get(0, k))
	c.Hijack().Close()
	p.Put(c) // a hijacked client is discarded
	for _, c := range lent[1:] {
		p.Put(c)
	}
	if s := p.Stats(); s.Idle != 1 {
		t.Errorf("stats after Put: %+v, want 1 idle", s)
	}
	c, err := p.Get(ctx)
	if err != nil || !c.IsHealthy() {
		t.Fatalf("Get of the idle connection: %v", err)
	}
	p.Put(c)
	p.Close()
	if _, err := p.Get(ctx); err != ErrPoolClosed {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := p.Do(ctx, set); err != ErrPoolClosed {
		t.Errorf("Do after Close: %v", err)
	}
	if s := p.Stats(); s.Open != 0 {
		t.Errorf("stats after Close: %+v", s)
	}
}

func testClose(t *testing.T, tg target) {
	c := tg.dial(t)
	alive(t, c)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if c.IsHealthy() {
		t.Error("healthy after Close")
	}
	_, err := c.Get(0, "k")
	var ce *ConnError
	if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := c.Receive(); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP}); !errors.Is(err, ErrClosed) {
		t.Errorf("Transmit after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestGoroutineLeak checks that clients, pools and their goroutines go
// away on Close.
func TestGoroutineLeak(t *testing.T) {
	addr := peer.Memcached(t)
	settle := func() int {
		n := 0
		for range 50 {
			runtime.GC()
			n = runtime.NumGoroutine()
			time.Sleep(10 * time.Millisecond)
			if n2 := runtime.NumGoroutine(); n2 == n {
				break
			}
		}
		return n
	}
	before := settle()
	for range 10 {
		c, err := Connect("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { c.Get(0, "k") })
		}
		wg.Wait()
		c.GetBulk(0, []string{"a", "b", "c"}, map[string]*gomemcached.MCResponse{}, nil)
		c.Close()
	}
	p := NewPool("tcp", addr, PoolOptions{IdleTimeout: time.Minute})
	ctx := context.Background()
	p.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
	if c, err := p.Get(ctx); err == nil {
		p.Put(c)
	}
	p.Close()
	// A client whose server went away.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if s, err := l.Accept(); err == nil {
			io.Copy(io.Discard, s)
			s.Close()
		}
	}()
	c, err := Connect("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	c.Close()

	var after int
	for deadline := time.Now().Add(5 * time.Second); ; {
		if after = settle(); after <= before || time.Now().After(deadline) {
			break
		}
	}
	if after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// TestGocache runs the suite against gocache, in-process.
func TestGocache(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{MaxItemSize: 2 << 20}})
	runBehaviourSuite(t, target{addr: addr, maxItem: 2 << 20})
}
