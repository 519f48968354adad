package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// buildGocache builds cmd/gocache into a temporary directory.
func buildGocache(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, "../gocache").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// node is a gocache process of a test cluster.
type node struct {
	addr string
	cmd  *exec.Cmd
	log  string // its stderr's file
}

// startCluster starts n gocache processes on free loopback ports, a
// vbucket cluster of vbuckets with replicas replicas and the balanced
// map (vbucket vb active on node vb%n, its replicas on the next ones),
// each started with -o cluster=FILE (its own file, naming all of them);
// it returns them once they listen, and the nodes' addresses.
func startCluster(t *testing.T, bin string, n, vbuckets, replicas int) ([]*node, []string) {
	t.Helper()
	dir := t.TempDir()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.FreePort(t)))
	}
	nodes := make([]*node, n)
	for i := range nodes {
		file := filepath.Join(dir, fmt.Sprintf("cluster%d.json", i))
		data, _ := json.Marshal(map[string]any{"nodes": addrs, "self": i, "replicas": replicas})
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addrs[i])
		cmd := exec.Command(bin, "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64", "-v",
			"-o", fmt.Sprintf("vbuckets=%d,cluster=%s", vbuckets, file))
		cmd.Stderr, cmd.Stdout = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		log.Close()
		nodes[i] = &node{addr: addrs[i], cmd: cmd, log: log.Name()}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	for _, nd := range nodes {
		var err error
		for range 500 {
			var c net.Conn
			if c, err = net.Dial("tcp", nd.addr); err == nil {
				c.Close()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			out, _ := os.ReadFile(nd.log)
			t.Fatalf("gocache on %s did not listen: %v\n%s", nd.addr, err, out)
		}
	}
	return nodes, addrs
}

// ack is an acknowledged write: its key, vbucket and mutation token.
type ack struct {
	key          string
	vb           uint16
	uuid, seqno  uint64
	afterKill    bool
	replicated   bool // its seqno was on the replica before the kill
	fromVictim   bool // acknowledged by the killed node
	readableNext bool
}

// token reads a mutation token from a store's answer.
func token(res *gm.MCResponse) (uuid, seqno uint64, ok bool) {
	if res == nil || len(res.Extras) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(res.Extras), binary.BigEndian.Uint64(res.Extras[8:]), true
}

// The 3-node vbucket cluster with one replica: gocache processes,
// a VBClient writing distinct keys, a verifier recording with
// OBSERVE_SEQNO on each replica how far it got; one node killed with
// SIGKILL and failed over with Failover. Afterwards every write
// acknowledged and replicated before the kill is read back with its
// value, and so is every write to a vbucket the killed node was not
// active for, through the same VBClient, which follows the new map. The
// writes the killed node acknowledged but had not replicated (the async
// window) are measured and logged, as is the time from the kill to the
// client writing to every vbucket again.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gocache and runs three processes")
	}
	vbuckets := 64
	if s := os.Getenv("FAILOVER_VBUCKETS"); s != "" {
		vbuckets, _ = strconv.Atoi(s)
	}
	const victim, writers = 2, 4
	bin := buildGocache(t)
	nodes, addrs := startCluster(t, bin, 3, vbuckets, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	v, err := mc.NewVBClient(ctx, addrs, mc.VBOptions{Push: true, Timeout: 2 * time.Second,
		Pool: mc.PoolOptions{Client: mc.ClientOptions{Features: mc.Features{mc.FeatureMutationToken}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cfg0 := v.Config()
	victimVB := make([]bool, vbuckets) // the victim was active for it
	replicaOf := make([]int, vbuckets) // the node of its replica
	for vb, row := range cfg0.VBucketMap {
		victimVB[vb], replicaOf[vb] = row[0] == victim, row[1]
	}

	// The verifier: the seqno each replica of the victim's vbuckets has
	// reached, read with OBSERVE_SEQNO until the kill.
	replicaConns := map[int]*mc.Client{}
	for i, a := range addrs {
		if i != victim {
			c, err := mc.Dial(ctx, "tcp", a, mc.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			replicaConns[i] = c
		}
	}
	uuids := make([]atomic.Uint64, vbuckets)      // the victim's vbucket UUIDs, from the tokens
	replicated := make([]atomic.Uint64, vbuckets) // the replica's seqno seen
	observe := func() {
		var wg sync.WaitGroup
		for vb := range vbuckets {
			if !victimVB[vb] || uuids[vb].Load() == 0 {
				continue
			}
			wg.Go(func() {
				r, err := replicaConns[replicaOf[vb]].ObserveSeq(uint16(vb), uuids[vb].Load())
				if err == nil && r.Failover == 0 && r.CurrentSeqNo > replicated[vb].Load() {
					replicated[vb].Store(r.CurrentSeqNo)
				}
			})
		}
		wg.Wait()
	}
	stopVerifier, verifierDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(verifierDone)
		for {
			select {
			case <-stopVerifier:
				return
			default:
			}
			observe()
			time.Sleep(time.Millisecond)
		}
	}()

	// The writers: distinct keys, each acknowledged write kept.
	var killed atomic.Bool
	var mu sync.Mutex
	var acks []*ack
	var writeErrs atomic.Int64
	stopWriters := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				after := killed.Load()
				res, err := v.Set(0, key, 0, 0, []byte(key+"-v"))
				if err != nil {
					writeErrs.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				uuid, seqno, ok := token(res)
				if !ok {
					t.Errorf("SET %s: no mutation token", key)
					return
				}
				vb := cfg0.VBucketForKey(key)
				a := &ack{key: key, vb: vb, uuid: uuid, seqno: seqno, afterKill: after}
				if victimVB[vb] && !killed.Load() {
					uuids[vb].CompareAndSwap(0, uuid) // acknowledged by the victim
				}
				mu.Lock()
				acks = append(acks, a)
				mu.Unlock()
			}
		})
	}
	defer func() {
		select {
		case <-stopWriters:
		default:
			close(stopWriters)
		}
		wg.Wait()
	}()

	time.Sleep(time.Second)
	// The kill: the verifier's last round is over before it.
	close(stopVerifier)
	<-verifierDone
	observe()
	killed.Store(true)
	killAt := time.Now()
	if err := nodes[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	nodes[victim].cmd.Wait()

	// The prober: the time until the client writes to every vbucket.
	probe := make([]string, vbuckets)
	for i, left := 0, vbuckets; left > 0; i++ {
		k := fmt.Sprintf("probe-%d", i)
		if vb := cfg0.VBucketForKey(k); probe[vb] == "" {
			probe[vb] = k
			left--
		}
	}
	servedAt := make(chan time.Time, 1)
	go func() {
		// Each round writes to every vbucket not yet written, 32 at once.
		served := make([]atomic.Bool, vbuckets)
		for left := int64(vbuckets); left > 0 && ctx.Err() == nil; time.Sleep(time.Millisecond) {
			var n atomic.Int64
			sem := make(chan struct{}, 32)
			var pw sync.WaitGroup
			for vb, k := range probe {
				if served[vb].Load() {
					continue
				}
				sem <- struct{}{}
				pw.Go(func() {
					defer func() { <-sem }()
					if _, err := v.Set(0, k, 0, 0, []byte("p")); err == nil {
						served[vb].Store(true)
						n.Add(1)
					}
				})
			}
			pw.Wait()
			left -= n.Load()
		}
		servedAt <- time.Now()
	}()

	res, err := Failover(ctx, addrs, victim, "default")
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	adminDone := time.Now()
	var served time.Time
	select {
	case served = <-servedAt:
	case <-ctx.Done():
		t.Fatal("the client did not serve every vbucket again")
	}
	time.Sleep(200 * time.Millisecond) // writes to the promoted vbuckets
	close(stopWriters)
	wg.Wait()

	// The client follows the new map, the same VBClient.
	if cfg := v.Config(); cfg.Rev != res.Rev || cfg.RevEpoch != res.Epoch {
		t.Errorf("client's map: epoch %d rev %d, failover's %d %d", cfg.RevEpoch, cfg.Rev, res.Epoch, res.Rev)
	} else {
		for vb, row := range cfg.VBucketMap {
			if row[0] == victim || row[0] < 0 {
				t.Errorf("vbucket %d: active %d in the new map", vb, row[0])
			}
		}
	}

	// Every acknowledged write, read back.
	var total, fromVictim, confirmed, window, lost, afterKill int
	for _, a := range acks {
		total++
		r, err := v.Get(0, a.key)
		readable := err == nil && string(r.Body) == a.key+"-v"
		if err != nil && !errors.Is(err, gm.ErrKeyNotFound) {
			t.Fatalf("GET %s: %v", a.key, err)
		}
		if a.afterKill {
			afterKill++
		}
		switch {
		case victimVB[a.vb] && a.uuid == uuids[a.vb].Load() && a.uuid != 0:
			fromVictim++
			if a.seqno <= replicated[a.vb].Load() {
				confirmed++
				if !readable {
					t.Errorf("%s (vbucket %d seqno %d) was replicated before the kill (replica at %d), and is lost",
						a.key, a.vb, a.seqno, replicated[a.vb].Load())
				}
				continue
			}
			window++
			if !readable {
				lost++
			}
		case !readable:
			t.Errorf("%s (vbucket %d, victim's %v, after the kill %v) was acknowledged by a surviving node and is lost",
				a.key, a.vb, victimVB[a.vb], a.afterKill)
		}
	}
	st := v.Stats()
	t.Logf("%d vbuckets, %d writers: %d writes acknowledged (%d after the kill), %d write errors; "+
		"the killed node acknowledged %d: %d replicated before the kill, %d not seen replicated, of which %d lost",
		vbuckets, writers, total, afterKill, writeErrs.Load(), fromVictim, confirmed, window, lost)
	t.Logf("failover: %s", strings.TrimSpace(res.String()))
	t.Logf("kill to failover done %v; kill to every vbucket written again %v; client: rev %d, %d NOT_MY_VBUCKET, %d refreshes, %d pushes",
		adminDone.Sub(killAt).Round(time.Microsecond), served.Sub(killAt).Round(time.Microsecond),
		st.Rev, st.NotMyVBucket, st.Refreshes, st.Pushes)
	if fromVictim == 0 || confirmed == 0 {
		t.Errorf("the test measured nothing: %d writes from the killed node, %d of them replicated", fromVictim, confirmed)
	}
}

// The command line: -h says what failover does; a bad node or a cluster
// whose survivors do not answer fails with the status and error said.
func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	// Both forms of help, on stdout, list the flags with their defaults.
	for _, args := range [][]string{{"-h"}, {"failover", "-h"}} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), "SET_CLUSTER_CONFIG") ||
			!strings.Contains(out.String(), "-timeout duration") || !strings.Contains(out.String(), `(default "default")`) || errb.Len() != 0 {
			t.Fatalf("%q: %d\n%s\nstderr: %s", args, code, out.String(), errb.String())
		}
	}
	out.Reset()
	if code := run([]string{"failover", "-nope"}, &out, &errb); code != 2 || out.Len() != 0 ||
		!strings.Contains(errb.String(), "-nope") {
		t.Errorf("unknown flag: %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	a, b := net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.FreePort(t))), net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.FreePort(t)))
	os.WriteFile(file, []byte(`{"nodes":["`+a+`","`+b+`"],"self":0,"replicas":1}`), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"failover"}, 2, "needs -cluster and -node"},
		{[]string{"failover", "-cluster", file, "-node", "2"}, 2, "nodes 0 to 1"},
		{[]string{"failover", "-cluster", file, "-node", "10.0.0.1:1"}, 2, "not in the cluster"},
		{[]string{"failover", "-cluster", filepath.Join(dir, "none"), "-node", "0"}, 1, "no such file"},
		{[]string{"failover", "-cluster", file, "-node", a, "-timeout", "2s"}, 1, "surviving node failed"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%q: exit %d, want %d; stderr %q, want %q", tc.args, code, tc.code, errb.String(), tc.msg)
		}
	}
	_, err := Failover(context.Background(), []string{a}, 0, "default")
	if !errors.Is(err, ErrLastNode) {
		t.Errorf("one node: %v", err)
	}
}
