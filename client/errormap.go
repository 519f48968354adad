package memcached

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/f8e615c8/gomemcached"
)

// GetErrorMap asks the server for its error map (GET_ERROR_MAP) of version
// errMapVersion at most, and returns the JSON document decoded as
// encoding/json decodes into an interface{}: "version", "revision" and
// "errors", the latter keyed by status in lower-case hexadecimal. Version 0
// fails before anything is sent; a failed status is returned as the error,
// as in the reference (memcached answers UNKNOWN_COMMAND).
func (c *Client) GetErrorMap(errMapVersion gomemcached.ErrorMapVersion) (map[string]interface{}, error) {
	if errMapVersion == gomemcached.ErrorMapInvalidVersion {
		return nil, errors.New("memcached: error map version 0 is not valid")
	}
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], uint16(errMapVersion))
	res, err := c.c.call(&request{opcode: gomemcached.GET_ERROR_MAP, body: v[:]})
	if err != nil {
		return nil, err
	}
	m := make(map[string]interface{})
	if err := json.Unmarshal(res.Body, &m); err != nil {
		return nil, fmt.Errorf("memcached: malformed error map: %w", err)
	}
	return m, nil
}
