package memcached

// Servers that break the SASL and HELLO exchanges, which no real server
// can be made to do: a SCRAM server whose signature is wrong or missing,
// challenges that are garbage, statuses out of order, malformed HELLO
// answers. Each runs on net.Pipe (pipeServer) with a genuine SCRAM server
// conversation (package sasl) whose answers a test alters.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/sasl"
)

// saslFake returns a client on a server that knows user alice (password
// wonderland) and offers mechs; alter may change each answer before it is
// sent, nonce being the client's SCRAM nonce of the attempt under way.
func saslFake(t *testing.T, mechs string, alter func(req *gomemcached.MCRequest, res *gomemcached.MCResponse, nonce string)) *Client {
	store := sasl.NewStore()
	if err := store.Add("alice", "wonderland", nil); err != nil {
		t.Fatal(err)
	}
	var sess *sasl.Session
	var nonce string
	return pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		res := &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch req.Opcode {
		case gomemcached.SASL_LIST_MECHS:
			res.Body = []byte(mechs)
		case gomemcached.SASL_AUTH:
			if i := strings.Index(string(req.Body), ",r="); i >= 0 {
				nonce = string(req.Body[i+3:])
			}
			s, out, done, err := store.Start(string(req.Key), req.Body)
			switch {
			case err != nil:
				res.Status = gomemcached.AUTH_ERROR
			case done:
				res.Body = []byte("Authenticated")
			default:
				sess, res.Status, res.Body = s, gomemcached.AUTH_CONTINUE, out
			}
		case gomemcached.SASL_STEP:
			out, _, err := sess.Step(string(req.Key), req.Body)
			sess = nil
			if err != nil {
				res.Status = gomemcached.AUTH_ERROR
			} else {
				res.Body = out
			}
		case gomemcached.NOOP:
		default:
			res.Status = gomemcached.UNKNOWN_COMMAND
		}
		if alter != nil {
			alter(req, res, nonce)
		}
		return []*gomemcached.MCResponse{res}
	})
}

// wantAuthError checks err is an *AuthError of kind, with a nil response.
func wantAuthError(t *testing.T, what string, res *gomemcached.MCResponse, err error, kind error) *AuthError {
	t.Helper()
	var ae *AuthError
	if !errors.As(err, &ae) || !errors.Is(err, kind) || res != nil {
		t.Errorf("%s: %v, %v; want an *AuthError matching %q", what, res, err, kind)
		return nil
	}
	if errors.Is(err, gomemcached.ErrAuthFailed) {
		t.Errorf("%s: %v also matches ErrAuthFailed", what, err)
	}
	return ae
}

// The fake itself works: SCRAM and PLAIN succeed when nothing is altered.
func TestSASLFake(t *testing.T) {
	for _, mechs := range []string{"SCRAM-SHA1", "SCRAM-SHA256", "SCRAM-SHA512", "PLAIN"} {
		c := saslFake(t, mechs, nil)
		if res, err := c.Auth("alice", "wonderland"); err != nil || res.Status != gomemcached.SUCCESS {
			t.Errorf("%s: %v, %v", mechs, res, err)
		}
		res, err := c.Auth("alice", "wrong")
		wantAuthFailed(t, mechs+" wrong password", res, err)
	}
}

// Auth's choice of mechanism, and AuthScramSha's, from the server's list.
func TestAuthChoice(t *testing.T) {
	cases := []struct {
		offered     string
		auth, scram string // "" means ErrNoMechanism
	}{
		{"SCRAM-SHA512 SCRAM-SHA256 SCRAM-SHA1 PLAIN", "SCRAM-SHA512", "SCRAM-SHA512"},
		{"PLAIN SCRAM-SHA1 SCRAM-SHA256", "SCRAM-SHA256", "SCRAM-SHA256"},
		{"PLAIN SCRAM-SHA1", "SCRAM-SHA1", "SCRAM-SHA1"},
		{"PLAIN", "PLAIN", ""},
		{"SCRAM-SHA-1 SCRAM-SHA-256 PLAIN", "PLAIN", ""}, // cyrus's spelling is not Couchbase's
		{"  PLAIN\n", "PLAIN", ""},
		{"OAUTHBEARER", "", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		for _, method := range []string{"Auth", "AuthScramSha"} {
			want := tc.auth
			if method == "AuthScramSha" {
				want = tc.scram
			}
			var used string
			c := saslFake(t, tc.offered, func(req *gomemcached.MCRequest, res *gomemcached.MCResponse, _ string) {
				if req.Opcode == gomemcached.SASL_AUTH {
					used = string(req.Key)
				}
			})
			var err error
			if method == "Auth" {
				_, err = c.Auth("alice", "wonderland")
			} else {
				_, err = c.AuthScramSha("alice", "wonderland")
			}
			switch {
			case want == "" && !errors.Is(err, ErrNoMechanism):
				t.Errorf("%s with %q offered: %v, want ErrNoMechanism", method, tc.offered, err)
			case want != "" && (err != nil || used != want):
				t.Errorf("%s with %q offered used %q (%v), want %s", method, tc.offered, used, err, want)
			}
		}
	}
}

// A server whose final message does not prove it knows the password:
// AuthScramSha fails, whatever the status said, and closes the connection.
func TestSCRAMServerSignature(t *testing.T) {
	cases := []struct {
		name  string
		final func(good string) string
	}{
		{"wrong signature", func(good string) string {
			sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(good, "v="))
			sig[0] ^= 1
			return "v=" + base64.StdEncoding.EncodeToString(sig)
		}},
		{"no signature", func(string) string { return "" }},
		{"server error", func(string) string { return "e=other-error" }},
		{"garbage", func(string) string { return "v=!!!" }},
		{"another field", func(good string) string { return "x=1," + good }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := saslFake(t, "SCRAM-SHA256", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse, _ string) {
				if req.Opcode == gomemcached.SASL_STEP && res.Status == gomemcached.SUCCESS {
					res.Body = []byte(tc.final(string(res.Body)))
				}
			})
			res, err := c.AuthScramSha("alice", "wonderland")
			ae := wantAuthError(t, "AuthScramSha", res, err, ErrServerSignature)
			if ae == nil {
				return
			}
			if ae.Mechanism != MechanismScramSHA256 || !ae.Fatal() || !gomemcached.IsFatal(err) {
				t.Errorf("error %+v: mechanism, or not fatal", ae)
			}
			if c.IsHealthy() {
				t.Error("the connection to an impostor stays healthy")
			}
			_, err = c.Get(0, "k")
			var ce *ConnError
			if !errors.As(err, &ce) || !errors.Is(err, ErrClosed) || !errors.Is(err, ErrServerSignature) {
				t.Errorf("Get after a bad signature: %v", err)
			}
		})
	}
}

// Challenges a hostile server may send: each fails with ErrSASLProtocol,
// without a panic, and the connection stays usable.
func TestSCRAMBadChallenge(t *testing.T) {
	salt := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	cases := []struct {
		name      string
		challenge func(nonce string) string
	}{
		{"garbage", func(string) string { return "garbage" }},
		{"empty", func(string) string { return "" }},
		{"binary", func(string) string { return "\x00\xff\x80,,," }},
		{"nonce not extending the client's", func(string) string { return "r=someoneelse,s=" + salt + ",i=4096" }},
		{"nonce a prefix of the client's", func(n string) string { return "r=" + n[:len(n)/2] + ",s=" + salt + ",i=4096" }},
		{"salt not base64", func(n string) string { return "r=" + n + "x,s=!!!,i=4096" }},
		{"no iteration count", func(n string) string { return "r=" + n + "x,s=" + salt }},
		{"iteration count not a number", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=many" }},
		{"negative iteration count", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=-1" }},
		{"too few iterations", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=1" }},
		{"too many iterations", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=2000000000" }},
		{"huge iteration count", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=99999999999999999999999" }},
		{"extension", func(n string) string { return "m=ext,r=" + n + "x,s=" + salt + ",i=4096" }},
		{"fields out of order", func(n string) string { return "s=" + salt + ",r=" + n + "x,i=4096" }},
		{"huge", func(n string) string { return "r=" + n + strings.Repeat("x", 64<<10) + ",s=" + salt + ",i=4096" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			steps := 0
			c := saslFake(t, "SCRAM-SHA512", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse, nonce string) {
				switch req.Opcode {
				case gomemcached.SASL_AUTH:
					res.Body = []byte(tc.challenge(nonce))
				case gomemcached.SASL_STEP:
					steps++
				}
			})
			start := time.Now()
			res, err := c.AuthScramSha("alice", "wonderland")
			wantAuthError(t, "AuthScramSha", res, err, ErrSASLProtocol)
			if steps != 0 {
				t.Error("a proof was sent for a bad challenge")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			if gomemcached.IsFatal(err) || !c.IsHealthy() {
				t.Errorf("fatal (%v) or unhealthy after %v", gomemcached.IsFatal(err), err)
			}
			alive(t, c)
		})
	}
}

// Statuses out of order: SUCCESS before the proof, AUTH_CONTINUE after it
// or to PLAIN.
func TestSASLStatusOutOfOrder(t *testing.T) {
	cases := []struct {
		name   string
		mech   string
		op     gomemcached.CommandCode
		status gomemcached.Status
	}{
		{"SCRAM success without a challenge", MechanismScramSHA1, gomemcached.SASL_AUTH, gomemcached.SUCCESS},
		{"SCRAM continue after the proof", MechanismScramSHA1, gomemcached.SASL_STEP, gomemcached.AUTH_CONTINUE},
		{"PLAIN continue", MechanismPlain, gomemcached.SASL_AUTH, gomemcached.AUTH_CONTINUE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := saslFake(t, tc.mech, func(req *gomemcached.MCRequest, res *gomemcached.MCResponse, _ string) {
				if req.Opcode == tc.op {
					res.Status = tc.status
				}
			})
			res, err := c.Auth("alice", "wonderland")
			wantAuthError(t, "Auth", res, err, ErrSASLProtocol)
			alive(t, c)
		})
	}
}

// Credentials a mechanism cannot carry fail before anything is sent.
func TestSASLCredentials(t *testing.T) {
	sent := 0
	c := saslFake(t, "SCRAM-SHA256 PLAIN", func(req *gomemcached.MCRequest, _ *gomemcached.MCResponse, _ string) {
		if req.Opcode == gomemcached.SASL_AUTH {
			sent++
		}
	})
	res, err := c.AuthPlain("al\x00ice", "wonderland")
	wantAuthError(t, "PLAIN user with NUL", res, err, ErrCredentials)
	res, err = c.AuthPlain("alice", "wonder\x00land")
	wantAuthError(t, "PLAIN password with NUL", res, err, ErrCredentials)
	res, err = c.AuthScramSha("al\x07ice", "wonderland") // SASLprep refuses control characters
	wantAuthError(t, "SCRAM user with BEL", res, err, ErrCredentials)
	if sent != 0 {
		t.Errorf("%d SASL_AUTH sent", sent)
	}
	ok(t)(c.Auth("alice", "wonderland"))
}

// helloFake is a server that answers HELLO with the features asked for,
// as changed by a test, counting the HELLOs with and without a key, and
// records the keys of the requests that carry one.
type helloFake struct {
	keyless, keyed int
	keys           []string
}

// newHelloFake returns a client on a helloFake; answer, if not nil,
// alters its answers to HELLO.
func newHelloFake(t *testing.T, answer func(req *gomemcached.MCRequest, res *gomemcached.MCResponse)) (*Client, *helloFake) {
	f := &helloFake{}
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		res := &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch req.Opcode {
		case gomemcached.HELLO:
			if len(req.Key) == 0 {
				f.keyless++
			} else {
				f.keyed++
			}
			res.Body = append([]byte(nil), req.Body...)
			if answer != nil {
				answer(req, res)
			}
		case gomemcached.GET, gomemcached.GETQ, gomemcached.SET, gomemcached.DELETE:
			f.keys = append(f.keys, string(req.Key))
			switch {
			case req.Opcode == gomemcached.GETQ:
				return nil // a miss
			case req.Opcode == gomemcached.GET && strings.HasSuffix(string(req.Key), "f"):
				res.Extras, res.Body, res.Cas = make([]byte, 4), []byte("v"), 1 // for CAS
			default:
				res.Status = gomemcached.KEY_ENOENT
			}
		}
		return []*gomemcached.MCResponse{res}
	})
	return c, f
}

// Malformed answers to HELLO.
func TestHelloMalformed(t *testing.T) {
	cases := []struct {
		name   string
		answer func(req *gomemcached.MCRequest, res *gomemcached.MCResponse)
		want   error
	}{
		{"odd length", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse) {
			res.Body = append(res.Body, 0)
		}, ErrInvalidHello},
		{"probe answered with a feature", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse) {
			if len(req.Key) == 0 {
				res.Body = []byte{0, 1, 0}
			}
		}, ErrInvalidHello},
		{"another opcode", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse) {
			res.Opcode = gomemcached.NOOP
		}, ErrInvalidHello},
		{"refused", func(req *gomemcached.MCRequest, res *gomemcached.MCResponse) {
			if len(req.Key) > 0 {
				res.Status, res.Body = gomemcached.EINVAL, nil
			}
		}, gomemcached.ErrInvalidArguments},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newHelloFake(t, tc.answer)
			if _, err := c.EnableFeatures(Features{FeatureXerror}); !errors.Is(err, tc.want) {
				t.Errorf("EnableFeatures: %v, want %v", err, tc.want)
			}
			if len(c.c.feat.enabled()) != 0 {
				t.Errorf("features %v recorded", c.c.feat.enabled())
			}
			alive(t, c)
		})
	}
}

// Once a server has answered HELLO, the keyless probe is not sent again;
// and with collections on, every key carries its collection id.
func TestHelloCollections(t *testing.T) {
	c, f := newHelloFake(t, nil)
	c.SetConnName("collections-test")
	ok(t)(c.EnableFeatures(Features{FeatureCollections, FeaturePreserveExpiry}))
	ok(t)(c.EnableFeatures(Features{FeatureCollections, FeatureSyncReplication}))
	if f.keyless != 1 || f.keyed != 2 {
		t.Errorf("%d HELLOs without a key, %d with", f.keyless, f.keyed)
	}
	if !c.CollectionEnabled() || !c.IsFeatureEnabled(FeatureSyncReplication) || c.IsFeatureEnabled(FeaturePreserveExpiry) {
		t.Fatalf("features %v", c.c.feat.enabled())
	}
	c.Get(0, "a")
	c.Get(0, "b", &ClientContext{CollId: 8})
	c.Get(0, "c", &ClientContext{CollId: 0x80})
	c.GetBulk(0, []string{"d", "e"}, map[string]*gomemcached.MCResponse{}, nil)
	c.CAS(0, "f", func([]byte) ([]byte, CasOp) { return []byte("v"), CASStore }, 0)
	if _, err := c.Set(0, "g", 0, 0, nil, &ClientContext{PreserveExpiry: true}); !errors.Is(err, ErrPreserveExpiryNotSupported) {
		t.Errorf("preserve expiry without the feature: %v", err)
	}
	c.Set(0, "h", 0, 0, nil, &ClientContext{DurabilityLevel: gomemcached.DuraMajority})
	want := []string{"\x00a", "\x08b", "\x80\x01c", "\x00d", "\x00e", "\x00f", "\x00f", "\x00h"}
	if fmt.Sprintf("%q", f.keys) != fmt.Sprintf("%q", want) {
		t.Errorf("keys on the wire %q, want %q", f.keys, want)
	}
	ok(t)(c.EnableFeatures(nil))
	if _, err := c.Get(0, "x", &ClientContext{CollId: 8}); !errors.Is(err, ErrNoCollections) {
		t.Errorf("a collection after collections went off: %v", err)
	}
}

// A TimeoutError leaves the connection usable, and says so to IsFatal.
func TestTimeoutNotFatal(t *testing.T) {
	if gomemcached.IsFatal(&TimeoutError{Op: gomemcached.GET}) || gomemcached.IsFatal(fmt.Errorf("wrapped: %w", &TimeoutError{})) {
		t.Error("IsFatal(TimeoutError) is true")
	}
	if !gomemcached.IsFatal(&ConnError{Err: io.EOF}) || !gomemcached.IsFatal(&ConnError{Err: &TimeoutError{}}) {
		t.Error("IsFatal(ConnError) is false")
	}
	slow := make(chan struct{})
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		if req.Opcode == gomemcached.GET {
			<-slow
		}
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k")})
	close(slow)
	var te *TimeoutError
	if !errors.As(err, &te) || gomemcached.IsFatal(err) {
		t.Fatalf("Do past its deadline: %v (fatal %v)", err, gomemcached.IsFatal(err))
	}
	alive(t, c)
	if !c.IsHealthy() {
		t.Error("unhealthy after a timeout")
	}
}

// Hijack hands over the start of a packet at once, without waiting for
// the rest (which here never comes).
func TestHijackPartialPacket(t *testing.T) {
	res := gomemcached.MCResponse{Opcode: gomemcached.GET, Opaque: 1, Extras: make([]byte, 4), Body: []byte("never finished")}
	pkt := res.Bytes()[:30]
	addr := fakeServer(t, func(s net.Conn) {
		readRequests(s, 1)
		s.Write(pkt)
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr)
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k"), Opaque: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the reader take the bytes
	start := time.Now()
	conn := c.Hijack()
	if d := time.Since(start); d >= hijackGrace/2 {
		t.Errorf("Hijack took %v", d)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	got := make([]byte, len(pkt))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(pkt) {
		t.Errorf("hijacked connection yields % x, %v; want % x", got, err, pkt)
	}
	conn.Close()
}

// FuzzSCRAMChallenge feeds arbitrary challenges to the client's side of
// SCRAM: it never panics, and accepts only a challenge that extends its
// nonce, with a salt and an iteration count in bounds.
func FuzzSCRAMChallenge(f *testing.F) {
	const nonce = "fyko+d2lbbFgONRv9qkxdawL"
	salt := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	for _, seed := range []string{
		"r=" + nonce + "3rfcNHYJY1ZVvWVs7j,s=" + salt + ",i=4096",
		"r=" + nonce + "x,s=" + salt + ",i=4096,ext=1",
		"r=" + nonce + ",s=,i=4096",
		"r=" + nonce + "x,s=" + salt + ",i=1",
		"r=" + nonce + "x,s=" + salt + ",i=4294967297",
		"m=ext,r=" + nonce + "x,s=" + salt + ",i=4096",
		"r=other,s=" + salt + ",i=4096",
		"e=invalid-proof",
		"garbage",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, challenge string) {
		// PBKDF2's cost grows with the count: that is not what is fuzzed.
		if fields := strings.SplitN(challenge, ",", 4); len(fields) >= 3 && strings.HasPrefix(fields[2], "i=") {
			if n, err := strconv.ParseUint(fields[2][2:], 10, 64); err == nil && n > 8192 && n <= maxScramIterations {
				t.Skip()
			}
		}
		client, err := scramHashes[MechanismScramSHA256].NewClient("user", "pencil", "")
		if err != nil {
			t.Fatal(err)
		}
		conv := client.WithNonceGenerator(func() string { return nonce }).NewConversation()
		if _, err := conv.Step(""); err != nil {
			t.Fatal(err)
		}
		final, err := scramProof(conv, []byte(challenge))
		if err != nil {
			return
		}
		if !strings.HasPrefix(challenge, "r="+nonce) || !strings.Contains(final, ",p=") {
			t.Errorf("challenge %q accepted: %q", challenge, final)
		}
	})
}
