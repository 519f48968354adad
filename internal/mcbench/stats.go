package mcbench

import (
	"errors"
	"io"
	"net"

	gm "github.com/f8e615c8/gomemcached"
)

// errKind classifies the failures that end a connection.
type errKind int

const (
	errConnect  errKind = iota // dialing failed
	errTimeout                 // no progress within Config.Timeout
	errIO                      // the connection failed or was closed
	errProtocol                // a malformed or unsolicited packet
	numErrKinds
)

var errKindNames = [numErrKinds]string{"connect", "timeout", "io", "protocol"}

// errUnsolicited is a response with no request in flight.
var errUnsolicited = errors.New("mcbench: response with no request in flight")

// classify returns the kind of a connection failure.
func classify(err error) errKind {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, gm.ErrTruncated), errors.Is(err, io.EOF):
		return errIO
	case errors.Is(err, gm.ErrProtocol), errors.Is(err, errUnsolicited):
		return errProtocol
	}
	return errIO
}

// mismatchKind classifies responses that do not match their request.
type mismatchKind int

const (
	mmOpaque mismatchKind = iota // not the opaque of a request in flight
	mmOpcode                     // not the request's opcode
	mmKey                        // GETKQ: not the key asked for
	mmFlags                      // not the flags set
	mmValue                      // not the value set
	numMismatchKinds
)

var mismatchNames = [numMismatchKinds]string{"opaque", "opcode", "key", "flags", "value"}

// maxSamples bounds the error and mismatch descriptions a worker and a
// report keep.
const maxSamples = 8

// stats are one worker's counters; the report merges them.
type stats struct {
	gets, sets   uint64 // operations completed
	deletes      uint64
	hits, misses uint64 // of gets
	delMisses    uint64 // deletes of missing keys
	batches      uint64 // quiet mode
	bytesIn      uint64
	bytesOut     uint64
	errs         [numErrKinds]uint64
	statuses     map[gm.Status]uint64 // unexpected statuses, made on the first
	mismatches   [numMismatchKinds]uint64
	lat          Histogram // per request (plain) or per batch (quiet)
	samples      []string
}

// ops returns the number of operations completed.
func (s *stats) ops() uint64 { return s.gets + s.sets + s.deletes }

// errors returns the number of failures and unexpected statuses.
func (s *stats) errors() uint64 {
	var n uint64
	for _, c := range s.errs {
		n += c
	}
	for _, c := range s.statuses {
		n += c
	}
	return n
}

// mismatched returns the number of mismatches.
func (s *stats) mismatched() uint64 {
	var n uint64
	for _, c := range s.mismatches {
		n += c
	}
	return n
}

// sample keeps a description of an error or mismatch, up to maxSamples.
func (s *stats) sample(msg string) {
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, msg)
	}
}

// merge adds o's counters to s.
func (s *stats) merge(o *stats) {
	s.gets += o.gets
	s.sets += o.sets
	s.deletes += o.deletes
	s.hits += o.hits
	s.misses += o.misses
	s.delMisses += o.delMisses
	s.batches += o.batches
	s.bytesIn += o.bytesIn
	s.bytesOut += o.bytesOut
	for i, c := range o.errs {
		s.errs[i] += c
	}
	for st, c := range o.statuses {
		if s.statuses == nil {
			s.statuses = make(map[gm.Status]uint64)
		}
		s.statuses[st] += c
	}
	for i, c := range o.mismatches {
		s.mismatches[i] += c
	}
	s.lat.Merge(&o.lat)
	for _, m := range o.samples {
		s.sample(m)
	}
}
