package mcbench

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// progress prints a one-line summary of a run at an interval: redrawn in
// place on a terminal, one line per interval otherwise.
type progress struct {
	r       *run
	ws      []*worker
	out     io.Writer
	redraw  bool
	quit    chan struct{}
	stopped chan struct{}
}

// startProgress starts the progress line if the configuration asks for
// one; the result's stop is safe to call either way.
func startProgress(r *run, ws []*worker) *progress {
	p := &progress{r: r, ws: ws, out: r.cfg.ProgressOut, redraw: r.cfg.ProgressOverwrite}
	every := r.cfg.progressEvery()
	if every <= 0 {
		return p
	}
	p.quit, p.stopped = make(chan struct{}), make(chan struct{})
	go p.loop(every)
	return p
}

func (p *progress) loop(every time.Duration) {
	defer close(p.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	var lastOps uint64
	last := p.r.base
	for {
		select {
		case <-p.quit:
			if p.redraw {
				fmt.Fprint(p.out, "\r\x1b[K")
			}
			return
		case now := <-t.C:
			var ops, problems uint64
			for _, w := range p.ws {
				ops += w.live.ops.Load()
				problems += w.live.problems.Load()
			}
			line := p.line(now, ops, problems, float64(ops-lastOps)/now.Sub(last).Seconds())
			lastOps, last = ops, now
			if p.redraw {
				fmt.Fprint(p.out, "\r"+line+"\x1b[K")
			} else {
				fmt.Fprintln(p.out, line)
			}
		}
	}
}

// line formats the progress at now.
func (p *progress) line(now time.Time, ops, problems uint64, rate float64) string {
	cfg := &p.r.cfg
	elapsed := now.Sub(p.r.base)
	s := "mcbench " + strconv.FormatFloat(elapsed.Seconds(), 'f', 1, 64) + "s"
	if cfg.Duration > 0 {
		s += "/" + cfg.Duration.String()
	}
	s += "  ops " + strconv.FormatUint(ops, 10)
	if cfg.Requests > 0 {
		s += "/" + strconv.FormatInt(cfg.Requests, 10)
	}
	s += fmt.Sprintf("  %.0f ops/s (now %.0f)", float64(ops)/elapsed.Seconds(), rate)
	s += "  errors+mismatches " + strconv.FormatUint(problems, 10)
	return s
}

// stop ends the progress line and waits for its last output.
func (p *progress) stop() {
	if p.quit == nil {
		return
	}
	close(p.quit)
	<-p.stopped
}
