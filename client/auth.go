package memcached

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdg-go/scram"

	"github.com/f8e615c8/gomemcached"
)

// SASL authentication (SASL_LIST_MECHS, SASL_AUTH, SASL_STEP) with the
// mechanisms of Couchbase's KV engine, spelled as it spells them. PLAIN
// sends the password; SCRAM (RFC 5802, through github.com/xdg-go/scram)
// sends a proof of it, and checks the server's proof that it knows the
// password too.

// SASL mechanisms, for ClientOptions.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA1   = "SCRAM-SHA1"
	MechanismScramSHA256 = "SCRAM-SHA256"
	MechanismScramSHA512 = "SCRAM-SHA512"
)

// scramMechanisms are the SCRAM mechanisms, strongest first; authChoice
// adds PLAIN, for Auth.
var (
	scramMechanisms = []string{MechanismScramSHA512, MechanismScramSHA256, MechanismScramSHA1}
	authChoice      = []string{MechanismScramSHA512, MechanismScramSHA256, MechanismScramSHA1, MechanismPlain}
)

var scramHashes = map[string]scram.HashGeneratorFcn{
	MechanismScramSHA1:   scram.SHA1,
	MechanismScramSHA256: scram.SHA256,
	MechanismScramSHA512: scram.SHA512,
}

// Limits on what a SCRAM server may ask of the client. The iteration count
// is the client's cost: at the limit, about a second of CPU for SHA-512.
// Below the minimum, 4096 (RFC 7677's advice, xdg-go's default), the
// server's stored keys would be too cheap to attack.
const (
	maxScramIterations = 1 << 20
	maxScramChallenge  = 16 << 10
)

// Errors of authentication found on the client's side, each returned in
// an *AuthError. A server's refusal is a failed status instead (with the
// response as the error in the reference's methods, a
// *gomemcached.ServerError in a *SetupError from Dial): errors.Is matches
// gomemcached.ErrAuthFailed for AUTH_ERROR, whether the user is unknown or
// the password wrong.
var (
	// ErrNoMechanism: the server offers no mechanism this client
	// supports, or the mechanism asked for is unknown.
	ErrNoMechanism = errors.New("memcached: no SASL mechanism in common with the server")
	// ErrCredentials: the user name or password cannot be sent with the
	// mechanism (a NUL byte for PLAIN, a string SASLprep refuses for
	// SCRAM).
	ErrCredentials = errors.New("memcached: credentials cannot be encoded for the mechanism")
	// ErrSASLProtocol: the server broke the SASL exchange: a malformed
	// SCRAM challenge, a nonce that does not extend the client's, an
	// iteration count out of bounds, or a status out of order (SUCCESS
	// before the SCRAM proof, AUTH_CONTINUE to PLAIN or to the proof).
	// The connection stays usable.
	ErrSASLProtocol = errors.New("memcached: the server broke the SASL exchange")
	// ErrServerSignature: the server accepted the SCRAM proof but did not
	// prove that it knows the password (its final message lacks the
	// signature, or the signature is wrong). The server is not the one the
	// credentials belong to, so the connection is closed: later calls fail
	// with a *ConnError that also matches ErrServerSignature.
	ErrServerSignature = errors.New("memcached: the server's SCRAM signature does not verify")
)

// AuthError is an authentication that failed on the client's side. It
// unwraps to Kind.
type AuthError struct {
	// Mechanism is the SASL mechanism used; empty if none was chosen.
	Mechanism string
	// Kind is ErrNoMechanism, ErrCredentials, ErrSASLProtocol or
	// ErrServerSignature.
	Kind error
	// Detail says what was seen.
	Detail string
}

func (e *AuthError) Error() string {
	s := "memcached: "
	if e.Mechanism != "" {
		s += e.Mechanism + ": "
	}
	s += strings.TrimPrefix(e.Kind.Error(), "memcached: ")
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns Kind.
func (e *AuthError) Unwrap() error { return e.Kind }

// Fatal reports whether the connection was closed: only for
// ErrServerSignature (see gomemcached.IsFatal).
func (e *AuthError) Fatal() bool { return e.Kind == ErrServerSignature }

func authErr(mech string, kind error, detail string) *AuthError {
	return &AuthError{Mechanism: mech, Kind: kind, Detail: detail}
}

// AuthList lists the server's SASL mechanisms (SASL_LIST_MECHS): the
// response's value holds their names, separated by spaces.
func (c *Client) AuthList() (*gomemcached.MCResponse, error) {
	return c.c.authList(nil, c.c.readDeadline())
}

// Auth authenticates as user with the mechanism Couchbase's SDKs choose:
// the strongest SCRAM the server lists (SCRAM-SHA512, then SCRAM-SHA256,
// then SCRAM-SHA1), else PLAIN. (The reference's Auth uses PLAIN only, and
// fails if the server does not list it.) Without a mechanism in common it
// fails with an *AuthError matching ErrNoMechanism.
//
// Since the choice follows the server's list, whoever can alter the
// traffic can make it PLAIN: over a network that is not trusted, use TLS,
// or AuthScramSha.
//
// It returns the last response. A refusal is a failed status, returned as
// the error too (errors.Is matches gomemcached.ErrAuthFailed); failures
// found by the client are *AuthErrors, with a nil response. See
// AuthScramSha for what SCRAM checks.
func (c *Client) Auth(user, pass string) (*gomemcached.MCResponse, error) {
	c.c.changed.Store(true)
	return c.c.authenticate(nil, c.c.readDeadline(), "", user, pass)
}

// AuthPlain authenticates as user with PLAIN, which sends the password;
// use it only over TLS or a trusted network. The server must support
// SASL: memcached 1.6 without -S never answers (see EnableFeatures), so
// the call ends only with its deadline. An AUTH_CONTINUE answer fails with
// an *AuthError matching ErrSASLProtocol; a refusal is returned as the
// error, as with Auth.
func (c *Client) AuthPlain(user, pass string) (*gomemcached.MCResponse, error) {
	c.c.changed.Store(true)
	return c.c.authPlain(nil, c.c.readDeadline(), user, pass)
}

// AuthScramSha authenticates as user with the strongest SCRAM mechanism
// the server lists: SCRAM-SHA512, then SCRAM-SHA256, then SCRAM-SHA1
// (ErrNoMechanism if none). Unlike PLAIN, the password never leaves the
// client, and the server must prove that it knows the password too: its
// final message must carry the right signature (v=), else AuthScramSha
// fails with ErrServerSignature and closes the connection, even if the
// status was SUCCESS. A malformed challenge, a nonce that does not extend
// the client's, or an iteration count below 4096 or above 1<<20 fail with
// ErrSASLProtocol. A refusal is returned as the error, as with Auth.
func (c *Client) AuthScramSha(user, pass string) (*gomemcached.MCResponse, error) {
	c.c.changed.Store(true)
	return c.c.authScramBest(nil, c.c.readDeadline(), user, pass)
}

// authList implements AuthList.
func (c *conn) authList(ctx context.Context, hard time.Time) (*gomemcached.MCResponse, error) {
	return c.callCtx(ctx, hard, &request{opcode: gomemcached.SASL_LIST_MECHS})
}

// authenticate authenticates with mech, or with Auth's choice when mech
// is empty.
func (c *conn) authenticate(ctx context.Context, hard time.Time, mech, user, pass string) (*gomemcached.MCResponse, error) {
	if mech == "" {
		offered, res, err := c.mechanisms(ctx, hard)
		if err != nil {
			return res, err
		}
		for _, m := range authChoice {
			if slices.Contains(offered, m) {
				mech = m
				break
			}
		}
		if mech == "" {
			return nil, authErr("", ErrNoMechanism, "the server offers "+strconv.Quote(string(res.Body)))
		}
	}
	if mech == MechanismPlain {
		return c.authPlain(ctx, hard, user, pass)
	}
	if _, ok := scramHashes[mech]; !ok {
		return nil, authErr("", ErrNoMechanism, "unknown mechanism "+strconv.Quote(mech))
	}
	return c.authScram(ctx, hard, mech, user, pass)
}

// mechanisms returns the mechanisms the server lists, and its response.
func (c *conn) mechanisms(ctx context.Context, hard time.Time) ([]string, *gomemcached.MCResponse, error) {
	res, err := c.authList(ctx, hard)
	if err != nil {
		return nil, res, err
	}
	return strings.Fields(string(res.Body)), res, nil
}

// authPlain implements AuthPlain.
func (c *conn) authPlain(ctx context.Context, hard time.Time, user, pass string) (*gomemcached.MCResponse, error) {
	if strings.IndexByte(user, 0) >= 0 || strings.IndexByte(pass, 0) >= 0 {
		return nil, authErr(MechanismPlain, ErrCredentials, "NUL byte in the user name or password")
	}
	body := make([]byte, 0, 2+len(user)+len(pass))
	body = append(append(append(append(body, 0), user...), 0), pass...)
	res, err := c.callCtx(ctx, hard, &request{opcode: gomemcached.SASL_AUTH, key: MechanismPlain, body: body})
	if err != nil {
		return res, err
	}
	if res.Status != gomemcached.SUCCESS {
		return nil, authErr(MechanismPlain, ErrSASLProtocol, "the server answered "+res.Status.String())
	}
	return res, nil
}

// authScramBest implements AuthScramSha.
func (c *conn) authScramBest(ctx context.Context, hard time.Time, user, pass string) (*gomemcached.MCResponse, error) {
	offered, res, err := c.mechanisms(ctx, hard)
	if err != nil {
		return res, err
	}
	for _, m := range scramMechanisms {
		if slices.Contains(offered, m) {
			return c.authScram(ctx, hard, m, user, pass)
		}
	}
	return nil, authErr("", ErrNoMechanism, "no SCRAM mechanism in "+strconv.Quote(string(res.Body)))
}

// authScram runs a SCRAM exchange with mech: the client's first message in
// SASL_AUTH, the server's challenge (AUTH_CONTINUE), the client's proof in
// SASL_STEP, and the server's signature, which must verify.
func (c *conn) authScram(ctx context.Context, hard time.Time, mech, user, pass string) (*gomemcached.MCResponse, error) {
	client, err := scramHashes[mech].NewClient(user, pass, "")
	if err != nil {
		return nil, authErr(mech, ErrCredentials, err.Error())
	}
	conv := client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return nil, authErr(mech, ErrCredentials, err.Error())
	}
	res, err := c.callCtx(ctx, hard, &request{opcode: gomemcached.SASL_AUTH, key: mech, body: []byte(first)})
	if err != nil {
		return res, err
	}
	if res.Status != gomemcached.AUTH_CONTINUE {
		return nil, authErr(mech, ErrSASLProtocol, "the server answered "+res.Status.String()+" to the first message")
	}
	final, err := scramProof(conv, res.Body)
	if err != nil {
		return nil, authErr(mech, ErrSASLProtocol, err.Error())
	}
	res, err = c.callCtx(ctx, hard, &request{opcode: gomemcached.SASL_STEP, key: mech, body: []byte(final)})
	if err != nil {
		return res, err
	}
	if res.Status != gomemcached.SUCCESS {
		return nil, authErr(mech, ErrSASLProtocol, "the server answered "+res.Status.String()+" to the proof")
	}
	if _, err := conv.Step(string(res.Body)); err != nil || !conv.Valid() {
		detail := "no valid signature in the server's final message"
		if err != nil {
			detail = err.Error()
		}
		ae := authErr(mech, ErrServerSignature, detail)
		c.fail(ae)
		return nil, ae
	}
	return res, nil
}

// scramProof checks the server's challenge and returns the client's final
// message, with its proof.
func scramProof(conv *scram.ClientConversation, challenge []byte) (string, error) {
	if err := checkChallenge(challenge); err != nil {
		return "", err
	}
	final, err := conv.Step(string(challenge))
	if err != nil {
		return "", errors.New("challenge: " + err.Error())
	}
	return final, nil
}

// checkChallenge checks the bounds of a SCRAM server-first message that
// xdg-go's parser does not: its size and the iteration count's maximum.
func checkChallenge(b []byte) error {
	if len(b) > maxScramChallenge {
		return errors.New("challenge of " + strconv.Itoa(len(b)) + " bytes")
	}
	// r=nonce,s=salt,i=count[,extensions]
	fields := strings.SplitN(string(b), ",", 4)
	if len(fields) < 3 || !strings.HasPrefix(fields[2], "i=") {
		return nil // malformed: the parser says how
	}
	n, err := strconv.ParseUint(fields[2][2:], 10, 64)
	if err == nil && n > maxScramIterations {
		return errors.New("iteration count " + fields[2][2:] + " above " + strconv.Itoa(maxScramIterations))
	}
	return nil
}
