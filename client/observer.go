package memcached

import (
	"bytes"

	"github.com/f8e615c8/gomemcached"
)

// Observer is told about every packet a Client sends and receives. Its
// methods are called from the client's writer and reader, so they must be
// safe for concurrent use and quick.
type Observer interface {
	// PacketSent reports a request (or, from TransmitResponse, a
	// response) of n bytes with opcode op after the write that carried it:
	// err is that write's error.
	PacketSent(op gomemcached.CommandCode, n int, err error)
	// PacketReceived reports a packet of n bytes read from the server,
	// res being valid only during the call; or, with res nil, the read
	// error that ended the connection and the n bytes of the broken packet
	// already read (0 if unknown).
	PacketReceived(res *gomemcached.MCResponse, n int, err error)
}

// TransmitHook, when set before a client is created, is called for each
// request that client writes, with the request (decoded again from the
// bytes written), their count and the write's error. It is kept for
// compatibility with the reference, which reads it on every packet; this
// package reads it once, when the client is created, so setting it later
// does not race with running clients. New code should use
// ClientOptions.Observer.
var TransmitHook func(*gomemcached.MCRequest, int, error)

// ReceiveHook, when set before a client is created, is called for each
// packet that client reads, with a copy of it, its size and nil, or with
// nil, 0 and the error that ended the connection. Like TransmitHook it is
// read when the client is created. New code should use
// ClientOptions.Observer.
var ReceiveHook func(*gomemcached.MCResponse, int, error)

// observers combines the Observer option and the reference's hooks, as
// they were when the client was created.
type observers struct {
	obs Observer
	tx  func(*gomemcached.MCRequest, int, error)
	rx  func(*gomemcached.MCResponse, int, error)
}

func (o *observers) active() bool { return o.obs != nil || o.tx != nil || o.rx != nil }

// sentRec records one packet of a write batch for the observers.
type sentRec struct {
	op    gomemcached.CommandCode
	start int // offset in the batch
	n     int
}

// sent reports the packets of a written batch.
func (o *observers) sent(batch []byte, recs []sentRec, err error) {
	for _, r := range recs {
		if o.obs != nil {
			o.obs.PacketSent(r.op, r.n, err)
		}
		if o.tx != nil {
			var req gomemcached.MCRequest
			pkt := batch[r.start : r.start+r.n]
			if _, derr := req.Receive(bytes.NewReader(pkt), nil); derr != nil {
				// A response sent by TransmitResponse: report its opcode.
				req = gomemcached.MCRequest{Opcode: r.op}
			}
			o.tx(&req, r.n, err)
		}
	}
}

// received reports a packet read, or the read error that ended the
// connection (res nil).
func (o *observers) received(res *gomemcached.MCResponse, n int, err error) {
	if o.obs != nil {
		o.obs.PacketReceived(res, n, err)
	}
	if o.rx != nil {
		if res != nil {
			res = ownResponse(res)
		}
		o.rx(res, n, err)
	}
}
