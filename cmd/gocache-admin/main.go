// Command gocache-admin runs an operator's actions on a cluster of gocache
// nodes started with -o cluster=FILE. Its one action, failover, promotes
// the replicas of a failed node's vbuckets, as Couchbase's hard failover
// does:
//
//	gocache-admin failover -cluster cluster.json -node 2
//
// See usage for exactly what it does.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	mc "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
)

const usage = `usage: gocache-admin failover -cluster FILE -node N [-bucket NAME] [-timeout D]

failover takes node N (its index in the cluster file's "nodes", or its
host:port) out of the vbucket cluster of FILE (the file the nodes were
started with, -o cluster=FILE) for one bucket, without asking node N
anything (it may be dead):

 1. It reads the bucket's cluster map from every other node (the
    survivors; each must answer) with GET_CLUSTER_CONFIG, and starts from
    the newest.
 2. It makes the new map: each vbucket whose active was N is active on its
    first replica on a survivor; N leaves every vbucket's replicas; each
    row keeps its survivors in order, -1 in the places left. A vbucket
    with no copy on a survivor has no active: it is reported lost.
 3. It gives every survivor the new map with SET_CLUSTER_CONFIG (opcode
    0xb4), at the epoch of the newest and a revision one above every
    survivor's, so no two nodes serve different maps at one revision.
    Each survivor pushes it to its subscribed clients (HELLO
    ClustermapChangeNotification) and sends it with every NOT_MY_VBUCKET;
    its replica vbuckets stream from the actives the map names.
 4. On each survivor it promotes the vbuckets the new map makes active
    there and that are not active yet (GET_ALL_VB_SEQNOS, then
    SET_VBUCKET active): from then on they take writes, holding what
    they had replicated from N. What N acknowledged but had not yet
    replicated is lost.

It prints what it did (the vbuckets promoted are those whose SET_VBUCKET
succeeded), and exits 1 naming each survivor where a step failed. Rerun
it then: a rerun gives the survivors the newest map again, at a higher
revision, and promotes what the failed run left unpromoted.

flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is gocache-admin with args, writing to stdout and stderr, and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "failover" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			newFailoverFlags(stdout).fs.Usage()
			return 0
		}
		newFailoverFlags(stderr).fs.Usage()
		return 2
	}
	// Help asked for goes to stdout, a refused command line to stderr.
	var msg bytes.Buffer
	f := newFailoverFlags(&msg)
	fs, file, node, bucket, timeout := f.fs, f.cluster, f.node, f.bucket, f.timeout
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.Copy(stdout, &msg)
			return 0
		}
		io.Copy(stderr, &msg)
		return 2
	}
	if *file == "" || *node == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gocache-admin: failover needs -cluster and -node, and no arguments")
		return 2
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(stderr, "gocache-admin:", err)
		return 1
	}
	cfg, err := gocache.ParseClusterConfig(data)
	if err != nil {
		fmt.Fprintln(stderr, "gocache-admin:", err)
		return 1
	}
	n, err := nodeIndex(cfg, *node)
	if err != nil {
		fmt.Fprintln(stderr, "gocache-admin:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := Failover(ctx, cfg.Nodes, n, *bucket)
	if res != nil {
		fmt.Fprint(stdout, res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "gocache-admin:", err)
		return 1
	}
	return 0
}

// failoverFlags is failover's command line.
type failoverFlags struct {
	fs                    *flag.FlagSet
	cluster, node, bucket *string
	timeout               *time.Duration
}

// newFailoverFlags returns failover's flags, writing usage and errors to
// out.
func newFailoverFlags(out io.Writer) *failoverFlags {
	fs := flag.NewFlagSet("gocache-admin failover", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprint(out, usage); fs.PrintDefaults() }
	return &failoverFlags{fs: fs,
		cluster: fs.String("cluster", "", "the cluster file the nodes were started with"),
		node:    fs.String("node", "", "the node to fail over: its index in the file's nodes, or its host:port"),
		bucket:  fs.String("bucket", gocache.DefaultBucket, "the bucket"),
		timeout: fs.Duration("timeout", 10*time.Second, "the time the whole failover may take"),
	}
}

// nodeIndex returns the index of node, an index or an address, in cfg.
func nodeIndex(cfg *gocache.ClusterConfig, node string) (int, error) {
	if i, err := strconv.Atoi(node); err == nil {
		if i < 0 || i >= len(cfg.Nodes) {
			return 0, fmt.Errorf("node %d: the cluster has nodes 0 to %d", i, len(cfg.Nodes)-1)
		}
		return i, nil
	}
	if i := slices.Index(cfg.Nodes, node); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("node %q is not in the cluster's nodes %q", node, cfg.Nodes)
}

// Errors of a failover.
var (
	// ErrSurvivor is the error of a survivor that did not answer or
	// refused a step.
	ErrSurvivor = errors.New("gocache-admin: a surviving node failed")
	// ErrNotThisCluster is the error of a node whose map is not of the
	// cluster given (another server list).
	ErrNotThisCluster = errors.New("gocache-admin: the node's map is of another cluster")
	// ErrLastNode is the error of failing over the only node.
	ErrLastNode = errors.New("gocache-admin: no node would survive")
)

// FailoverResult is what a failover did.
type FailoverResult struct {
	Bucket     string
	Failed     string // the failed node's address
	Epoch, Rev int64  // of the map given to the survivors
	Survivors  []string
	// Promoted lists, by survivor's address, the vbuckets made active
	// there (SET_VBUCKET active answered): those the new map makes
	// active there that were not. A survivor whose promotions failed
	// lists only those that succeeded.
	Promoted map[string][]uint16
	// Lost lists the vbuckets that had no copy on a survivor.
	Lost []uint16
	Took time.Duration
}

func (r *FailoverResult) String() string {
	total := 0
	for _, vbs := range r.Promoted {
		total += len(vbs)
	}
	s := fmt.Sprintf("failover of %s, bucket %q: map epoch %d rev %d given to %d nodes; %d vbuckets promoted",
		r.Failed, r.Bucket, r.Epoch, r.Rev, len(r.Survivors), total)
	addrs := make([]string, 0, len(r.Promoted))
	for a := range r.Promoted {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		s += fmt.Sprintf(", %d on %s", len(r.Promoted[a]), a)
	}
	return s + fmt.Sprintf("; %d vbuckets lost %v; took %v\n", len(r.Lost), r.Lost, r.Took.Round(time.Microsecond))
}

// Failover fails node failed (an index in nodes, the cluster's nodes as
// its file lists them) over for bucket, as usage describes, on the other
// nodes. Its errors match ErrSurvivor, ErrNotThisCluster or ErrLastNode.
func Failover(ctx context.Context, nodes []string, failed int, bucket string) (*FailoverResult, error) {
	start := time.Now()
	if failed < 0 || failed >= len(nodes) {
		return nil, fmt.Errorf("gocache-admin: node %d of %d", failed, len(nodes))
	}
	if len(nodes) < 2 {
		return nil, ErrLastNode
	}
	opts := mc.ClientOptions{Features: mc.Features{mc.FeatureXerror}}
	if bucket != gocache.DefaultBucket {
		opts.Bucket = bucket
	}
	// 1. Every survivor's map.
	type survivor struct {
		index    int
		addr     string
		c        *mc.Client
		cfg      *mc.ClusterConfig
		promoted []uint16
		err      error
	}
	var survivors []*survivor
	for i, addr := range nodes {
		if i != failed {
			survivors = append(survivors, &survivor{index: i, addr: addr})
		}
	}
	var wg sync.WaitGroup
	for _, s := range survivors {
		wg.Go(func() {
			if s.c, s.err = mc.Dial(ctx, "tcp", s.addr, opts); s.err != nil {
				return
			}
			context.AfterFunc(ctx, func() { s.c.Close() })
			var res *gm.MCResponse
			if res, s.err = s.c.Do(ctx, &gm.MCRequest{Opcode: gm.GET_CLUSTER_CONFIG}); s.err == nil {
				s.cfg, s.err = mc.ParseClusterConfig(res.Body, "") // "$HOST" kept, as the nodes list it
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range survivors {
			if s.c != nil {
				s.c.Close()
			}
		}
	}()
	var base *mc.ClusterConfig
	for _, s := range survivors {
		if s.err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSurvivor, s.addr, s.err)
		}
		if !slices.Equal(s.cfg.ServerList, nodes) {
			return nil, fmt.Errorf("%w: %s serves %q, the cluster is %q", ErrNotThisCluster, s.addr, s.cfg.ServerList, nodes)
		}
		if s.cfg.Newer(base) {
			base = s.cfg
		}
	}
	rev := int64(0)
	for _, s := range survivors {
		if s.cfg.RevEpoch == base.RevEpoch {
			rev = max(rev, s.cfg.Rev)
		}
	}
	// 2. The new map.
	res := &FailoverResult{Bucket: bucket, Failed: nodes[failed], Epoch: base.RevEpoch, Rev: rev + 1,
		Promoted: map[string][]uint16{}}
	for _, s := range survivors {
		res.Survivors = append(res.Survivors, s.addr)
	}
	vbmap := make([][]int, len(base.VBucketMap))
	actives := make([][]uint16, len(nodes)) // by node: the vbuckets the new map makes active there
	for vb, old := range base.VBucketMap {
		row := make([]int, 0, len(old))
		for _, n := range old {
			if n >= 0 && n != failed {
				row = append(row, n)
			}
		}
		if len(row) == 0 {
			res.Lost = append(res.Lost, uint16(vb))
		} else {
			actives[row[0]] = append(actives[row[0]], uint16(vb))
		}
		for len(row) < len(old) {
			row = append(row, -1)
		}
		vbmap[vb] = row
	}
	body, err := terseConfig(base, res.Epoch, res.Rev, vbmap)
	if err != nil {
		return nil, err
	}
	// 3 and 4, on every survivor at once.
	for _, s := range survivors {
		s.err = nil
		wg.Go(func() {
			extras := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(res.Epoch)), uint64(res.Rev))
			_, s.err = s.c.Do(ctx, &gm.MCRequest{Opcode: setClusterConfig, Extras: extras, Key: []byte(bucket),
				Body: body, DataType: gm.DatatypeFlagJSON})
			if s.err != nil {
				s.err = fmt.Errorf("SET_CLUSTER_CONFIG: %w", s.err)
				return
			}
			// Every vbucket the map makes active here that is not, so
			// that a rerun finishes what a failed run left (the map,
			// given before, no longer names the failed node).
			var held map[uint16]bool
			if held, s.err = activeVBuckets(ctx, s.c); s.err != nil {
				return
			}
			var want []uint16
			for _, vb := range actives[s.index] {
				if !held[vb] {
					want = append(want, vb)
				}
			}
			s.promoted, s.err = promote(ctx, s.c, want)
		})
	}
	wg.Wait()
	res.Took = time.Since(start)
	var errs []error
	for _, s := range survivors {
		if len(s.promoted) > 0 {
			res.Promoted[s.addr] = s.promoted
		}
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrSurvivor, s.addr, s.err))
		}
	}
	return res, errors.Join(errs...)
}

// activeVBuckets returns the vbuckets active on c's node, read with
// GET_ALL_VB_SEQNOS for the active state.
func activeVBuckets(ctx context.Context, c *mc.Client) (map[uint16]bool, error) {
	res, err := c.Do(ctx, &gm.MCRequest{Opcode: gm.GET_ALL_VB_SEQNOS, Extras: binary.BigEndian.AppendUint32(nil, activeState)})
	if err != nil {
		return nil, fmt.Errorf("GET_ALL_VB_SEQNOS: %w", err)
	}
	if len(res.Body)%10 != 0 {
		return nil, fmt.Errorf("GET_ALL_VB_SEQNOS: %d bytes, not pairs of vbucket and seqno", len(res.Body))
	}
	held := make(map[uint16]bool, len(res.Body)/10)
	for b := res.Body; len(b) > 0; b = b[10:] {
		held[binary.BigEndian.Uint16(b)] = true
	}
	return held, nil
}

// promote sends SET_VBUCKET active for each of vbs on c, pipelined, and
// returns those it made active and the first error.
func promote(ctx context.Context, c *mc.Client, vbs []uint16) ([]uint16, error) {
	errs := make([]error, len(vbs))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, vb := range vbs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.Do(ctx, &gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: vb, Extras: []byte{activeState}}); err != nil {
				errs[i] = fmt.Errorf("SET_VBUCKET active, vbucket %d: %w", vb, err)
			}
		})
	}
	wg.Wait()
	var done []uint16
	var first error
	for i, err := range errs {
		switch {
		case err == nil:
			done = append(done, vbs[i])
		case first == nil:
			first = err
		}
	}
	return done, first
}

// setClusterConfig is SET_CLUSTER_CONFIG's opcode; activeState is
// SET_VBUCKET's state byte for active.
const (
	setClusterConfig = gm.CommandCode(0xb4)
	activeState      = 1
)

// terseConfig encodes base with vbmap at epoch and rev: the fields a
// gocache node checks and Couchbase's clients read.
func terseConfig(base *mc.ClusterConfig, epoch, rev int64, vbmap [][]int) ([]byte, error) {
	type vbServerMap struct {
		HashAlgorithm string   `json:"hashAlgorithm"`
		NumReplicas   int      `json:"numReplicas"`
		ServerList    []string `json:"serverList"`
		VBucketMap    [][]int  `json:"vBucketMap"`
	}
	return json.Marshal(struct {
		Rev         int64       `json:"rev"`
		RevEpoch    int64       `json:"revEpoch"`
		Name        string      `json:"name"`
		NodeLocator string      `json:"nodeLocator"`
		VBServerMap vbServerMap `json:"vBucketServerMap"`
	}{rev, epoch, base.Name, "vbucket", vbServerMap{"CRC", base.NumReplicas, base.ServerList, vbmap}})
}
