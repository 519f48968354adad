// Package peer starts real protocol peers (Debian's memcached, libmemcached
// tools) for tests, on free loopback ports, and stops them when the test
// ends.
//
// On a developer machine without the peer, the test is skipped with a loud
// message; in CI (CI=true in the environment) a missing peer fails the test.
package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where every peer must exist.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Require returns the path of the named program, skipping the test (failing
// it in CI) if it is not installed.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("PEER MISSING: %s is not installed (apt-get install -y memcached libmemcached-tools sasl2-bin); "+
		"this test needs the real peer", name)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip("!!! " + msg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Memcached starts memcached 1.6 on a free loopback port with the given
// extra arguments (for example "-t", "2" or "-I", "2m") and returns its
// address. The process is killed when the test ends.
func Memcached(t testing.TB, args ...string) string {
	t.Helper()
	return MemcachedEnv(t, nil, args...)
}

// MemcachedEnv is Memcached with extra environment variables ("K=V").
func MemcachedEnv(t testing.TB, env []string, args ...string) string {
	t.Helper()
	return MemcachedProcess(t, env, args...).Addr
}

// Process is a memcached started for a test, for faults that only a real
// process can show: one that stops answering (Stop), or dies (Kill).
type Process struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// Stop suspends the process (SIGSTOP) and returns once every thread of it
// has stopped: connections stay open and nothing is answered until
// Continue.
func (p *Process) Stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	tasks := fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if allStopped(tasks) {
			return nil
		}
	}
	return fmt.Errorf("memcached %d did not stop", p.cmd.Process.Pid)
}

// allStopped reports whether every thread listed under dir (a
// /proc/PID/task directory) is in the stopped state.
func allStopped(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return false
	}
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Continue resumes a stopped process (SIGCONT).
func (p *Process) Continue() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Kill kills the process and waits for it to exit; the kernel then closes
// its connections.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// MemcachedProcess is MemcachedEnv returning the process.
func MemcachedProcess(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	bin := Require(t, "memcached")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := FreePort(t)
		full := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0"}
		if os.Geteuid() == 0 {
			full = append(full, "-u", "root")
		}
		full = append(full, args...)
		cmd := exec.Command(bin, full...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting memcached: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(addr, done, 5*time.Second); err != nil {
			cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%v; output: %s", err, strings.TrimSpace(out.String()))
			continue
		}
		p := &Process{Addr: addr, cmd: cmd, done: done}
		t.Cleanup(p.Kill)
		return p
	}
	t.Fatalf("memcached did not start: %v", lastErr)
	return nil
}

// waitListening dials addr until it answers, the process exits or the
// timeout passes.
func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %v", addr, timeout)
}

var versionOnce sync.Once
var version string

// MemcachedVersion returns the installed memcached's version, "" if none.
func MemcachedVersion() string {
	versionOnce.Do(func() {
		out, err := exec.Command("memcached", "-V").Output()
		if err == nil {
			version = strings.TrimSpace(string(out))
		}
	})
	return version
}

// SelfSignedCert writes a fresh self-signed certificate for 127.0.0.1 and
// localhost, and its key, as PEM files in dir and returns their paths.
func SelfSignedCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gomemcached test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// MemcachedSASL starts memcached with SASL required (-S) and one PLAIN
// user in a cyrus sasldb made for the test, and returns its address.
func MemcachedSASL(t testing.TB, user, password string, args ...string) string {
	t.Helper()
	saslpasswd := Require(t, "saslpasswd2")
	dir, err := os.MkdirTemp("", "memcached-sasl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "sasldb")
	cmd := exec.Command(saslpasswd, "-p", "-a", "memcached", "-c", "-f", db, user)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v: %s", err, out)
	}
	conf := "mech_list: plain\nsasldb_path: " + db + "\n"
	if err := os.WriteFile(filepath.Join(dir, "memcached.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// memcached drops to the -u user: everything must be readable.
	for _, p := range []string{dir, db} {
		mode := os.FileMode(0o644)
		if p == dir {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return MemcachedEnv(t, []string{"SASL_CONF_PATH=" + dir}, append([]string{"-S"}, args...)...)
}
