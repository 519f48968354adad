package memcached

import (
	"errors"

	"github.com/f8e615c8/gomemcached"
)

// errNilMap is returned by GetBulk when given keys and a nil map.
var errNilMap = errors.New("memcached: GetBulk needs a non-nil map")

// GetBulk reads keys and stores the response of each key found in rv;
// keys not found are left out. The requests are quiet gets (GETQ, or
// GET_REPLICA when SetReplica is on) pipelined behind one NOOP: they are
// written while the responses are read, so any number of keys and values
// of any size work without deadlock. The deadline (ClientOptions.
// ReadTimeout) applies to each response, not to the whole call. The
// responses look like Get's (Opcode GET, no key).
//
// A failed status other than KEY_ENOENT for some key does not stop the
// call: the other keys are still read, and the first such response is
// returned as the error (a throttled key's, if only throttling happened).
//
// With subPaths, each key is read with the SUBDOC_MULTI_LOOKUP of
// GetSubdoc (see GetSubDocVal), which is not quiet: every key is
// answered. A key whose lookups reached the document is stored with its
// response (status SUCCESS, or one for which IfResStatusError is false:
// some paths failed, or the document is deleted); a missing key is left
// out. SetReplica does not apply to such lookups, as in the reference.
func (c *Client) GetBulk(vb uint16, keys []string, rv map[string]*gomemcached.MCResponse, subPaths []string, context ...*ClientContext) error {
	switch {
	case len(keys) == 0:
		return nil
	case rv == nil:
		return errNilMap
	case len(keys) == 1 && len(subPaths) == 0:
		res, err := c.Get(vb, keys[0], context...)
		if res != nil {
			switch res.Status {
			case gomemcached.SUCCESS:
				rv[keys[0]] = res
			case gomemcached.KEY_ENOENT:
				err = nil
			}
		}
		return err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	tmpl := request{opcode: gomemcached.GETQ, vb: vb}
	if c.c.replica.Load() {
		tmpl.opcode = gomemcached.GET_REPLICA
	}
	if err := c.c.applyContext(&tmpl, context); err != nil {
		return err
	}
	if len(subPaths) > 0 {
		if err := checkPaths(subPaths); err != nil {
			return err
		}
		tmpl.opcode = gomemcached.SUBDOC_MULTI_LOOKUP
		tmpl.extras, tmpl.body = GetSubDocVal(subPaths, context)
	}
	b := &bulkCall{results: make([]*gomemcached.MCResponse, len(keys))}
	w := getWaiter(tmpl.opcode)
	w.h = b
	if err := c.c.fenced(nil, w, &tmpl, keys, vb, c.c.readDeadline()); err != nil {
		return err
	}
	for i, res := range b.results {
		if res != nil {
			rv[keys[i]] = res
		}
	}
	switch {
	case b.failed != nil:
		c.c.noteStatus(b.failed)
		return b.failed
	case b.throttled != nil:
		return b.throttled
	}
	return nil
}

// bulkCall collects the responses of a GetBulk on the reader goroutine.
type bulkCall struct {
	results   []*gomemcached.MCResponse // by key index
	failed    *gomemcached.MCResponse   // the first failure other than a miss or throttling
	throttled *gomemcached.MCResponse   // the last WOULD_THROTTLE
}

func (b *bulkCall) handle(res *gomemcached.MCResponse, i, n uint32) bool {
	if i == n-1 {
		return true // the fence
	}
	if res.Opcode == gomemcached.SUBDOC_MULTI_LOOKUP && !IfResStatusError(res) {
		b.results[i] = ownResponse(res) // some paths failed, or a deleted document
		return false
	}
	switch res.Status {
	case gomemcached.SUCCESS:
		own := ownResponse(res)
		if own.Opcode == gomemcached.GETQ {
			own.Opcode = gomemcached.GET
		}
		b.results[i] = own
	case gomemcached.KEY_ENOENT:
		// A miss of a non-quiet GET_REPLICA or SUBDOC_MULTI_LOOKUP.
	case gomemcached.WOULD_THROTTLE:
		b.throttled = ownResponse(res)
	default:
		if b.failed == nil {
			b.failed = ownResponse(res)
		}
	}
	return false
}
