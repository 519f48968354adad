// Command mcbench is a load generator for memcached binary-protocol
// servers: N connections, pipelined or quiet batches, a get/set/delete mix,
// response checking, latency percentiles and server CPU per operation.
// Run mcbench -h for its flags; internal/mcbench is the engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/internal/mcbench"
)

func main() {
	cfg := mcbench.DefaultConfig()
	fs := flag.NewFlagSet("mcbench", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	asJSON := fs.Bool("json", false, "print the final report as JSON on stdout")
	stat := fs.String("stat", "", "print the server's statistic `name` (STAT) and exit, instead of a run")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mcbench.Usage)
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mcbench: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *stat != "" {
		if err := printStat(cfg, *stat); err != nil {
			fmt.Fprintln(os.Stderr, "mcbench:", err)
			os.Exit(1)
		}
		return
	}
	cfg.ProgressOut = os.Stderr
	cfg.ProgressOverwrite = isTerminal(os.Stderr)

	// The first interrupt ends the run early with a report; a second one
	// kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)

	rep, err := mcbench.Run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			rep.WriteJSON(os.Stdout)
		} else {
			rep.WriteText(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// printStat prints one of the server's general statistics.
func printStat(cfg mcbench.Config, name string) error {
	c, err := memcached.Connect(cfg.Network, cfg.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stats, err := c.StatsMap("")
	if err != nil {
		return err
	}
	v, ok := stats[name]
	if !ok {
		return fmt.Errorf("the server has no statistic %q", name)
	}
	fmt.Println(v)
	return nil
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
