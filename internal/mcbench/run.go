package mcbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// ErrFailed is returned, wrapped, by Run when the run had errors or
// mismatches or completed no operation; the Report tells more.
var ErrFailed = errors.New("mcbench: run failed")

// run is the state the workers of a Run share.
type run struct {
	cfg      Config
	keys     keyspace
	vals     *values
	depth    int
	getBelow uint64 // an operation is a get when its 32 random bits are below,
	setBelow uint64 // else a set when below this, else a delete
	base     time.Time
	end      atomic.Int64 // ns since base when new requests stop
	budget   atomic.Int64 // Config.Requests not yet claimed
}

func newRun(cfg Config) *run {
	r := &run{
		cfg:      cfg,
		keys:     newKeyspace(&cfg),
		vals:     newValues(cfg.ValueSize),
		depth:    cfg.depth(),
		getBelow: uint64(cfg.GetFraction * (1 << 32)),
		base:     time.Now(),
	}
	// Validate allows get and delete fractions that overlap by rounding.
	r.setBelow = max(r.getBelow, uint64((1-cfg.DeleteFraction)*(1<<32)))
	r.end.Store(math.MaxInt64)
	r.budget.Store(cfg.Requests)
	return r
}

// now returns the time since the run's start in ns.
func (r *run) now() int64 { return int64(time.Since(r.base)) }

// hardStop returns when, in ns since the start, every connection must
// have stopped: Timeout after the end.
func (r *run) hardStop() int64 {
	e := r.end.Load()
	if e > math.MaxInt64-int64(r.cfg.Timeout) {
		return math.MaxInt64
	}
	return e + int64(r.cfg.Timeout)
}

// dialTimeout returns the time a dial may take: Timeout, within the hard
// stop.
func (r *run) dialTimeout() time.Duration {
	return time.Duration(min(int64(r.cfg.Timeout), r.hardStop()-r.now()))
}

// stop ends the run now unless it ends earlier.
func (r *run) stop() {
	now := r.now()
	for {
		e := r.end.Load()
		if e <= now || r.end.CompareAndSwap(e, now) {
			return
		}
	}
}

// claim takes up to k operations of Config.Requests and returns how many
// it got; without a request bound it gets all k.
func (r *run) claim(k int) int {
	if r.cfg.Requests == 0 {
		return k
	}
	left := r.budget.Add(-int64(k))
	switch {
	case left >= 0:
		return k
	case left > -int64(k):
		return k + int(left)
	}
	return 0
}

// Run drives the load cfg describes and returns its report. The error is
// a configuration, connection or warmup failure (with no report), or
// ErrFailed wrapped (with the report) if the run had errors or
// mismatches. Canceling ctx ends the run early, with a report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRun(cfg)
	workers := make([]*worker, cfg.Conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	for i := range workers {
		w := newWorker(r, i)
		if err := w.dial(cfg.Timeout); err != nil {
			return nil, fmt.Errorf("mcbench: connect: %w", err)
		}
		workers[i] = w
	}
	var warm time.Duration
	if cfg.Warmup {
		start := time.Now()
		if err := warmup(ctx, workers); err != nil {
			return nil, err
		}
		warm = time.Since(start)
	}

	var server0 time.Duration
	if cfg.CPUPid != 0 {
		var err error
		if server0, err = procCPU(cfg.CPUPid); err != nil {
			return nil, fmt.Errorf("mcbench: cpu-pid: %w", err)
		}
	}
	client0 := selfCPU()

	r.base = time.Now()
	if cfg.Duration > 0 {
		r.end.Store(int64(cfg.Duration))
	}
	unwatch := context.AfterFunc(ctx, r.stop)
	defer unwatch()
	prog := startProgress(r, workers)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.loop)
	}
	wg.Wait()
	elapsed := time.Since(r.base)
	prog.stop()

	rep := newReport(r, workers, elapsed)
	rep.WarmupSeconds = warm.Seconds()
	if client1 := selfCPU(); client1 > 0 {
		rep.ClientCPU = newCPU(0, client1-client0, rep.Ops)
	}
	if cfg.CPUPid != 0 {
		if server1, err := procCPU(cfg.CPUPid); err != nil {
			rep.Notes = append(rep.Notes, "server cpu: "+err.Error())
		} else {
			rep.ServerCPU = newCPU(cfg.CPUPid, server1-server0, rep.Ops)
		}
	}
	return rep, rep.Err()
}

// warmup stores every key, each connection a share, in SETQ batches.
func warmup(ctx context.Context, workers []*worker) error {
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { errs[i] = w.warmup(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mcbench: warmup: %w", err)
	}
	return nil
}

// warmup stores the keys i with i ≡ id (mod Conns) in SETQ batches that a
// NOOP fences; any answer but the NOOP's is an error.
func (w *worker) warmup(ctx context.Context) error {
	batch := max(1, min(256, window/w.cfg.opBytes()))
	n, step := w.r.keys.n, w.cfg.Conns
	var s slot
	for i := w.id; i < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.wbuf = w.wbuf[:0]
		for c := 0; c < batch && i < n; c++ {
			if err := w.appendOp(&s, opSet, gm.SETQ, uint32(i), 0); err != nil {
				return err
			}
			i += step
		}
		noop := w.appendNoop()
		w.conn.SetDeadline(time.Now().Add(w.cfg.Timeout))
		if _, err := w.conn.Write(w.wbuf); err != nil {
			return fmt.Errorf("conn %d: %w", w.id, err)
		}
		if err := w.rd.ReadResponse(&w.res); err != nil {
			return fmt.Errorf("conn %d: %w", w.id, err)
		}
		if w.res.Opcode != gm.NOOP || w.res.Opaque != noop {
			return fmt.Errorf("conn %d: %s (opaque %d) answered %s", w.id, w.res.Opcode, w.res.Opaque, w.res.Status)
		}
	}
	w.wbuf = w.wbuf[:0]
	w.cr.n = 0 // count the measured run only
	w.conn.SetDeadline(time.Time{})
	w.dl = time.Time{}
	return nil
}
