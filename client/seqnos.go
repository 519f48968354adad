package memcached

import (
	"encoding/binary"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// GET_ALL_VB_SEQNOS (0x48), kv_engine's
// docs/dcp/documentation/commands/get_seqno.md.

// GetAllVbSeqnos returns the high seqno of every vbucket of the server in
// vbSeqnoMap (made if nil), which ends up holding exactly the vbuckets the
// server listed. Without a context it asks for every alive vbucket (no
// extras). With one it sends, as the reference does, the context's
// VbState (4 bytes) if set, and, with collections on, the context's
// collection (4 more bytes, after a state of 0, alive, if VbState is
// nil). A failed status is returned as the error (the response), and
// vbSeqnoMap is then left as it was.
func (c *Client) GetAllVbSeqnos(vbSeqnoMap map[uint16]uint64, context ...*ClientContext) (map[uint16]uint64, error) {
	var ex [8]byte
	r := request{opcode: gomemcached.GET_ALL_VB_SEQNOS}
	if len(context) > 0 && context[0] != nil {
		cc := context[0]
		n := 0
		if cc.VbState != nil {
			binary.BigEndian.PutUint32(ex[0:4], uint32(*cc.VbState))
			n = 4
		}
		if c.c.feat.collections.Load() {
			binary.BigEndian.PutUint32(ex[4:8], cc.CollId)
			n = 8
		}
		r.extras = ex[:n]
	}
	res, err := c.c.call(&r)
	if err != nil {
		return vbSeqnoMap, err
	}
	list, err := DecodeVbSeqnos(nil, res.Body)
	if err != nil {
		return vbSeqnoMap, err
	}
	if vbSeqnoMap == nil {
		vbSeqnoMap = make(map[uint16]uint64, len(list))
	} else {
		clear(vbSeqnoMap)
	}
	for _, s := range list {
		vbSeqnoMap[s.VB] = s.Seqno
	}
	return vbSeqnoMap, nil
}

// VbSeqno is a vbucket and its high seqno.
type VbSeqno struct {
	VB    uint16
	Seqno uint64
}

// DecodeVbSeqnos appends to dst the vbuckets listed in the value of a
// GET_ALL_VB_SEQNOS answer: vbucket(2), seqno(8), repeated, in vbucket
// order.
func DecodeVbSeqnos(dst []VbSeqno, body []byte) ([]VbSeqno, error) {
	if len(body)%10 != 0 {
		return dst, badBody(gomemcached.GET_ALL_VB_SEQNOS, "value of "+strconv.Itoa(len(body))+" bytes, not a multiple of 10")
	}
	for b := body; len(b) > 0; b = b[10:] {
		dst = append(dst, VbSeqno{VB: binary.BigEndian.Uint16(b), Seqno: binary.BigEndian.Uint64(b[2:10])})
	}
	return dst, nil
}
