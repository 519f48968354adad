package memcached

import (
	"encoding/binary"
	"errors"

	"github.com/f8e615c8/gomemcached"
)

// The key-value methods of the reference. Each returns the response; when
// its status is not SUCCESS the response is also the error (errors.Is
// matches it against gomemcached.ErrKeyNotFound and the other status
// sentinels, and gomemcached.IsNotFound works on it). Transport and timeout
// errors come with a nil response. vb goes into the header's vbucket
// field; flags and exp, where present, into the extras as 32-bit values.
// Keys longer than MaxKeyLen bytes fail with ErrKeyTooLong before anything
// is sent.

// Get returns the value of key (GET_REPLICA when SetReplica is on). The
// response's Extras hold the item's flags.
func (c *Client) Get(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.GET, vb: vb, key: key}
	if c.c.replica.Load() {
		r.opcode = gomemcached.GET_REPLICA
	}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// GetAndTouch returns the value of key and sets its expiry to exp (GAT).
func (c *Client) GetAndTouch(vb uint16, key string, exp int, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var ex [4]byte
	binary.BigEndian.PutUint32(ex[:], uint32(exp))
	r := request{opcode: gomemcached.GAT, vb: vb, key: key, extras: ex[:]}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// Set stores body under key.
func (c *Client) Set(vb uint16, key string, flags int, exp int,
	body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return c.store(gomemcached.SET, vb, key, flags, exp, 0, body, context)
}

// SetCas stores body under key if the item's CAS is cas (KEY_EEXISTS if
// not; with cas 0, unconditionally).
func (c *Client) SetCas(vb uint16, key string, flags int, exp int, cas uint64,
	body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return c.store(gomemcached.SET, vb, key, flags, exp, cas, body, context)
}

// Add stores body under key if the key does not exist (KEY_EEXISTS if it
// does).
func (c *Client) Add(vb uint16, key string, flags int, exp int,
	body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return c.store(gomemcached.ADD, vb, key, flags, exp, 0, body, context)
}

// store sends a SET or ADD.
func (c *Client) store(op gomemcached.CommandCode, vb uint16, key string, flags, exp int, cas uint64,
	body []byte, context []*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var ex [8]byte
	binary.BigEndian.PutUint32(ex[0:4], uint32(flags))
	binary.BigEndian.PutUint32(ex[4:8], uint32(exp))
	r := request{opcode: op, vb: vb, key: key, cas: cas, extras: ex[:], body: body}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// Append appends data to the value of key (NOT_STORED if the key does not
// exist).
func (c *Client) Append(vb uint16, key string, data []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.APPEND, vb: vb, key: key, body: data}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// Del deletes key (KEY_ENOENT if it does not exist).
func (c *Client) Del(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.DELETE, vb: vb, key: key}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// Incr adds amt to the counter at key and returns the new value. A missing
// key is created with the value def, unless exp is 0xffffffff (then
// KEY_ENOENT). A value that is not a decimal number fails with
// DELTA_BADVAL.
func (c *Client) Incr(vb uint16, key string,
	amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return c.arith(gomemcached.INCREMENT, vb, key, amt, def, exp, context)
}

// Decr subtracts amt from the counter at key, stopping at 0, and returns
// the new value; otherwise as Incr.
func (c *Client) Decr(vb uint16, key string,
	amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return c.arith(gomemcached.DECREMENT, vb, key, amt, def, exp, context)
}

// errBadCounter is returned when a counter response lacks its value.
var errBadCounter = errors.New("memcached: counter response shorter than 8 bytes")

// arith sends an INCREMENT or DECREMENT.
func (c *Client) arith(op gomemcached.CommandCode, vb uint16, key string,
	amt, def uint64, exp int, context []*ClientContext) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	var ex [20]byte
	binary.BigEndian.PutUint64(ex[0:8], amt)
	binary.BigEndian.PutUint64(ex[8:16], def)
	binary.BigEndian.PutUint32(ex[16:20], uint32(exp))
	r := request{opcode: op, vb: vb, key: key, extras: ex[:]}
	if err := c.c.applyContext(&r, context); err != nil {
		return 0, err
	}
	res, err := c.c.call(&r)
	if err != nil {
		return 0, err
	}
	if len(res.Body) < 8 {
		return 0, errBadCounter
	}
	return binary.BigEndian.Uint64(res.Body), nil
}
