package gomemcached

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestStatusSentinels(t *testing.T) {
	for _, tc := range []struct {
		status Status
		err    error
	}{
		{KEY_ENOENT, ErrKeyNotFound},
		{KEY_EEXISTS, ErrKeyExists},
		{E2BIG, ErrValueTooLarge},
		{EINVAL, ErrInvalidArguments},
		{NOT_STORED, ErrNotStored},
		{DELTA_BADVAL, ErrDeltaBadValue},
		{NOT_MY_VBUCKET, ErrNotMyVBucket},
		{NO_BUCKET, ErrNoBucket},
		{AUTH_ERROR, ErrAuthFailed},
		{EACCESS, ErrAccessDenied},
		{UNKNOWN_COMMAND, ErrUnknownCommand},
		{ENOMEM, ErrOutOfMemory},
		{TMPFAIL, ErrTempFail},
		{UNKNOWN_COLLECTION, ErrUnknownCollection},
	} {
		res := &MCResponse{Opcode: GET, Status: tc.status, Body: []byte("why")}
		se := &ServerError{Opcode: GET, Status: tc.status}
		for name, err := range map[string]error{
			"*MCResponse":         res,
			"*ServerError":        se,
			"wrapped *MCResponse": fmt.Errorf("get: %w", res),
		} {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s with %v does not match %v", name, tc.status, tc.err)
			}
			if errors.Is(err, ErrBusy) {
				t.Errorf("%s with %v matches ErrBusy", name, tc.status)
			}
		}
	}
	if !strings.Contains(ErrKeyNotFound.Error(), "gomemcached: ") {
		t.Fatalf("sentinel text %q", ErrKeyNotFound)
	}
	var se *ServerError
	if !errors.As(fmt.Errorf("x: %w", &ServerError{Status: LOCKED}), &se) || se.Status != LOCKED {
		t.Fatal("errors.As does not find the ServerError")
	}
	msg := (&ServerError{Opcode: SET, Status: E2BIG, Body: []byte(`{"error":{"context":"too big"}}`)}).Error()
	if !strings.Contains(msg, "SET") || !strings.Contains(msg, "E2BIG") || !strings.Contains(msg, "too big") {
		t.Fatalf("ServerError text %q", msg)
	}
	msg = (&MCResponse{Opcode: GET, Status: KEY_ENOENT, Opaque: 12, Body: []byte("Not found")}).Error()
	if !strings.Contains(msg, "KEY_ENOENT") || !strings.Contains(msg, "Not found") || !strings.Contains(msg, "12") {
		t.Fatalf("MCResponse text %q", msg)
	}
}

func TestIsFatalIsNotFound(t *testing.T) {
	fatal := map[Status]bool{DELTA_BADVAL: true, NO_BUCKET: true, AUTH_STALE: true, AUTH_ERROR: true,
		ERANGE: true, ROLLBACK: true, EACCESS: true, ENOMEM: true, NOT_SUPPORTED: true}
	for s := range Status(0x100) {
		res := &MCResponse{Status: s}
		if IsFatal(res) != fatal[s] || IsFatal(&ServerError{Status: s}) != fatal[s] {
			t.Errorf("IsFatal(%v) = %v", s, IsFatal(res))
		}
		if IsNotFound(res) != (s == KEY_ENOENT) {
			t.Errorf("IsNotFound(%v) = %v", s, IsNotFound(res))
		}
		if want := s >= 0x30 && s <= 0x35; IsTenantLimit(res) != want {
			t.Errorf("IsTenantLimit(%v) = %v", s, IsTenantLimit(res))
		}
	}
	for _, err := range []error{io.EOF, errors.New("x"), protoErr(ErrBadMagic, "")} {
		if !IsFatal(err) || IsNotFound(err) || IsTenantLimit(err) {
			t.Errorf("%v: IsFatal %v IsNotFound %v", err, IsFatal(err), IsNotFound(err))
		}
	}
	if IsFatal(fmt.Errorf("wrapped: %w", keptInStep{})) {
		t.Fatal("an error that says it is not fatal")
	}
	if IsFatal(nil) || IsNotFound(nil) || IsTenantLimit(nil) {
		t.Fatal("nil is an error")
	}
	if !IsNotFound(fmt.Errorf("wrapped: %w", &MCResponse{Status: KEY_ENOENT})) {
		t.Fatal("IsNotFound misses a wrapped response")
	}
}

func TestProtocolError(t *testing.T) {
	err := error(protoErr(ErrBadLength, "detail"))
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Kind != ErrBadLength || !errors.Is(err, ErrProtocol) || errors.Is(err, ErrBadMagic) {
		t.Fatalf("%v", err)
	}
	if err.Error() != "gomemcached: inconsistent lengths: detail" {
		t.Fatalf("text %q", err)
	}
	if protoErr(ErrTruncated, "").Error() != ErrTruncated.Error() {
		t.Fatal("text without detail")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{GET.String(), "GET"},
		{TOUCH.String(), "TOUCH"},
		{CommandCode(0xe9).String(), "0xe9"},
		{CommandCode(0x01).String(), "SET"},
		{KEY_ENOENT.String(), "KEY_ENOENT"},
		{Status(0x7777).String(), "0x7777"},
		{Status(0x5).String(), "NOT_STORED"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	quiet := 0
	for op := range CommandCode(0xff) {
		if op.IsQuiet() {
			quiet++
			if !strings.HasSuffix(op.String(), "Q") {
				t.Errorf("%v is quiet", op)
			}
		}
	}
	if quiet != 20 {
		t.Errorf("%d quiet opcodes, want 20", quiet)
	}
}

func TestPools(t *testing.T) {
	p := NewMCResponsePool()
	r := p.Get()
	r.Body, r.Key, r.Fatal = []byte("x"), []byte("k"), true
	p.Put(r)
	p.Put(nil)
	if r.Body != nil || r.Key != nil || r.Fatal {
		t.Fatal("Put does not clear")
	}
	sp := NewStringMCResponsePool(2)
	m := sp.Get()
	m["a"] = r
	sp.Put(m)
	if len(m) != 0 {
		t.Fatal("Put does not empty the map")
	}
	big := map[string]*MCResponse{"a": r, "b": r, "c": r, "d": r, "e": r}
	sp.Put(big)
	if len(big) != 5 {
		t.Fatal("Put emptied an oversized map it drops")
	}
}

func TestNibbleHelpers(t *testing.T) {
	in := []byte{0x12, 0x34, 0x56}
	if got := ShiftByteSliceLeft4Bits(in); string(got) != "\x23\x45\x60" {
		t.Errorf("left = %x", got)
	}
	if got := ShiftByteSliceRight4Bits(in); string(got) != "\x01\x23\x45\x60" {
		t.Errorf("right = %x", got)
	}
	if got := ShiftByteSliceRight4Bits([]byte{0x12, 0x30}); string(got) != "\x01\x23" {
		t.Errorf("right without spill = %x", got)
	}
	if ShiftByteSliceLeft4Bits([]byte{1}) != nil || ShiftByteSliceRight4Bits(nil) != nil {
		t.Error("short slices")
	}
	if got := Merge2HalfByteSlices([]byte{0x12, 0x30}, []byte{0x04, 0x56}); string(got) != "\x12\x34\x56" {
		t.Errorf("merge = %x", got)
	}
	if got := Merge2HalfByteSlices(nil, []byte{7}); string(got) != "\x07" {
		t.Errorf("merge with empty = %x", got)
	}
}

// keptInStep is an error that left its connection usable.
type keptInStep struct{}

func (keptInStep) Error() string { return "timed out, connection kept" }
func (keptInStep) Fatal() bool   { return false }
