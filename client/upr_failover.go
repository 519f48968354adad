package memcached

import (
	"fmt"

	"github.com/f8e615c8/gomemcached"
)

// UprGetFailoverLog returns the failover logs of the vbuckets vb, one
// DCP_GET_FAILOVER_LOG each. It needs no DCP connection. The first
// context's BytesUsedCallback, if any, is told the bytes sent and
// received. A failed status is returned as an error that matches its
// gomemcached sentinel (errors.Is).
func (mc *Client) UprGetFailoverLog(vb []uint16, context ...*ClientContext) (map[uint16]*FailoverLog, error) {
	used := 0
	defer func() { bytesUsed(context, used) }()
	logs := make(map[uint16]*FailoverLog, len(vb))
	for _, v := range vb {
		rq := &gomemcached.MCRequest{Opcode: gomemcached.UPR_FAILOVERLOG, VBucket: v}
		used += rq.Size()
		res, err := mc.c.send(nil, rq, mc.c.readDeadline())
		if err == nil && res != nil {
			used += res.Size()
			err = serverError(res)
		}
		if err != nil {
			return nil, fmt.Errorf("memcached: failover log of vbucket %d: %w", v, err)
		}
		log, err := decodeFailoverLog(res.Opcode, res.Body)
		if err != nil {
			return nil, fmt.Errorf("memcached: failover log of vbucket %d: %w", v, err)
		}
		logs[v] = log
	}
	return logs, nil
}
