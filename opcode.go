package gomemcached

import "strconv"

// CommandCode is the opcode byte of a packet: the command a request asks for
// and a response answers.
type CommandCode uint8

// Opcodes. The names and values of the first group are those of
// github.com/couchbase/gomemcached; the second group adds opcodes that
// memcached 1.6 and Couchbase's KV engine define and that this module's
// client and server use. Quiet variants (names ending in Q) suppress the
// responses described at IsQuiet.
const (
	GET        = CommandCode(0x00)
	SET        = CommandCode(0x01)
	ADD        = CommandCode(0x02)
	REPLACE    = CommandCode(0x03)
	DELETE     = CommandCode(0x04)
	INCREMENT  = CommandCode(0x05)
	DECREMENT  = CommandCode(0x06)
	QUIT       = CommandCode(0x07)
	FLUSH      = CommandCode(0x08)
	GETQ       = CommandCode(0x09)
	NOOP       = CommandCode(0x0a)
	VERSION    = CommandCode(0x0b)
	GETK       = CommandCode(0x0c)
	GETKQ      = CommandCode(0x0d)
	APPEND     = CommandCode(0x0e)
	PREPEND    = CommandCode(0x0f)
	STAT       = CommandCode(0x10)
	SETQ       = CommandCode(0x11)
	ADDQ       = CommandCode(0x12)
	REPLACEQ   = CommandCode(0x13)
	DELETEQ    = CommandCode(0x14)
	INCREMENTQ = CommandCode(0x15)
	DECREMENTQ = CommandCode(0x16)
	QUITQ      = CommandCode(0x17)
	FLUSHQ     = CommandCode(0x18)
	APPENDQ    = CommandCode(0x19)
	PREPENDQ   = CommandCode(0x1a)
	GAT        = CommandCode(0x1d) // get and touch
	HELLO      = CommandCode(0x1f) // feature negotiation
	AUDIT      = CommandCode(0x27)

	RGET      = CommandCode(0x30)
	RSET      = CommandCode(0x31)
	RSETQ     = CommandCode(0x32)
	RAPPEND   = CommandCode(0x33)
	RAPPENDQ  = CommandCode(0x34)
	RPREPEND  = CommandCode(0x35)
	RPREPENDQ = CommandCode(0x36)
	RDELETE   = CommandCode(0x37)
	RDELETEQ  = CommandCode(0x38)
	RINCR     = CommandCode(0x39)
	RINCRQ    = CommandCode(0x3a)
	RDECR     = CommandCode(0x3b)
	RDECRQ    = CommandCode(0x3c)

	SASL_LIST_MECHS = CommandCode(0x20)
	SASL_AUTH       = CommandCode(0x21)
	SASL_STEP       = CommandCode(0x22)

	SET_BUCKET_THROTTLE_PROPERTIES = CommandCode(0x2a)
	SET_BUCKET_DATA_LIMIT_EXCEEDED = CommandCode(0x2b)
	SET_NODE_THROTTLE_PROPERTIES   = CommandCode(0x2c)

	SET_VBUCKET = CommandCode(0x3d)

	TAP_CONNECT          = CommandCode(0x40) // a consumer opens a TAP feed
	TAP_MUTATION         = CommandCode(0x41) // an item was stored
	TAP_DELETE           = CommandCode(0x42) // an item was deleted
	TAP_FLUSH            = CommandCode(0x43) // the bucket was flushed
	TAP_OPAQUE           = CommandCode(0x44) // engine control message
	TAP_VBUCKET_SET      = CommandCode(0x45) // vbucket state change (takeover)
	TAP_CHECKPOINT_START = CommandCode(0x46)
	TAP_CHECKPOINT_END   = CommandCode(0x47)
	GET_ALL_VB_SEQNOS    = CommandCode(0x48) // high seqno of every vbucket

	GETEX         = CommandCode(0x49) // get with the xattrs section
	GETEX_REPLICA = CommandCode(0x4a)

	UPR_OPEN        = CommandCode(0x50) // DCP open
	UPR_ADDSTREAM   = CommandCode(0x51)
	UPR_CLOSESTREAM = CommandCode(0x52)
	UPR_STREAMREQ   = CommandCode(0x53) // DCP stream request
	UPR_FAILOVERLOG = CommandCode(0x54)
	UPR_STREAMEND   = CommandCode(0x55)
	UPR_SNAPSHOT    = CommandCode(0x56) // snapshot marker
	UPR_MUTATION    = CommandCode(0x57)
	UPR_DELETION    = CommandCode(0x58)
	UPR_EXPIRATION  = CommandCode(0x59)
	UPR_FLUSH       = CommandCode(0x5a)
	UPR_NOOP        = CommandCode(0x5c)
	UPR_BUFFERACK   = CommandCode(0x5d) // flow-control acknowledgement
	UPR_CONTROL     = CommandCode(0x5e)

	DCP_SYSTEM_EVENT = CommandCode(0x5f) // collection or scope change
	DCP_SEQNO_ADV    = CommandCode(0x64) // seqno moved on by an event the stream filters out
	DCP_OSO_SNAPSHOT = CommandCode(0x65) // begin or end of an out-of-seqno-order snapshot

	GET_REPLICA   = CommandCode(0x83)
	SELECT_BUCKET = CommandCode(0x89)

	OBSERVE_SEQNO = CommandCode(0x91)
	OBSERVE       = CommandCode(0x92)

	GET_META                 = CommandCode(0xa0)
	SET_WITH_META            = CommandCode(0xa2)
	ADD_WITH_META            = CommandCode(0xa4)
	DELETE_WITH_META         = CommandCode(0xa8)
	GET_RANDOM_KEY           = CommandCode(0xb6)
	GET_COLLECTIONS_MANIFEST = CommandCode(0xba)
	COLLECTIONS_GET_CID      = CommandCode(0xbb)
	SET_TIME_SYNC            = CommandCode(0xc1)

	SUBDOC_GET            = CommandCode(0xc5)
	SUBDOC_DICT_UPSERT    = CommandCode(0xc8)
	SUBDOC_DELETE         = CommandCode(0xc9)
	SUBDOC_COUNTER        = CommandCode(0xcf)
	SUBDOC_MULTI_LOOKUP   = CommandCode(0xd0)
	SUBDOC_MULTI_MUTATION = CommandCode(0xd1)

	CREATE_RANGE_SCAN   = CommandCode(0xda)
	CONTINUE_RANGE_SCAN = CommandCode(0xdb)
	CANCEL_RANGE_SCAN   = CommandCode(0xdc)

	GET_ERROR_MAP = CommandCode(0xfe)
)

// Opcodes beyond the reference's list, named as the protocol documents name
// them so that they sit beside the ones above.
const (
	VERBOSITY = CommandCode(0x1b)
	TOUCH     = CommandCode(0x1c)
	GATQ      = CommandCode(0x1e)
	// GATK and GATKQ are memcached's get-and-touch returning the key. Couchbase
	// uses the same values for IOCTL_GET and IOCTL_SET.
	GATK  = CommandCode(0x23)
	GATKQ = CommandCode(0x24)

	GET_VBUCKET = CommandCode(0x3e)
	DEL_VBUCKET = CommandCode(0x3f)

	DCP_SET_VBUCKET_STATE = CommandCode(0x5b)
	DCP_PREPARE           = CommandCode(0x60)
	DCP_SEQNO_ACK         = CommandCode(0x61)
	DCP_COMMIT            = CommandCode(0x62)
	DCP_ABORT             = CommandCode(0x63)

	LIST_BUCKETS     = CommandCode(0x87)
	EVICT_KEY        = CommandCode(0x93)
	GET_LOCKED       = CommandCode(0x94)
	UNLOCK_KEY       = CommandCode(0x95)
	GET_FAILOVER_LOG = CommandCode(0x96)

	GETQ_META          = CommandCode(0xa1)
	SETQ_WITH_META     = CommandCode(0xa3)
	ADDQ_WITH_META     = CommandCode(0xa5)
	DELETEQ_WITH_META  = CommandCode(0xa9)
	GET_CLUSTER_CONFIG = CommandCode(0xb5)

	COLLECTIONS_SET_MANIFEST = CommandCode(0xb9)
	COLLECTIONS_GET_SCOPE_ID = CommandCode(0xbc)

	SUBDOC_EXISTS           = CommandCode(0xc6)
	SUBDOC_DICT_ADD         = CommandCode(0xc7)
	SUBDOC_REPLACE          = CommandCode(0xca)
	SUBDOC_ARRAY_PUSH_LAST  = CommandCode(0xcb)
	SUBDOC_ARRAY_PUSH_FIRST = CommandCode(0xcc)
	SUBDOC_ARRAY_INSERT     = CommandCode(0xcd)
	SUBDOC_ARRAY_ADD_UNIQUE = CommandCode(0xce)
	SUBDOC_GET_COUNT        = CommandCode(0xd2)

	SUBDOC_REPLACE_BODY_WITH_XATTR = CommandCode(0xd3)
)

// BufferedCommandCodeMap holds the opcodes of the DCP messages a consumer must
// count towards its flow-control buffer and acknowledge with UPR_BUFFERACK.
var BufferedCommandCodeMap = map[CommandCode]bool{
	SET_VBUCKET:      true,
	UPR_STREAMEND:    true,
	UPR_SNAPSHOT:     true,
	UPR_MUTATION:     true,
	UPR_DELETION:     true,
	UPR_EXPIRATION:   true,
	DCP_SYSTEM_EVENT: true,
	DCP_SEQNO_ADV:    true,
	DCP_OSO_SNAPSHOT: true,
}

// CommandNames maps every opcode this package names to its name, as in the
// reference. Treat it as read-only: String does not consult it but a copy
// taken when the package is initialised, so that String is safe for
// concurrent use whatever a program does to the map; a name added to the
// map later does not show up in String.
var CommandNames = map[CommandCode]string{
	GET: "GET", SET: "SET", ADD: "ADD", REPLACE: "REPLACE", DELETE: "DELETE",
	INCREMENT: "INCREMENT", DECREMENT: "DECREMENT", QUIT: "QUIT", FLUSH: "FLUSH",
	GETQ: "GETQ", NOOP: "NOOP", VERSION: "VERSION", GETK: "GETK", GETKQ: "GETKQ",
	APPEND: "APPEND", PREPEND: "PREPEND", STAT: "STAT", SETQ: "SETQ", ADDQ: "ADDQ",
	REPLACEQ: "REPLACEQ", DELETEQ: "DELETEQ", INCREMENTQ: "INCREMENTQ",
	DECREMENTQ: "DECREMENTQ", QUITQ: "QUITQ", FLUSHQ: "FLUSHQ", APPENDQ: "APPENDQ",
	PREPENDQ: "PREPENDQ", VERBOSITY: "VERBOSITY", TOUCH: "TOUCH", GAT: "GAT",
	GATQ: "GATQ", HELLO: "HELLO", GATK: "GATK", GATKQ: "GATKQ", AUDIT: "AUDIT",

	SASL_LIST_MECHS: "SASL_LIST_MECHS", SASL_AUTH: "SASL_AUTH", SASL_STEP: "SASL_STEP",

	SET_BUCKET_THROTTLE_PROPERTIES: "SET_BUCKET_THROTTLE_PROPERTIES",
	SET_BUCKET_DATA_LIMIT_EXCEEDED: "SET_BUCKET_DATA_LIMIT_EXCEEDED",
	SET_NODE_THROTTLE_PROPERTIES:   "SET_NODE_THROTTLE_PROPERTIES",

	RGET: "RGET", RSET: "RSET", RSETQ: "RSETQ", RAPPEND: "RAPPEND", RAPPENDQ: "RAPPENDQ",
	RPREPEND: "RPREPEND", RPREPENDQ: "RPREPENDQ", RDELETE: "RDELETE", RDELETEQ: "RDELETEQ",
	RINCR: "RINCR", RINCRQ: "RINCRQ", RDECR: "RDECR", RDECRQ: "RDECRQ",

	SET_VBUCKET: "SET_VBUCKET", GET_VBUCKET: "GET_VBUCKET", DEL_VBUCKET: "DEL_VBUCKET",

	TAP_CONNECT: "TAP_CONNECT", TAP_MUTATION: "TAP_MUTATION", TAP_DELETE: "TAP_DELETE",
	TAP_FLUSH: "TAP_FLUSH", TAP_OPAQUE: "TAP_OPAQUE", TAP_VBUCKET_SET: "TAP_VBUCKET_SET",
	TAP_CHECKPOINT_START: "TAP_CHECKPOINT_START", TAP_CHECKPOINT_END: "TAP_CHECKPOINT_END",
	GET_ALL_VB_SEQNOS: "GET_ALL_VB_SEQNOS", GETEX: "GETEX", GETEX_REPLICA: "GETEX_REPLICA",

	UPR_OPEN: "UPR_OPEN", UPR_ADDSTREAM: "UPR_ADDSTREAM", UPR_CLOSESTREAM: "UPR_CLOSESTREAM",
	UPR_STREAMREQ: "UPR_STREAMREQ", UPR_FAILOVERLOG: "UPR_FAILOVERLOG",
	UPR_STREAMEND: "UPR_STREAMEND", UPR_SNAPSHOT: "UPR_SNAPSHOT",
	UPR_MUTATION: "UPR_MUTATION", UPR_DELETION: "UPR_DELETION",
	UPR_EXPIRATION: "UPR_EXPIRATION", UPR_FLUSH: "UPR_FLUSH",
	DCP_SET_VBUCKET_STATE: "DCP_SET_VBUCKET_STATE", UPR_NOOP: "UPR_NOOP",
	UPR_BUFFERACK: "UPR_BUFFERACK", UPR_CONTROL: "UPR_CONTROL",
	DCP_SYSTEM_EVENT: "DCP_SYSTEM_EVENT", DCP_PREPARE: "DCP_PREPARE",
	DCP_SEQNO_ACK: "DCP_SEQNO_ACK", DCP_COMMIT: "DCP_COMMIT", DCP_ABORT: "DCP_ABORT",
	DCP_SEQNO_ADV: "DCP_SEQNO_ADV", DCP_OSO_SNAPSHOT: "DCP_OSO_SNAPSHOT",

	GET_REPLICA: "GET_REPLICA", LIST_BUCKETS: "LIST_BUCKETS", SELECT_BUCKET: "SELECT_BUCKET",
	OBSERVE_SEQNO: "OBSERVE_SEQNO", OBSERVE: "OBSERVE", EVICT_KEY: "EVICT_KEY",
	GET_LOCKED: "GET_LOCKED", UNLOCK_KEY: "UNLOCK_KEY", GET_FAILOVER_LOG: "GET_FAILOVER_LOG",

	GET_META: "GET_META", GETQ_META: "GETQ_META", SET_WITH_META: "SET_WITH_META",
	SETQ_WITH_META: "SETQ_WITH_META", ADD_WITH_META: "ADD_WITH_META",
	ADDQ_WITH_META: "ADDQ_WITH_META", DELETE_WITH_META: "DELETE_WITH_META",
	DELETEQ_WITH_META: "DELETEQ_WITH_META", GET_CLUSTER_CONFIG: "GET_CLUSTER_CONFIG",
	GET_RANDOM_KEY: "GET_RANDOM_KEY", GET_COLLECTIONS_MANIFEST: "GET_COLLECTIONS_MANIFEST",
	COLLECTIONS_GET_CID: "COLLECTIONS_GET_CID", COLLECTIONS_GET_SCOPE_ID: "COLLECTIONS_GET_SCOPE_ID",
	COLLECTIONS_SET_MANIFEST:       "COLLECTIONS_SET_MANIFEST",
	SUBDOC_REPLACE_BODY_WITH_XATTR: "SUBDOC_REPLACE_BODY_WITH_XATTR",
	SET_TIME_SYNC:                  "SET_TIME_SYNC",

	SUBDOC_GET: "SUBDOC_GET", SUBDOC_EXISTS: "SUBDOC_EXISTS", SUBDOC_DICT_ADD: "SUBDOC_DICT_ADD",
	SUBDOC_DICT_UPSERT: "SUBDOC_DICT_UPSERT", SUBDOC_DELETE: "SUBDOC_DELETE",
	SUBDOC_REPLACE: "SUBDOC_REPLACE", SUBDOC_ARRAY_PUSH_LAST: "SUBDOC_ARRAY_PUSH_LAST",
	SUBDOC_ARRAY_PUSH_FIRST: "SUBDOC_ARRAY_PUSH_FIRST", SUBDOC_ARRAY_INSERT: "SUBDOC_ARRAY_INSERT",
	SUBDOC_ARRAY_ADD_UNIQUE: "SUBDOC_ARRAY_ADD_UNIQUE", SUBDOC_COUNTER: "SUBDOC_COUNTER",
	SUBDOC_MULTI_LOOKUP: "SUBDOC_MULTI_LOOKUP", SUBDOC_MULTI_MUTATION: "SUBDOC_MULTI_MUTATION",
	SUBDOC_GET_COUNT: "SUBDOC_GET_COUNT",

	CREATE_RANGE_SCAN: "CREATE_RANGE_SCAN", CONTINUE_RANGE_SCAN: "CONTINUE_RANGE_SCAN",
	CANCEL_RANGE_SCAN: "CANCEL_RANGE_SCAN", GET_ERROR_MAP: "GET_ERROR_MAP",
}

// commandNames is CommandNames as the package defines it, indexed by
// opcode, for String.
var commandNames = func() (names [256]string) {
	for op, name := range CommandNames {
		names[op] = name
	}
	return names
}()

// String returns the opcode's name (see CommandNames), or its value in hex
// ("0x2e") when it has none.
func (o CommandCode) String() string {
	if s := commandNames[o]; s != "" {
		return s
	}
	return hexByte(uint16(o))
}

// IsQuiet reports whether o is a quiet command: the server sends no response
// to it on success (mutations) or on a miss (GETQ, GETKQ, GATQ, GATKQ), and
// never answers QUITQ.
//
// The reference (github.com/couchbase/gomemcached) leaves out GATQ and
// GATKQ, which memcached answers quietly as the others; this one follows
// memcached. (0x24, GATKQ in memcached, is an ioctl in Couchbase's
// numbering; a client that counts it quiet only sends a needless fence.)
func (o CommandCode) IsQuiet() bool {
	switch o {
	case GETQ, GETKQ, SETQ, ADDQ, REPLACEQ, DELETEQ, INCREMENTQ, DECREMENTQ,
		QUITQ, FLUSHQ, APPENDQ, PREPENDQ, GATQ, GATKQ,
		RSETQ, RAPPENDQ, RPREPENDQ, RDELETEQ, RINCRQ, RDECRQ:
		return true
	}
	return false
}

// hexByte formats v as 0x followed by at least two lower-case hex digits.
func hexByte(v uint16) string {
	s := strconv.FormatUint(uint64(v), 16)
	if len(s) < 2 {
		s = "0" + s
	}
	return "0x" + s
}
