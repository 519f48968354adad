// Package mcbench is the engine of cmd/mcbench, a closed-loop load generator
// for memcached binary-protocol servers.
//
// Run opens Config.Conns connections and drives each from one goroutine
// that keeps Config.Depth requests in flight: plain GET/SET/DELETE requests
// each answered, or quiet batches of GETKQ/SETQ/DELETEQ fenced by a NOOP,
// mixed by Config.GetFraction and Config.DeleteFraction. It stops when
// Config.Duration has passed or Config.Requests are done, whichever comes
// first, and returns a Report: throughput, hits and misses of gets and
// deletes, latency percentiles from a log-linear Histogram, errors and,
// with Config.Check, response mismatches.
//
// Values are derived from their keys (see Config.Check), so every
// connection can verify every key without shared state. Steady-state
// operation allocates nothing per request.
package mcbench
