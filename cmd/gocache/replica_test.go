package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// startBinary starts the gocache binary with args on a free port and
// returns a connection to it, once it listens.
func startBinary(t *testing.T, bin string, args ...string) (addr string, stderr *bytes.Buffer) {
	t.Helper()
	port := peer.FreePort(t)
	cmd := exec.Command(bin, append([]string{"-p", strconv.Itoa(port), "-m", "16"}, args...)...)
	stderr = new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stderr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gocache %v did not listen\n%s", args, stderr)
	return "", nil
}

// call sends req on c and reads its response.
func call(t *testing.T, c net.Conn, r *gm.Reader, req gm.MCRequest) gm.MCResponse {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := req.Transmit(c); err != nil {
		t.Fatal(err)
	}
	var res gm.MCResponse
	if err := r.ReadResponse(&res); err != nil {
		t.Fatal(err)
	}
	res.Body = bytes.Clone(res.Body)
	return res
}

// Two processes: a primary and a replica started with -o replica_of=,
// which serves the primary's writes with GET_REPLICA and takes writes
// once promoted.
func TestReplicaBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	paddr, _ := startBinary(t, bin, "-o", "vbuckets=16")
	raddr, rlog := startBinary(t, bin, "-o", "vbuckets=16,replica_of="+paddr+",replica_reads=true", "-v")
	pc, err := net.Dial("tcp", paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pr := gm.NewReader(pc)
	rc, err := net.Dial("tcp", raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rr := gm.NewReader(rc)
	const n = 200
	cas := make([]uint64, n)
	for i := range n {
		res := call(t, pc, pr, gm.MCRequest{Opcode: gm.SET, VBucket: uint16(i % 16), Key: []byte(fmt.Sprintf("k%d", i)),
			Body: []byte("v"), Extras: make([]byte, 8)})
		if res.Status != gm.SUCCESS {
			t.Fatalf("SET on the primary: %v", res.Status)
		}
		cas[i] = res.Cas
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < n; {
		res := call(t, rc, rr, gm.MCRequest{Opcode: gm.GET_REPLICA, VBucket: uint16(i % 16), Key: []byte(fmt.Sprintf("k%d", i))})
		switch {
		case res.Status == gm.SUCCESS && res.Cas == cas[i] && string(res.Body) == "v":
			i++
		case time.Now().After(deadline):
			t.Fatalf("k%d not replicated within 20s: %v cas %x, want %x\n%s", i, res.Status, res.Cas, cas[i], rlog)
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	// With replica_reads, so is a plain GET.
	if res := call(t, rc, rr, gm.MCRequest{Opcode: gm.GET, VBucket: 5, Key: []byte("k5")}); res.Status != gm.SUCCESS || res.Cas != cas[5] {
		t.Fatalf("GET k5 from the replica: %v cas %x, want %x", res.Status, res.Cas, cas[5])
	}
	// A write to the replica is refused until its vbucket is active.
	set := gm.MCRequest{Opcode: gm.SET, VBucket: 3, Key: []byte("w"), Body: []byte("x"), Extras: make([]byte, 8)}
	if res := call(t, rc, rr, set); res.Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("SET on the replica: %v", res.Status)
	}
	ex := binary.BigEndian.AppendUint32(nil, 1) // active
	if res := call(t, rc, rr, gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 3, Extras: ex}); res.Status != gm.SUCCESS {
		t.Fatalf("SET_VBUCKET: %v", res.Status)
	}
	if res := call(t, rc, rr, set); res.Status != gm.SUCCESS {
		t.Fatalf("SET on the promoted vbucket: %v", res.Status)
	}
	if res := call(t, rc, rr, gm.MCRequest{Opcode: gm.GET, VBucket: 3, Key: []byte("k3")}); res.Status != gm.SUCCESS || res.Cas != cas[3] {
		t.Fatalf("GET k3 on the promoted vbucket: %v cas %x, want %x", res.Status, res.Cas, cas[3])
	}
}

func TestReplicaOptions(t *testing.T) {
	e, err := parseExtended([]string{"replica_of=127.0.0.1:11210,replica_reads=true"})
	if err != nil || e.replicaOf != "127.0.0.1:11210" || !e.replicaReads {
		t.Fatalf("parseExtended: %+v, %v", e, err)
	}
	for _, bad := range []string{"replica_of=nohost", "replica_of=", "replica_reads=maybe"} {
		if _, err := parseExtended([]string{bad}); err == nil {
			t.Errorf("-o %s: no error", bad)
		}
	}
}
