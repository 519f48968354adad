package gomemcached

// DCP_OPEN flags, in the second word of UPR_OPEN's extras.
var (
	// DCP_PRODUCER opens a producer connection: the server sends changes.
	DCP_PRODUCER uint32 = 0x01
	// DCP_OPEN_INCLUDE_XATTRS sends extended attributes with values.
	DCP_OPEN_INCLUDE_XATTRS uint32 = 0x04
	// DCP_OPEN_INCLUDE_DELETE_TIMES sends deletions with their time.
	DCP_OPEN_INCLUDE_DELETE_TIMES uint32 = 0x20
)
