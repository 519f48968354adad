package sasl

import (
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := Load(strings.NewReader(`
# users
alice:wonderland
bob:secret
carol:pass:word
!buckets bob travel,beer-sample
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scramLogin runs a full SCRAM exchange with xdg-go's client and returns
// the error, checking the server's signature on success.
func scramLogin(t *testing.T, s *Store, mech, user, password string) (*User, error) {
	t.Helper()
	client, err := hashes[mech].NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := client.NewConversation()
	first, _ := conv.Step("")
	sess, challenge, done, err := s.Start(mech, []byte(first))
	if err != nil || done {
		return nil, err
	}
	final, err := conv.Step(string(challenge))
	if err != nil {
		t.Fatalf("client rejected the server-first message: %v", err)
	}
	verifier, done, err := sess.Step(mech, []byte(final))
	if err != nil {
		return nil, err
	}
	if !done {
		t.Fatal("SCRAM not done after the final message")
	}
	if _, err := conv.Step(string(verifier)); err != nil || !conv.Valid() {
		t.Fatalf("server signature not accepted: %v", err)
	}
	return sess.User(), nil
}

func TestScram(t *testing.T) {
	s := testStore(t)
	for _, mech := range []string{ScramSHA1, ScramSHA256, ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			u, err := scramLogin(t, s, mech, "alice", "wonderland")
			if err != nil || u == nil || u.Name != "alice" {
				t.Fatalf("alice: %v %v", u, err)
			}
			if _, err := scramLogin(t, s, mech, "alice", "wrong"); !errors.Is(err, ErrAuth) {
				t.Fatalf("wrong password: %v", err)
			}
			if _, err := scramLogin(t, s, mech, "mallory", "x"); !errors.Is(err, ErrAuth) {
				t.Fatalf("unknown user: %v", err)
			}
		})
	}
}

func TestPlain(t *testing.T) {
	s := testStore(t)
	for _, tc := range []struct {
		msg  string
		user string
	}{
		{"\x00alice\x00wonderland", "alice"},
		{"alice\x00alice\x00wonderland", "alice"},
		{"\x00carol\x00pass:word", "carol"}, // a colon in the password
		{"\x00alice\x00Wonderland", ""},
		{"\x00mallory\x00x", ""},
		{"bob\x00alice\x00wonderland", ""}, // authorizing as another user
		{"\x00alice", ""},
		{"", ""},
		{"\x00" + strings.Repeat("u", 200) + "\x00x", ""},
	} {
		sess, out, done, err := s.Start(Plain, []byte(tc.msg))
		switch {
		case tc.user == "" && !errors.Is(err, ErrAuth):
			t.Errorf("%q: %v, want ErrAuth", tc.msg, err)
		case tc.user != "" && (err != nil || !done || out != nil || sess.User().Name != tc.user):
			t.Errorf("%q: %v %v", tc.msg, done, err)
		}
	}
}

func TestOutOfOrderAndTampering(t *testing.T) {
	s := testStore(t)
	var nilSession *Session
	if _, _, err := nilSession.Step(ScramSHA256, []byte("c=biws,r=x,p=y")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("step without start: %v", err)
	}
	if _, _, _, err := s.Start("SCRAM-MD5", []byte("n,,n=alice,r=abc")); !errors.Is(err, ErrUnknownMech) {
		t.Fatalf("unknown mechanism: %v", err)
	}
	if _, _, _, err := s.Start(ScramSHA256, []byte("garbage")); !errors.Is(err, ErrAuth) {
		t.Fatalf("garbage first message: %v", err)
	}
	if _, _, _, err := s.Start(ScramSHA256, []byte("n,,n="+strings.Repeat("u", 300)+",r=abc")); !errors.Is(err, ErrAuth) {
		t.Fatalf("overlong user name: %v", err)
	}

	// A proof for another nonce: the client's final message is replayed
	// into a second conversation, which has a different server nonce.
	client, _ := scram.SHA256.NewClient("alice", "wonderland", "")
	conv := client.NewConversation()
	first, _ := conv.Step("")
	sess1, challenge, _, _ := s.Start(ScramSHA256, []byte(first))
	final, _ := conv.Step(string(challenge))
	sess2, _, _, _ := s.Start(ScramSHA256, []byte(first))
	if _, _, err := sess2.Step(ScramSHA256, []byte(final)); !errors.Is(err, ErrAuth) {
		t.Fatalf("proof for the wrong nonce: %v", err)
	}
	// The step must name the attempt's mechanism.
	if _, _, err := sess1.Step(ScramSHA512, []byte(final)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("mechanism changed mid-attempt: %v", err)
	}
	if _, done, err := sess1.Step(ScramSHA256, []byte(final)); err != nil || !done {
		t.Fatalf("the right step: %v", err)
	}
	// A finished attempt takes no more steps.
	if _, _, err := sess1.Step(ScramSHA256, []byte(final)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("step after completion: %v", err)
	}
}

func TestBucketsAndFile(t *testing.T) {
	s := testStore(t)
	alice, _ := s.Lookup("alice")
	bob, _ := s.Lookup("bob")
	if !alice.MayUse("anything") || !bob.MayUse("travel") || !bob.MayUse("beer-sample") || bob.MayUse("default") {
		t.Fatalf("bucket rights: alice %v bob %v", alice.Buckets, bob.Buckets)
	}
	if s.Len() != 3 {
		t.Fatalf("%d users", s.Len())
	}
	for _, bad := range []string{"nocolon\n", ":password\n", "!buckets bob\n", "a:b\n!buckets nobody x\n"} {
		_, err := Load(strings.NewReader(bad))
		if !errors.Is(err, ErrBadFile) || strings.Contains(err.Error(), "password\n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Errors never repeat the password.
	_, err := Load(strings.NewReader(strings.Repeat("u", 200) + ":hunter2\n"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("long user: %v", err)
	}
	if _, err := LoadFile("/nonexistent/auth"); err == nil {
		t.Fatal("missing file loaded")
	}
}
