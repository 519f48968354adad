// Package sasl is the server side of SASL authentication as Couchbase's KV
// engine and memcached do it over the binary protocol: a Store of users
// whose passwords are kept only as salted SCRAM keys, and a Session that
// carries one authentication attempt through SASL_AUTH and SASL_STEP, with
// the mechanisms PLAIN, SCRAM-SHA1, SCRAM-SHA256 and SCRAM-SHA512 (spelled
// as Couchbase spells them). The SCRAM state machines are
// github.com/xdg-go/scram's.
package sasl

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/xdg-go/scram"
)

// Mechanism names.
const (
	Plain       = "PLAIN"
	ScramSHA1   = "SCRAM-SHA1"
	ScramSHA256 = "SCRAM-SHA256"
	ScramSHA512 = "SCRAM-SHA512"
)

// Mechanisms lists the supported mechanisms, strongest first, as
// SASL_LIST_MECHS answers.
const Mechanisms = ScramSHA512 + " " + ScramSHA256 + " " + ScramSHA1 + " " + Plain

// MaxUsernameLen is the longest user name accepted.
const MaxUsernameLen = 128

// Iterations is the PBKDF2 iteration count of stored SCRAM keys.
const Iterations = 4096

// Errors of authentication. Every failure a client can cause is ErrAuth,
// whatever the reason (unknown user, wrong password, bad proof), so that
// the answer does not tell which.
var (
	ErrAuth        = errors.New("sasl: authentication failed")
	ErrUnknownMech = errors.New("sasl: unknown mechanism")
	ErrNoSession   = errors.New("sasl: step without an authentication in progress")
	ErrBadFile     = errors.New("sasl: malformed credentials file")
)

var hashes = map[string]scram.HashGeneratorFcn{
	ScramSHA1:   scram.SHA1,
	ScramSHA256: scram.SHA256,
	ScramSHA512: scram.SHA512,
}

// User is an account.
type User struct {
	Name string
	// Buckets the user may select; nil means every bucket.
	Buckets []string
	creds   map[string]scram.StoredCredentials
}

// MayUse reports whether the user may select bucket.
func (u *User) MayUse(bucket string) bool {
	return u.Buckets == nil || slices.Contains(u.Buckets, bucket)
}

// Store holds users. It is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	users map[string]*User
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{users: map[string]*User{}} }

// Add adds or replaces a user. The password is kept only as SCRAM keys
// under a fresh random salt, one set per hash.
func (s *Store) Add(name, password string, buckets []string) error {
	if name == "" || len(name) > MaxUsernameLen {
		return fmt.Errorf("sasl: user name must be 1 to %d bytes", MaxUsernameLen)
	}
	u := &User{Name: name, Buckets: buckets, creds: map[string]scram.StoredCredentials{}}
	for mech, hash := range hashes {
		salt := make([]byte, 16)
		rand.Read(salt)
		client, err := hash.NewClient(name, password, "")
		if err != nil {
			return fmt.Errorf("sasl: user %q: %w", name, err)
		}
		cred, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: Iterations})
		if err != nil {
			return fmt.Errorf("sasl: user %q: %w", name, err)
		}
		u.creds[mech] = cred
	}
	s.mu.Lock()
	s.users[name] = u
	s.mu.Unlock()
	return nil
}

// Lookup returns the user called name.
func (s *Store) Lookup(name string) (*User, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	return u, ok
}

// Len returns the number of users.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// Load reads users from lines of "user:password", as memcached's auth
// files are written: the password is everything after the first colon. A
// line "!buckets user bucket,bucket" limits a user, defined anywhere in the
// file, to those buckets. Blank lines and lines starting with '#' are
// skipped. Errors name the line, never the password.
func Load(r io.Reader) (*Store, error) {
	type entry struct {
		line           int
		user, password string
	}
	var users []entry
	limits := map[string][]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "!buckets "):
			fields := strings.Fields(strings.TrimPrefix(line, "!buckets "))
			if len(fields) != 2 {
				return nil, fmt.Errorf("%w: line %d: want !buckets user bucket,bucket", ErrBadFile, n)
			}
			limits[fields[0]] = strings.Split(fields[1], ",")
		default:
			user, password, ok := strings.Cut(line, ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("%w: line %d: want user:password", ErrBadFile, n)
			}
			users = append(users, entry{n, user, password})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	s := NewStore()
	for _, e := range users {
		if err := s.Add(e.user, e.password, limits[e.user]); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadFile, e.line, err)
		}
		delete(limits, e.user)
	}
	for user := range limits {
		return nil, fmt.Errorf("%w: !buckets for unknown user %q", ErrBadFile, user)
	}
	return s, nil
}

// LoadFile reads users from a file in Load's format.
func LoadFile(path string) (*Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Load(f)
}

// Session is one authentication attempt on one connection. It is not safe
// for concurrent use.
type Session struct {
	store *Store
	mech  string
	conv  *scram.ServerConversation
	user  *User
}

// Start begins authenticating with mech and the client's first message.
// It returns the server's answer and whether the attempt is complete; when
// complete and err is nil, User returns the authenticated user. A failed
// attempt returns ErrAuth (or ErrUnknownMech).
func (s *Store) Start(mech string, data []byte) (*Session, []byte, bool, error) {
	sess := &Session{store: s, mech: mech}
	if mech == Plain {
		u, err := s.plain(data)
		if err != nil {
			return nil, nil, true, err
		}
		sess.user = u
		return sess, nil, true, nil
	}
	hash, ok := hashes[mech]
	if !ok {
		return nil, nil, true, ErrUnknownMech
	}
	srv, err := hash.NewServer(func(name string) (scram.StoredCredentials, error) {
		if len(name) > MaxUsernameLen {
			return scram.StoredCredentials{}, ErrAuth
		}
		u, ok := s.Lookup(name)
		if !ok {
			return scram.StoredCredentials{}, ErrAuth
		}
		return u.creds[mech], nil
	})
	if err != nil {
		return nil, nil, true, err
	}
	sess.conv = srv.NewConversation()
	out, err := sess.conv.Step(string(data))
	if err != nil {
		return nil, nil, true, ErrAuth
	}
	return sess, []byte(out), false, nil
}

// Step continues a SCRAM attempt with the client's next message; mech must
// be the attempt's. It returns the server's answer and whether the attempt
// is complete.
func (sess *Session) Step(mech string, data []byte) ([]byte, bool, error) {
	if sess == nil || sess.conv == nil || sess.conv.Done() || mech != sess.mech {
		return nil, true, ErrNoSession
	}
	out, err := sess.conv.Step(string(data))
	if err != nil || !sess.conv.Done() {
		return nil, true, ErrAuth
	}
	if !sess.conv.Valid() {
		return nil, true, ErrAuth
	}
	u, ok := sess.store.Lookup(sess.conv.Username())
	if !ok {
		return nil, true, ErrAuth
	}
	sess.user = u
	return []byte(out), true, nil
}

// User returns the authenticated user of a completed attempt.
func (sess *Session) User() *User {
	if sess == nil {
		return nil
	}
	return sess.user
}

// plain checks a PLAIN message, "authzid\x00user\x00password", against the
// stored SCRAM-SHA512 key.
func (s *Store) plain(data []byte) (*User, error) {
	parts := strings.SplitN(string(data), "\x00", 3)
	if len(parts) != 3 || parts[1] == "" || len(parts[1]) > MaxUsernameLen {
		return nil, ErrAuth
	}
	name, password := parts[1], parts[2]
	if parts[0] != "" && parts[0] != name {
		return nil, ErrAuth // no authorizing as someone else
	}
	u, ok := s.Lookup(name)
	if !ok {
		return nil, ErrAuth
	}
	stored := u.creds[ScramSHA512]
	client, err := scram.SHA512.NewClient(name, password, "")
	if err != nil {
		return nil, ErrAuth
	}
	got, err := client.GetStoredCredentialsWithError(stored.KeyFactors)
	if err != nil || subtle.ConstantTimeCompare(got.StoredKey, stored.StoredKey) != 1 {
		return nil, ErrAuth
	}
	return u, nil
}
