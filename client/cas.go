package memcached

import (
	"encoding/binary"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// CasOp is what a CasFunc asks CAS to do with its result.
type CasOp uint8

// CAS operations.
const (
	// CASStore stores the new value.
	CASStore = CasOp(iota)
	// CASQuit stops, leaving the value as it is.
	CASQuit
	// CASDelete deletes the value.
	CASDelete
)

// Error names the operation: CAS returns the CasOp as its error when the
// function quits.
func (c CasOp) Error() string {
	switch c {
	case CASStore:
		return "CAS store"
	case CASQuit:
		return "CAS quit"
	case CASDelete:
		return "CAS delete"
	}
	return "CAS op " + strconv.Itoa(int(c))
}

// CASState is the state of a CAS loop driven by CASNext.
type CASState struct {
	initialized bool                    // CASNext has read the value once
	Value       []byte                  // current value; set it to the new value (nil deletes)
	Cas         uint64                  // current CAS of the key
	Exists      bool                    // whether the key exists (if not, Value is nil)
	Err         error                   // the error, if any, once CASNext returns false
	resp        *gomemcached.MCResponse // the last response
}

// CASNext drives a compare-and-swap loop without a callback:
//
//	var state memcached.CASState
//	for client.CASNext(vb, key, exp, &state) {
//		state.Value = change(state.Value) // nil deletes
//	}
//	if state.Err != nil { ... }
//
// Each call after the first writes state.Value with the CAS read before (an
// ADD if the key did not exist, a SET, or a DELETE for a nil Value); on a
// conflict it reads the key again and returns true for another round.
// Stored values get flags 0 and expiry exp.
func (c *Client) CASNext(vb uint16, k string, exp int, state *CASState) bool {
	if state.initialized {
		if !state.Exists {
			if state.Value == nil {
				state.Cas = 0
				return false // deleting what does not exist
			}
			state.resp, state.Err = c.Add(vb, k, 0, exp, state.Value)
		} else {
			state.resp, state.Err = c.casWrite(vb, k, exp, state.Cas, state.Value)
		}
		conflict := state.resp != nil &&
			(state.resp.Status == gomemcached.KEY_EEXISTS || state.resp.Status == gomemcached.NOT_STORED)
		if !conflict {
			if state.resp != nil {
				state.Cas = state.resp.Cas
			}
			return false
		}
	}
	state.initialized = true
	state.resp, state.Err = c.Get(vb, k)
	switch {
	case state.Err == nil:
		state.Exists, state.Value, state.Cas = true, state.resp.Body, state.resp.Cas
	case state.resp != nil && state.resp.Status == gomemcached.KEY_ENOENT:
		state.Err, state.Exists, state.Value, state.Cas = nil, false, nil, 0
	default:
		return false
	}
	return true
}

// casWrite sets value (or deletes the key when value is nil) if the key's
// CAS is cas.
func (c *Client) casWrite(vb uint16, k string, exp int, cas uint64, value []byte) (*gomemcached.MCResponse, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.DELETE, vb: vb, key: k, cas: cas}
	var ex [8]byte
	if value != nil {
		binary.BigEndian.PutUint32(ex[4:8], uint32(exp))
		r.opcode, r.extras, r.body = gomemcached.SET, ex[:], value
	}
	c.c.applyContext(&r, nil) // the collection id, when collections are on
	return c.c.call(&r)
}

// CasFunc computes the new value from the current one (nil if the key
// does not exist) and says what to do with it.
type CasFunc func(current []byte) ([]byte, CasOp)

// CAS applies f to the value of k until the result is written without a
// conflict, and returns the last response. If f returns CASQuit, or
// CASDelete for a key that does not exist, CAS returns nil and that CasOp
// as the error.
func (c *Client) CAS(vb uint16, k string, f CasFunc,
	initexp int) (*gomemcached.MCResponse, error) {
	var state CASState
	for c.CASNext(vb, k, initexp, &state) {
		newValue, operation := f(state.Value)
		if operation == CASQuit || (operation == CASDelete && state.Value == nil) {
			return nil, operation
		}
		if operation == CASDelete {
			newValue = nil
		}
		state.Value = newValue
	}
	return state.resp, state.Err
}
