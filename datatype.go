package gomemcached

// Datatype flags of MCRequest.DataType and MCResponse.DataType.
const (
	DatatypeFlagJSON       = uint8(0x01) // the value is JSON
	DatatypeFlagCompressed = uint8(0x02) // the value is Snappy-compressed
	DatatypeFlagXattrs     = uint8(0x04) // the value starts with an extended attributes section
)
