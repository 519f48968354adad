package gomemcached_test

// Differential tests against github.com/couchbase/gomemcached v0.3.4, the
// package this one replaces: the same constants, names and wire bytes, and
// each side decoding the other's packets to the same fields. Where the
// reference is wrong the test says so and checks the protocol instead.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	ref "github.com/couchbase/gomemcached"
	gm "github.com/f8e615c8/gomemcached"
)

func TestDiffConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		ours, ref uint64
	}{
		{"REQ_MAGIC", uint64(gm.REQ_MAGIC), uint64(ref.REQ_MAGIC)},
		{"RES_MAGIC", uint64(gm.RES_MAGIC), uint64(ref.RES_MAGIC)},
		{"FLEX_MAGIC", uint64(gm.FLEX_MAGIC), uint64(ref.FLEX_MAGIC)},
		{"FLEX_RES_MAGIC", uint64(gm.FLEX_RES_MAGIC), uint64(ref.FLEX_RES_MAGIC)},
		{"GET", uint64(gm.GET), uint64(ref.GET)},
		{"SET", uint64(gm.SET), uint64(ref.SET)},
		{"ADD", uint64(gm.ADD), uint64(ref.ADD)},
		{"REPLACE", uint64(gm.REPLACE), uint64(ref.REPLACE)},
		{"DELETE", uint64(gm.DELETE), uint64(ref.DELETE)},
		{"INCREMENT", uint64(gm.INCREMENT), uint64(ref.INCREMENT)},
		{"DECREMENT", uint64(gm.DECREMENT), uint64(ref.DECREMENT)},
		{"QUIT", uint64(gm.QUIT), uint64(ref.QUIT)},
		{"FLUSH", uint64(gm.FLUSH), uint64(ref.FLUSH)},
		{"GETQ", uint64(gm.GETQ), uint64(ref.GETQ)},
		{"NOOP", uint64(gm.NOOP), uint64(ref.NOOP)},
		{"VERSION", uint64(gm.VERSION), uint64(ref.VERSION)},
		{"GETK", uint64(gm.GETK), uint64(ref.GETK)},
		{"GETKQ", uint64(gm.GETKQ), uint64(ref.GETKQ)},
		{"APPEND", uint64(gm.APPEND), uint64(ref.APPEND)},
		{"PREPEND", uint64(gm.PREPEND), uint64(ref.PREPEND)},
		{"STAT", uint64(gm.STAT), uint64(ref.STAT)},
		{"SETQ", uint64(gm.SETQ), uint64(ref.SETQ)},
		{"ADDQ", uint64(gm.ADDQ), uint64(ref.ADDQ)},
		{"REPLACEQ", uint64(gm.REPLACEQ), uint64(ref.REPLACEQ)},
		{"DELETEQ", uint64(gm.DELETEQ), uint64(ref.DELETEQ)},
		{"INCREMENTQ", uint64(gm.INCREMENTQ), uint64(ref.INCREMENTQ)},
		{"DECREMENTQ", uint64(gm.DECREMENTQ), uint64(ref.DECREMENTQ)},
		{"QUITQ", uint64(gm.QUITQ), uint64(ref.QUITQ)},
		{"FLUSHQ", uint64(gm.FLUSHQ), uint64(ref.FLUSHQ)},
		{"APPENDQ", uint64(gm.APPENDQ), uint64(ref.APPENDQ)},
		{"AUDIT", uint64(gm.AUDIT), uint64(ref.AUDIT)},
		{"PREPENDQ", uint64(gm.PREPENDQ), uint64(ref.PREPENDQ)},
		{"GAT", uint64(gm.GAT), uint64(ref.GAT)},
		{"HELLO", uint64(gm.HELLO), uint64(ref.HELLO)},
		{"RGET", uint64(gm.RGET), uint64(ref.RGET)},
		{"RSET", uint64(gm.RSET), uint64(ref.RSET)},
		{"RSETQ", uint64(gm.RSETQ), uint64(ref.RSETQ)},
		{"RAPPEND", uint64(gm.RAPPEND), uint64(ref.RAPPEND)},
		{"RAPPENDQ", uint64(gm.RAPPENDQ), uint64(ref.RAPPENDQ)},
		{"RPREPEND", uint64(gm.RPREPEND), uint64(ref.RPREPEND)},
		{"RPREPENDQ", uint64(gm.RPREPENDQ), uint64(ref.RPREPENDQ)},
		{"RDELETE", uint64(gm.RDELETE), uint64(ref.RDELETE)},
		{"RDELETEQ", uint64(gm.RDELETEQ), uint64(ref.RDELETEQ)},
		{"RINCR", uint64(gm.RINCR), uint64(ref.RINCR)},
		{"RINCRQ", uint64(gm.RINCRQ), uint64(ref.RINCRQ)},
		{"RDECR", uint64(gm.RDECR), uint64(ref.RDECR)},
		{"RDECRQ", uint64(gm.RDECRQ), uint64(ref.RDECRQ)},
		{"SASL_LIST_MECHS", uint64(gm.SASL_LIST_MECHS), uint64(ref.SASL_LIST_MECHS)},
		{"SASL_AUTH", uint64(gm.SASL_AUTH), uint64(ref.SASL_AUTH)},
		{"SASL_STEP", uint64(gm.SASL_STEP), uint64(ref.SASL_STEP)},
		{"SET_BUCKET_THROTTLE_PROPERTIES", uint64(gm.SET_BUCKET_THROTTLE_PROPERTIES), uint64(ref.SET_BUCKET_THROTTLE_PROPERTIES)},
		{"SET_BUCKET_DATA_LIMIT_EXCEEDED", uint64(gm.SET_BUCKET_DATA_LIMIT_EXCEEDED), uint64(ref.SET_BUCKET_DATA_LIMIT_EXCEEDED)},
		{"SET_NODE_THROTTLE_PROPERTIES", uint64(gm.SET_NODE_THROTTLE_PROPERTIES), uint64(ref.SET_NODE_THROTTLE_PROPERTIES)},
		{"SET_VBUCKET", uint64(gm.SET_VBUCKET), uint64(ref.SET_VBUCKET)},
		{"TAP_CONNECT", uint64(gm.TAP_CONNECT), uint64(ref.TAP_CONNECT)},
		{"TAP_MUTATION", uint64(gm.TAP_MUTATION), uint64(ref.TAP_MUTATION)},
		{"TAP_DELETE", uint64(gm.TAP_DELETE), uint64(ref.TAP_DELETE)},
		{"TAP_FLUSH", uint64(gm.TAP_FLUSH), uint64(ref.TAP_FLUSH)},
		{"TAP_OPAQUE", uint64(gm.TAP_OPAQUE), uint64(ref.TAP_OPAQUE)},
		{"TAP_VBUCKET_SET", uint64(gm.TAP_VBUCKET_SET), uint64(ref.TAP_VBUCKET_SET)},
		{"TAP_CHECKPOINT_START", uint64(gm.TAP_CHECKPOINT_START), uint64(ref.TAP_CHECKPOINT_START)},
		{"TAP_CHECKPOINT_END", uint64(gm.TAP_CHECKPOINT_END), uint64(ref.TAP_CHECKPOINT_END)},
		{"GET_ALL_VB_SEQNOS", uint64(gm.GET_ALL_VB_SEQNOS), uint64(ref.GET_ALL_VB_SEQNOS)},
		{"GETEX", uint64(gm.GETEX), uint64(ref.GETEX)},
		{"GETEX_REPLICA", uint64(gm.GETEX_REPLICA), uint64(ref.GETEX_REPLICA)},
		{"UPR_OPEN", uint64(gm.UPR_OPEN), uint64(ref.UPR_OPEN)},
		{"UPR_ADDSTREAM", uint64(gm.UPR_ADDSTREAM), uint64(ref.UPR_ADDSTREAM)},
		{"UPR_CLOSESTREAM", uint64(gm.UPR_CLOSESTREAM), uint64(ref.UPR_CLOSESTREAM)},
		{"UPR_FAILOVERLOG", uint64(gm.UPR_FAILOVERLOG), uint64(ref.UPR_FAILOVERLOG)},
		{"UPR_STREAMREQ", uint64(gm.UPR_STREAMREQ), uint64(ref.UPR_STREAMREQ)},
		{"UPR_STREAMEND", uint64(gm.UPR_STREAMEND), uint64(ref.UPR_STREAMEND)},
		{"UPR_SNAPSHOT", uint64(gm.UPR_SNAPSHOT), uint64(ref.UPR_SNAPSHOT)},
		{"UPR_MUTATION", uint64(gm.UPR_MUTATION), uint64(ref.UPR_MUTATION)},
		{"UPR_DELETION", uint64(gm.UPR_DELETION), uint64(ref.UPR_DELETION)},
		{"UPR_EXPIRATION", uint64(gm.UPR_EXPIRATION), uint64(ref.UPR_EXPIRATION)},
		{"UPR_FLUSH", uint64(gm.UPR_FLUSH), uint64(ref.UPR_FLUSH)},
		{"UPR_NOOP", uint64(gm.UPR_NOOP), uint64(ref.UPR_NOOP)},
		{"UPR_BUFFERACK", uint64(gm.UPR_BUFFERACK), uint64(ref.UPR_BUFFERACK)},
		{"UPR_CONTROL", uint64(gm.UPR_CONTROL), uint64(ref.UPR_CONTROL)},
		{"GET_REPLICA", uint64(gm.GET_REPLICA), uint64(ref.GET_REPLICA)},
		{"SELECT_BUCKET", uint64(gm.SELECT_BUCKET), uint64(ref.SELECT_BUCKET)},
		{"OBSERVE_SEQNO", uint64(gm.OBSERVE_SEQNO), uint64(ref.OBSERVE_SEQNO)},
		{"OBSERVE", uint64(gm.OBSERVE), uint64(ref.OBSERVE)},
		{"GET_META", uint64(gm.GET_META), uint64(ref.GET_META)},
		{"SET_WITH_META", uint64(gm.SET_WITH_META), uint64(ref.SET_WITH_META)},
		{"ADD_WITH_META", uint64(gm.ADD_WITH_META), uint64(ref.ADD_WITH_META)},
		{"DELETE_WITH_META", uint64(gm.DELETE_WITH_META), uint64(ref.DELETE_WITH_META)},
		{"GET_RANDOM_KEY", uint64(gm.GET_RANDOM_KEY), uint64(ref.GET_RANDOM_KEY)},
		{"GET_COLLECTIONS_MANIFEST", uint64(gm.GET_COLLECTIONS_MANIFEST), uint64(ref.GET_COLLECTIONS_MANIFEST)},
		{"COLLECTIONS_GET_CID", uint64(gm.COLLECTIONS_GET_CID), uint64(ref.COLLECTIONS_GET_CID)},
		{"SET_TIME_SYNC", uint64(gm.SET_TIME_SYNC), uint64(ref.SET_TIME_SYNC)},
		{"SUBDOC_GET", uint64(gm.SUBDOC_GET), uint64(ref.SUBDOC_GET)},
		{"SUBDOC_DICT_UPSERT", uint64(gm.SUBDOC_DICT_UPSERT), uint64(ref.SUBDOC_DICT_UPSERT)},
		{"SUBDOC_DELETE", uint64(gm.SUBDOC_DELETE), uint64(ref.SUBDOC_DELETE)},
		{"SUBDOC_COUNTER", uint64(gm.SUBDOC_COUNTER), uint64(ref.SUBDOC_COUNTER)},
		{"SUBDOC_MULTI_LOOKUP", uint64(gm.SUBDOC_MULTI_LOOKUP), uint64(ref.SUBDOC_MULTI_LOOKUP)},
		{"SUBDOC_MULTI_MUTATION", uint64(gm.SUBDOC_MULTI_MUTATION), uint64(ref.SUBDOC_MULTI_MUTATION)},
		{"DCP_SYSTEM_EVENT", uint64(gm.DCP_SYSTEM_EVENT), uint64(ref.DCP_SYSTEM_EVENT)},
		{"DCP_SEQNO_ADV", uint64(gm.DCP_SEQNO_ADV), uint64(ref.DCP_SEQNO_ADV)},
		{"DCP_OSO_SNAPSHOT", uint64(gm.DCP_OSO_SNAPSHOT), uint64(ref.DCP_OSO_SNAPSHOT)},
		{"CREATE_RANGE_SCAN", uint64(gm.CREATE_RANGE_SCAN), uint64(ref.CREATE_RANGE_SCAN)},
		{"CONTINUE_RANGE_SCAN", uint64(gm.CONTINUE_RANGE_SCAN), uint64(ref.CONTINUE_RANGE_SCAN)},
		{"CANCEL_RANGE_SCAN", uint64(gm.CANCEL_RANGE_SCAN), uint64(ref.CANCEL_RANGE_SCAN)},
		{"GET_ERROR_MAP", uint64(gm.GET_ERROR_MAP), uint64(ref.GET_ERROR_MAP)},
		{"SUCCESS", uint64(gm.SUCCESS), uint64(ref.SUCCESS)},
		{"KEY_ENOENT", uint64(gm.KEY_ENOENT), uint64(ref.KEY_ENOENT)},
		{"KEY_EEXISTS", uint64(gm.KEY_EEXISTS), uint64(ref.KEY_EEXISTS)},
		{"E2BIG", uint64(gm.E2BIG), uint64(ref.E2BIG)},
		{"EINVAL", uint64(gm.EINVAL), uint64(ref.EINVAL)},
		{"NOT_STORED", uint64(gm.NOT_STORED), uint64(ref.NOT_STORED)},
		{"DELTA_BADVAL", uint64(gm.DELTA_BADVAL), uint64(ref.DELTA_BADVAL)},
		{"NOT_MY_VBUCKET", uint64(gm.NOT_MY_VBUCKET), uint64(ref.NOT_MY_VBUCKET)},
		{"NO_BUCKET", uint64(gm.NO_BUCKET), uint64(ref.NO_BUCKET)},
		{"LOCKED", uint64(gm.LOCKED), uint64(ref.LOCKED)},
		{"WOULD_THROTTLE", uint64(gm.WOULD_THROTTLE), uint64(ref.WOULD_THROTTLE)},
		{"CONFIG_ONLY", uint64(gm.CONFIG_ONLY), uint64(ref.CONFIG_ONLY)},
		{"CAS_VALUE_INVALID", uint64(gm.CAS_VALUE_INVALID), uint64(ref.CAS_VALUE_INVALID)},
		{"AUTH_STALE", uint64(gm.AUTH_STALE), uint64(ref.AUTH_STALE)},
		{"AUTH_ERROR", uint64(gm.AUTH_ERROR), uint64(ref.AUTH_ERROR)},
		{"AUTH_CONTINUE", uint64(gm.AUTH_CONTINUE), uint64(ref.AUTH_CONTINUE)},
		{"ERANGE", uint64(gm.ERANGE), uint64(ref.ERANGE)},
		{"ROLLBACK", uint64(gm.ROLLBACK), uint64(ref.ROLLBACK)},
		{"EACCESS", uint64(gm.EACCESS), uint64(ref.EACCESS)},
		{"NOT_INITIALIZED", uint64(gm.NOT_INITIALIZED), uint64(ref.NOT_INITIALIZED)},
		{"RATE_LIMITED_NETWORK_INGRESS", uint64(gm.RATE_LIMITED_NETWORK_INGRESS), uint64(ref.RATE_LIMITED_NETWORK_INGRESS)},
		{"RATE_LIMITED_NETWORK_EGRESS", uint64(gm.RATE_LIMITED_NETWORK_EGRESS), uint64(ref.RATE_LIMITED_NETWORK_EGRESS)},
		{"RATE_LIMITED_MAX_CONNECTIONS", uint64(gm.RATE_LIMITED_MAX_CONNECTIONS), uint64(ref.RATE_LIMITED_MAX_CONNECTIONS)},
		{"RATE_LIMITED_MAX_COMMANDS", uint64(gm.RATE_LIMITED_MAX_COMMANDS), uint64(ref.RATE_LIMITED_MAX_COMMANDS)},
		{"SCOPE_SIZE_LIMIT_EXCEEDED", uint64(gm.SCOPE_SIZE_LIMIT_EXCEEDED), uint64(ref.SCOPE_SIZE_LIMIT_EXCEEDED)},
		{"BUCKET_SIZE_LIMIT_EXCEEDED", uint64(gm.BUCKET_SIZE_LIMIT_EXCEEDED), uint64(ref.BUCKET_SIZE_LIMIT_EXCEEDED)},
		{"BUCKET_RESIDENT_RATIO_TOO_LOW", uint64(gm.BUCKET_RESIDENT_RATIO_TOO_LOW), uint64(ref.BUCKET_RESIDENT_RATIO_TOO_LOW)},
		{"BUCKET_DATA_SIZE_TOO_BIG", uint64(gm.BUCKET_DATA_SIZE_TOO_BIG), uint64(ref.BUCKET_DATA_SIZE_TOO_BIG)},
		{"BUCKET_DISK_SPACE_TOO_LOW", uint64(gm.BUCKET_DISK_SPACE_TOO_LOW), uint64(ref.BUCKET_DISK_SPACE_TOO_LOW)},
		{"UNKNOWN_COMMAND", uint64(gm.UNKNOWN_COMMAND), uint64(ref.UNKNOWN_COMMAND)},
		{"ENOMEM", uint64(gm.ENOMEM), uint64(ref.ENOMEM)},
		{"NOT_SUPPORTED", uint64(gm.NOT_SUPPORTED), uint64(ref.NOT_SUPPORTED)},
		{"EINTERNAL", uint64(gm.EINTERNAL), uint64(ref.EINTERNAL)},
		{"EBUSY", uint64(gm.EBUSY), uint64(ref.EBUSY)},
		{"TMPFAIL", uint64(gm.TMPFAIL), uint64(ref.TMPFAIL)},
		{"XATTR_EINVAL", uint64(gm.XATTR_EINVAL), uint64(ref.XATTR_EINVAL)},
		{"UNKNOWN_COLLECTION", uint64(gm.UNKNOWN_COLLECTION), uint64(ref.UNKNOWN_COLLECTION)},
		{"DURABILITY_INVALID_LEVEL", uint64(gm.DURABILITY_INVALID_LEVEL), uint64(ref.DURABILITY_INVALID_LEVEL)},
		{"DURABILITY_IMPOSSIBLE", uint64(gm.DURABILITY_IMPOSSIBLE), uint64(ref.DURABILITY_IMPOSSIBLE)},
		{"SYNC_WRITE_IN_PROGRESS", uint64(gm.SYNC_WRITE_IN_PROGRESS), uint64(ref.SYNC_WRITE_IN_PROGRESS)},
		{"SYNC_WRITE_AMBIGUOUS", uint64(gm.SYNC_WRITE_AMBIGUOUS), uint64(ref.SYNC_WRITE_AMBIGUOUS)},
		{"SYNC_WRITE_RECOMMITINPROGRESS", uint64(gm.SYNC_WRITE_RECOMMITINPROGRESS), uint64(ref.SYNC_WRITE_RECOMMITINPROGRESS)},
		{"RANGE_SCAN_MORE", uint64(gm.RANGE_SCAN_MORE), uint64(ref.RANGE_SCAN_MORE)},
		{"RANGE_SCAN_COMPLETE", uint64(gm.RANGE_SCAN_COMPLETE), uint64(ref.RANGE_SCAN_COMPLETE)},
		{"SUBDOC_PATH_NOT_FOUND", uint64(gm.SUBDOC_PATH_NOT_FOUND), uint64(ref.SUBDOC_PATH_NOT_FOUND)},
		{"SUBDOC_INVALID_COMBO", uint64(gm.SUBDOC_INVALID_COMBO), uint64(ref.SUBDOC_INVALID_COMBO)},
		{"SUBDOC_BAD_MULTI", uint64(gm.SUBDOC_BAD_MULTI), uint64(ref.SUBDOC_BAD_MULTI)},
		{"SUBDOC_SUCCESS_DELETED", uint64(gm.SUBDOC_SUCCESS_DELETED), uint64(ref.SUBDOC_SUCCESS_DELETED)},
		{"SUBDOC_MULTI_PATH_FAILURE_DELETED", uint64(gm.SUBDOC_MULTI_PATH_FAILURE_DELETED), uint64(ref.SUBDOC_MULTI_PATH_FAILURE_DELETED)},
		{"UNKNOWN_STATUS", uint64(gm.UNKNOWN_STATUS), uint64(ref.UNKNOWN_STATUS)},
		{"SUBDOC_FLAG_NONE", uint64(gm.SUBDOC_FLAG_NONE), uint64(ref.SUBDOC_FLAG_NONE)},
		{"SUBDOC_FLAG_MKDOC", uint64(gm.SUBDOC_FLAG_MKDOC), uint64(ref.SUBDOC_FLAG_MKDOC)},
		{"SUBDOC_FLAG_ADD", uint64(gm.SUBDOC_FLAG_ADD), uint64(ref.SUBDOC_FLAG_ADD)},
		{"SUBDOC_FLAG_ACCESS_DELETED", uint64(gm.SUBDOC_FLAG_ACCESS_DELETED), uint64(ref.SUBDOC_FLAG_ACCESS_DELETED)},
		{"SUBDOC_FLAG_CREATE_AS_DELETED", uint64(gm.SUBDOC_FLAG_CREATE_AS_DELETED), uint64(ref.SUBDOC_FLAG_CREATE_AS_DELETED)},
		{"SUBDOC_FLAG_REVIVED_DOC", uint64(gm.SUBDOC_FLAG_REVIVED_DOC), uint64(ref.SUBDOC_FLAG_REVIVED_DOC)},
		{"SUBDOC_FLAG_NONE_PATH", uint64(gm.SUBDOC_FLAG_NONE_PATH), uint64(ref.SUBDOC_FLAG_NONE_PATH)},
		{"SUBDOC_FLAG_MKDIR_PATH", uint64(gm.SUBDOC_FLAG_MKDIR_PATH), uint64(ref.SUBDOC_FLAG_MKDIR_PATH)},
		{"SUBDOC_FLAG_XATTR_PATH", uint64(gm.SUBDOC_FLAG_XATTR_PATH), uint64(ref.SUBDOC_FLAG_XATTR_PATH)},
		{"SUBDOC_FLAG_EXPAND_MACRRO_PATH", uint64(gm.SUBDOC_FLAG_EXPAND_MACRRO_PATH), uint64(ref.SUBDOC_FLAG_EXPAND_MACRRO_PATH)},
		{"ComputeUnitsRead", uint64(gm.ComputeUnitsRead), uint64(ref.ComputeUnitsRead)},
		{"ComputeUnitsWrite", uint64(gm.ComputeUnitsWrite), uint64(ref.ComputeUnitsWrite)},
		{"DatatypeFlagJSON", uint64(gm.DatatypeFlagJSON), uint64(ref.DatatypeFlagJSON)},
		{"DatatypeFlagCompressed", uint64(gm.DatatypeFlagCompressed), uint64(ref.DatatypeFlagCompressed)},
		{"DatatypeFlagXattrs", uint64(gm.DatatypeFlagXattrs), uint64(ref.DatatypeFlagXattrs)},
		{"ErrorMapInvalidVersion", uint64(gm.ErrorMapInvalidVersion), uint64(ref.ErrorMapInvalidVersion)},
		{"ErrorMapCB50", uint64(gm.ErrorMapCB50), uint64(ref.ErrorMapCB50)},
		{"ErrorMapCB75", uint64(gm.ErrorMapCB75), uint64(ref.ErrorMapCB75)},
		{"BACKFILL", uint64(gm.BACKFILL), uint64(ref.BACKFILL)},
		{"DUMP", uint64(gm.DUMP), uint64(ref.DUMP)},
		{"LIST_VBUCKETS", uint64(gm.LIST_VBUCKETS), uint64(ref.LIST_VBUCKETS)},
		{"TAKEOVER_VBUCKETS", uint64(gm.TAKEOVER_VBUCKETS), uint64(ref.TAKEOVER_VBUCKETS)},
		{"SUPPORT_ACK", uint64(gm.SUPPORT_ACK), uint64(ref.SUPPORT_ACK)},
		{"REQUEST_KEYS_ONLY", uint64(gm.REQUEST_KEYS_ONLY), uint64(ref.REQUEST_KEYS_ONLY)},
		{"CHECKPOINT", uint64(gm.CHECKPOINT), uint64(ref.CHECKPOINT)},
		{"REGISTERED_CLIENT", uint64(gm.REGISTERED_CLIENT), uint64(ref.REGISTERED_CLIENT)},
		{"FIX_FLAG_BYTEORDER", uint64(gm.FIX_FLAG_BYTEORDER), uint64(ref.FIX_FLAG_BYTEORDER)},
		{"TAP_OPAQUE_ENABLE_AUTO_NACK", uint64(gm.TAP_OPAQUE_ENABLE_AUTO_NACK), uint64(ref.TAP_OPAQUE_ENABLE_AUTO_NACK)},
		{"TAP_OPAQUE_INITIAL_VBUCKET_STREAM", uint64(gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM), uint64(ref.TAP_OPAQUE_INITIAL_VBUCKET_STREAM)},
		{"TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC", uint64(gm.TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC), uint64(ref.TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC)},
		{"TAP_OPAQUE_CLOSE_TAP_STREAM", uint64(gm.TAP_OPAQUE_CLOSE_TAP_STREAM), uint64(ref.TAP_OPAQUE_CLOSE_TAP_STREAM)},
		{"TAP_OPAQUE_CLOSE_BACKFILL", uint64(gm.TAP_OPAQUE_CLOSE_BACKFILL), uint64(ref.TAP_OPAQUE_CLOSE_BACKFILL)},
		{"TAP_ACK", uint64(gm.TAP_ACK), uint64(ref.TAP_ACK)},
		{"TAP_NO_VALUE", uint64(gm.TAP_NO_VALUE), uint64(ref.TAP_NO_VALUE)},
		{"TAP_FLAG_NETWORK_BYTE_ORDER", uint64(gm.TAP_FLAG_NETWORK_BYTE_ORDER), uint64(ref.TAP_FLAG_NETWORK_BYTE_ORDER)},
		{"FAST_FRAME_LEN", uint64(gm.FAST_FRAME_LEN), uint64(ref.FAST_FRAME_LEN)},
		{"HDR_LEN", uint64(gm.HDR_LEN), uint64(ref.HDR_LEN)},
		{"MAX_USER_LEN", uint64(gm.MAX_USER_LEN), uint64(ref.MAX_USER_LEN)},
		{"DuraInvalid", uint64(gm.DuraInvalid), uint64(ref.DuraInvalid)},
		{"DuraMajority", uint64(gm.DuraMajority), uint64(ref.DuraMajority)},
		{"DuraMajorityAndPersistOnMaster", uint64(gm.DuraMajorityAndPersistOnMaster), uint64(ref.DuraMajorityAndPersistOnMaster)},
		{"DuraPersistToMajority", uint64(gm.DuraPersistToMajority), uint64(ref.DuraPersistToMajority)},
		{"FrameBarrier", uint64(gm.FrameBarrier), uint64(ref.FrameBarrier)},
		{"FrameDurability", uint64(gm.FrameDurability), uint64(ref.FrameDurability)},
		{"FrameDcpStreamId", uint64(gm.FrameDcpStreamId), uint64(ref.FrameDcpStreamId)},
		{"FrameOpenTracing", uint64(gm.FrameOpenTracing), uint64(ref.FrameOpenTracing)},
		{"FrameImpersonate", uint64(gm.FrameImpersonate), uint64(ref.FrameImpersonate)},
		{"FramePreserveExpiry", uint64(gm.FramePreserveExpiry), uint64(ref.FramePreserveExpiry)},
	} {
		if c.ours != c.ref {
			t.Errorf("%s = %#x, reference %#x", c.name, c.ours, c.ref)
		}
	}
	if gm.UdTagBegin != ref.UdTagBegin || gm.UdTagEnd != ref.UdTagEnd {
		t.Error("log redaction tags differ")
	}
	if gm.MaxBodyLen != ref.MaxBodyLen || gm.DCP_PRODUCER != ref.DCP_PRODUCER ||
		gm.DCP_OPEN_INCLUDE_XATTRS != ref.DCP_OPEN_INCLUDE_XATTRS ||
		gm.DCP_OPEN_INCLUDE_DELETE_TIMES != ref.DCP_OPEN_INCLUDE_DELETE_TIMES ||
		gm.SUBDOC_FLAG_XATTR != ref.SUBDOC_FLAG_XATTR {
		t.Error("variables differ")
	}
	if len(gm.BufferedCommandCodeMap) != len(ref.BufferedCommandCodeMap) {
		t.Error("BufferedCommandCodeMap differs")
	}
	for op, v := range ref.BufferedCommandCodeMap {
		if gm.BufferedCommandCodeMap[gm.CommandCode(op)] != v {
			t.Errorf("BufferedCommandCodeMap[%v] differs", op)
		}
	}
	for f, name := range ref.TapConnectFlagNames {
		if gm.TapConnectFlagNames[gm.TapConnectFlag(f)] != name {
			t.Errorf("TapConnectFlagNames[%#x] differs", f)
		}
	}
	for f := range ref.TapFlagParsers {
		if _, ok := gm.TapFlagParsers[gm.TapConnectFlag(f)]; !ok {
			t.Errorf("TapFlagParsers lacks %v", f)
		}
	}
	if len(gm.TapFlagParsers) != len(ref.TapFlagParsers) {
		t.Error("TapFlagParsers differ in size")
	}
	for s := range ref.StatusDesc {
		if gm.StatusDesc[gm.Status(s)] == "" {
			t.Errorf("StatusDesc lacks %v", s)
		}
	}
}

// Names: ours name every opcode and status the reference names, the same
// way; where the reference has no name both print the value in hex, unless
// we name an opcode or status the reference does not know.
func TestDiffNames(t *testing.T) {
	for i := range 256 {
		o, r := gm.CommandCode(i), ref.CommandCode(i)
		if o.IsQuiet() != r.IsQuiet() && !extraQuiet[o] {
			t.Errorf("IsQuiet(%#x) = %v, reference %v", i, o.IsQuiet(), r.IsQuiet())
		}
		if _, named := ref.CommandNames[r]; named || gm.CommandNames[o] == "" {
			if o.String() != r.String() {
				t.Errorf("CommandCode(%#x).String() = %q, reference %q", i, o, r)
			}
		}
	}
	for i := range 0x10000 {
		o, r := gm.Status(i), ref.Status(i)
		if _, named := ref.StatusNames[r]; named || gm.StatusNames[o] == "" {
			if o.String() != r.String() {
				t.Errorf("Status(%#x).String() = %q, reference %q", i, o, r)
			}
		}
	}
}

// extraQuiet are quiet opcodes the reference does not define.
var extraQuiet = map[gm.CommandCode]bool{gm.GATQ: true, gm.GATKQ: true}

func TestDiffErrorHelpers(t *testing.T) {
	for i := range 0x10000 {
		o, r := &gm.MCResponse{Status: gm.Status(i)}, &ref.MCResponse{Status: ref.Status(i)}
		if gm.IsFatal(o) != ref.IsFatal(r) || gm.IsNotFound(o) != ref.IsNotFound(r) || gm.IsTenantLimit(o) != ref.IsTenantLimit(r) {
			t.Fatalf("status %#x: ours fatal %v notfound %v tenant %v; reference %v %v %v", i,
				gm.IsFatal(o), gm.IsNotFound(o), gm.IsTenantLimit(o), ref.IsFatal(r), ref.IsNotFound(r), ref.IsTenantLimit(r))
		}
	}
	for _, err := range []error{nil, io.EOF, errors.New("x")} {
		if gm.IsFatal(err) != ref.IsFatal(err) || gm.IsNotFound(err) != ref.IsNotFound(err) || gm.IsTenantLimit(err) != ref.IsTenantLimit(err) {
			t.Errorf("%v: helpers differ", err)
		}
	}
}

// frame is one framing extra of a test packet.
type frame struct {
	id   int
	data []byte
}

// pkt describes a request in terms both packages can build.
type pkt struct {
	name                       string
	op                         uint8
	cas                        uint64
	opaque                     uint32
	vb                         uint16
	datatype                   uint8
	extras, key, body, extmeta []byte
	cid                        int64 // -1: no collection id
	user                       string
	frames                     []frame
	// refDecodeBroken: the reference misparses these bytes: it treats the
	// low bit of a frame's id and length nibbles as an escape flag, so any
	// frame with an odd id or length comes out wrong (durability,
	// preserve-expiry, most user names).
	refDecodeBroken bool
}

func (p pkt) ours() gm.MCRequest {
	r := gm.MCRequest{Opcode: gm.CommandCode(p.op), Cas: p.cas, Opaque: p.opaque, VBucket: p.vb,
		DataType: p.datatype, Extras: p.extras, Key: p.key, Body: p.body, ExtMeta: p.extmeta}
	if p.cid >= 0 {
		r.SetCollectionID(uint32(p.cid))
	}
	if err := r.SetImpersonate(p.user); err != nil {
		panic(err)
	}
	for _, f := range p.frames {
		r.FramingExtras = append(r.FramingExtras, gm.FrameInfo{ObjId: gm.FrameObjType(f.id), ObjLen: len(f.data), ObjData: f.data})
	}
	return r
}

func (p pkt) ref() ref.MCRequest {
	r := ref.MCRequest{Opcode: ref.CommandCode(p.op), Cas: p.cas, Opaque: p.opaque, VBucket: p.vb,
		DataType: p.datatype, Extras: p.extras, Key: p.key, Body: p.body, ExtMeta: p.extmeta}
	if p.cid >= 0 {
		r.CollIdLen = binary.PutUvarint(r.CollId[:], uint64(p.cid))
	}
	r.UserLen = copy(r.Username[:], p.user)
	for _, f := range p.frames {
		r.FramingExtras = append(r.FramingExtras, ref.FrameInfo{ObjId: ref.FrameObjType(f.id), ObjLen: len(f.data), ObjData: f.data})
	}
	return r
}

func u32(v uint32) []byte        { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte        { return binary.BigEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// withMeta returns 31 bytes of DCP-mutation extras announcing n bytes of
// extended metadata.
func withMeta(n uint16) []byte {
	e := make([]byte, 31)
	binary.BigEndian.PutUint64(e, 77)
	binary.BigEndian.PutUint16(e[28:], n)
	return e
}

var diffRequests = []pkt{
	{name: "GET", op: 0x00, key: []byte("Hello"), cid: -1},
	{name: "GETQ with vbucket and opaque", op: 0x09, key: []byte("k"), vb: 1023, opaque: 0xdeadbeef, cid: -1},
	{name: "GETK binary key", op: 0x0c, key: []byte{0, 1, 2, 0xff}, cid: -1},
	{name: "GETKQ", op: 0x0d, key: []byte("bulk:1"), opaque: 1, cid: -1},
	{name: "SET", op: 0x01, extras: cat(u32(0xdeadbeef), u32(3600)), key: []byte("Hello"), body: []byte("World"), cid: -1},
	{name: "SETQ with CAS", op: 0x11, cas: 0x1122334455667788, extras: cat(u32(1), u32(0)), key: []byte("k"), body: bytes.Repeat([]byte("v"), 300), cid: -1},
	{name: "ADD JSON", op: 0x02, datatype: 1, extras: cat(u32(0), u32(0)), key: []byte("doc"), body: []byte(`{"a":1}`), cid: -1},
	{name: "REPLACE snappy", op: 0x03, datatype: 2, extras: cat(u32(0), u32(0)), key: []byte("doc"), body: []byte{0x05, 0x10, 'h', 'e', 'l', 'l', 'o'}, cid: -1},
	{name: "SET xattr JSON", op: 0x01, datatype: 5, extras: cat(u32(0), u32(0)), key: []byte("x"), body: []byte("\x00\x00\x00\x00{}"), cid: -1},
	{name: "DELETE with CAS", op: 0x04, key: []byte("Hello"), cas: 99, cid: -1},
	{name: "INCREMENT", op: 0x05, extras: cat(u64(1), u64(0), u32(3600)), key: []byte("counter"), cid: -1},
	{name: "DECREMENTQ", op: 0x16, extras: cat(u64(5), u64(10), u32(0xffffffff)), key: []byte("counter"), cid: -1},
	{name: "APPEND", op: 0x0e, key: []byte("Hello"), body: []byte("!"), cid: -1},
	{name: "PREPENDQ", op: 0x1a, key: []byte("Hello"), body: []byte(">"), cid: -1},
	{name: "QUIT", op: 0x07, cid: -1},
	{name: "FLUSH with delay", op: 0x08, extras: u32(3600), cid: -1},
	{name: "NOOP", op: 0x0a, opaque: 7, cid: -1},
	{name: "VERSION", op: 0x0b, cid: -1},
	{name: "STAT group", op: 0x10, key: []byte("settings"), cid: -1},
	{name: "VERBOSITY", op: 0x1b, extras: u32(1), cid: -1},
	{name: "TOUCH", op: 0x1c, extras: u32(10), key: []byte("k"), cid: -1},
	{name: "GAT", op: 0x1d, extras: u32(10), key: []byte("k"), cid: -1},
	{name: "HELLO", op: 0x1f, key: []byte("mchello v1.0"), body: []byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5}, cid: -1},
	{name: "SASL_AUTH PLAIN", op: 0x21, key: []byte("PLAIN"), body: []byte("\x00user\x00pass"), cid: -1},
	{name: "SELECT_BUCKET", op: 0x89, key: []byte("engineering"), cid: -1},
	{name: "GET_ERROR_MAP", op: 0xfe, body: []byte{0, 2}, cid: -1},
	{name: "OBSERVE", op: 0x92, body: cat([]byte{0, 3, 0, 1}, []byte("k")), cid: -1},
	{name: "OBSERVE_SEQNO", op: 0x91, vb: 3, body: u64(0xabcdef), cid: -1},
	{name: "GET_META", op: 0xa0, extras: []byte{2}, key: []byte("k"), cid: -1},
	{name: "SET_WITH_META with nmeta", op: 0xa2, extras: withMeta(3)[:30], key: []byte("k"), body: []byte("value"), extmeta: []byte{1, 2, 3}, cid: -1},
	{name: "DCP open", op: 0x50, extras: cat(u32(0), u32(1)), key: []byte("feed"), cid: -1},
	{name: "DCP stream request", op: 0x53, vb: 5, extras: cat(u32(0), u32(0), u64(0), u64(^uint64(0)), u64(123), u64(0), u64(0)), cid: -1},
	{name: "DCP mutation with extended metadata", op: 0x57, vb: 5, opaque: 9, extras: withMeta(4), key: []byte("k"), body: []byte("v"), extmeta: []byte{1, 2, 3, 4}, cid: -1},
	{name: "DCP snapshot marker", op: 0x56, extras: cat(u64(1), u64(9), u32(1)), cid: -1},
	{name: "DCP buffer ack", op: 0x5d, extras: u32(4096), cid: -1},
	{name: "TAP connect", op: 0x40, extras: u32(0x05), key: []byte("replica"), body: cat(u64(0), []byte{0, 1, 0, 4}), cid: -1},
	{name: "TAP mutation without engine data", op: 0x41, extras: make([]byte, 16), key: []byte("k"), body: []byte("v"), cid: -1},
	{name: "subdoc multi lookup", op: 0xd0, key: []byte("doc"), body: []byte{0xc5, 0x04, 0x00, 0x03, 'a', '.', 'b'}, cid: -1},
	{name: "range scan create", op: 0xda, datatype: 1, body: []byte(`{"collection":"0"}`), cid: -1},
	{name: "collections get cid", op: 0xbb, body: []byte("_default._default"), cid: -1},
	{name: "key of 300 bytes", op: 0x00, key: bytes.Repeat([]byte("k"), 300), cid: -1},
	{name: "collection 0", op: 0x00, key: []byte("k"), cid: 0},
	{name: "collection 8", op: 0x01, extras: cat(u32(0), u32(0)), key: []byte("k"), body: []byte("v"), cid: 8},
	{name: "collection 0x80", op: 0x00, key: []byte("k"), cid: 0x80},
	{name: "collection 0xffffffff", op: 0x04, key: []byte("k"), cid: 0xffffffff},
	{name: "impersonate (4 bytes)", op: 0x00, key: []byte("k"), user: "bob1", cid: -1},
	{name: "impersonate with collection", op: 0x00, key: []byte("k"), user: "^ext", cid: 9},
	{name: "impersonate (5 bytes)", op: 0x00, key: []byte("k"), user: "alice", cid: -1, refDecodeBroken: true},
	{name: "impersonate (20 bytes)", op: 0x00, key: []byte("k"), user: "a-twenty-byte-user-x", cid: -1, refDecodeBroken: true},
	{name: "barrier frame", op: 0x01, extras: cat(u32(0), u32(0)), key: []byte("k"), body: []byte("v"), cid: -1, frames: []frame{{0, nil}}},
	{name: "stream id frame", op: 0x57, extras: withMeta(0), key: []byte("k"), body: []byte("v"), cid: -1, frames: []frame{{2, []byte{0, 7}}}},
	{name: "stream id and impersonate", op: 0x00, key: []byte("k"), user: "root", cid: 8, frames: []frame{{2, []byte{0, 1}}}},
	{name: "durability frame", op: 0x01, extras: cat(u32(0), u32(0)), key: []byte("k"), cid: -1, frames: []frame{{1, []byte{1}}}, refDecodeBroken: true},
	{name: "durability frame with timeout", op: 0x01, extras: cat(u32(0), u32(0)), key: []byte("k"), cid: -1, frames: []frame{{1, []byte{3, 0x01, 0xf4}}}, refDecodeBroken: true},
	{name: "preserve expiry frame", op: 0x01, extras: cat(u32(0), u32(0)), key: []byte("k"), cid: -1, frames: []frame{{5, nil}}, refDecodeBroken: true},
}

// sameRequest reports how two decoded requests differ, nil and empty slices
// being alike.
func diffRequest(o *gm.MCRequest, r *ref.MCRequest) string {
	switch {
	case uint8(o.Opcode) != uint8(r.Opcode), o.Cas != r.Cas, o.Opaque != r.Opaque, o.VBucket != r.VBucket,
		o.DataType != r.DataType, o.Keylen != r.Keylen, o.FramingElen != r.FramingElen:
		return "header fields"
	case !bytes.Equal(o.Extras, r.Extras):
		return "extras"
	case !bytes.Equal(o.Key, r.Key):
		return "key"
	case !bytes.Equal(o.Body, r.Body):
		return "body"
	case !bytes.Equal(o.ExtMeta, r.ExtMeta):
		return "extended metadata"
	case len(o.FramingExtras) != len(r.FramingExtras):
		return "number of frames"
	}
	for i, f := range o.FramingExtras {
		g := r.FramingExtras[i]
		if int(f.ObjId) != int(g.ObjId) || f.ObjLen != g.ObjLen || !bytes.Equal(f.ObjData, g.ObjData) {
			return "frames"
		}
	}
	return ""
}

func TestDiffRequests(t *testing.T) {
	for _, p := range diffRequests {
		t.Run(p.name, func(t *testing.T) {
			o, r := p.ours(), p.ref()
			ob, rb := o.Bytes(), r.Bytes()
			if !bytes.Equal(ob, rb) {
				t.Fatalf("Bytes differ\n ours %x\n ref  %x", ob, rb)
			}
			if o.Size() != r.Size() || o.HdrSize() != r.HdrSize() || !bytes.Equal(o.HeaderBytes(), r.HeaderBytes()) {
				t.Fatalf("Size %d/%d HdrSize %d/%d", o.Size(), r.Size(), o.HdrSize(), r.HdrSize())
			}
			var ow, rw bytes.Buffer
			if _, err := o.Transmit(&ow); err != nil || !bytes.Equal(ow.Bytes(), rb) {
				t.Fatalf("Transmit: %v", err)
			}
			if _, err := r.Transmit(&rw); err != nil || !bytes.Equal(rw.Bytes(), ob) {
				t.Fatalf("reference Transmit: %v", err)
			}

			// Each side decodes the other's bytes.
			var od gm.MCRequest
			if _, err := od.Receive(bytes.NewReader(rb), nil); err != nil {
				t.Fatalf("ours decoding the reference's bytes: %v", err)
			}
			if p.refDecodeBroken {
				checkOwnDecode(t, p, &od)
				return
			}
			var rd ref.MCRequest
			if _, err := rd.Receive(bytes.NewReader(ob), nil); err != nil {
				t.Fatalf("reference decoding our bytes: %v", err)
			}
			if d := diffRequest(&od, &rd); d != "" {
				t.Fatalf("decoded %s differ\n ours %+v\n ref  %+v", d, od, rd)
			}
			// A DCP or TAP consumer reads the producer's requests as
			// responses: both sides must agree there too.
			var ores gm.MCResponse
			var rres ref.MCResponse
			if _, err := ores.Receive(bytes.NewReader(ob), nil); err != nil {
				t.Fatal(err)
			}
			if ob[0] == gm.FLEX_MAGIC {
				// A DCP producer with stream ids on sends this; the
				// reference's response decoder refuses the magic, ours
				// puts the frames in FlexibleExtras.
				if _, err := rres.Receive(bytes.NewReader(rb), nil); err == nil {
					t.Fatal("the reference reads FLEX_MAGIC responses now: update this test")
				}
				if !bytes.Equal(ores.FlexibleExtras, ob[24:24+int(ob[2])]) || !bytes.Equal(ores.Body, od.Body) {
					t.Fatalf("FLEX_MAGIC read as a response: %v", &ores)
				}
				return
			}
			if _, err := rres.Receive(bytes.NewReader(rb), nil); err != nil {
				t.Fatal(err)
			}
			if uint16(ores.Status) != uint16(rres.Status) || !bytes.Equal(ores.Key, rres.Key) ||
				!bytes.Equal(ores.Body, rres.Body) || !bytes.Equal(ores.Extras, rres.Extras) ||
				!bytes.Equal(ores.FlexibleExtras, rres.FlexibleExtras) {
				t.Fatalf("request read as a response differs\n ours %v\n ref  %v", &ores, &rres)
			}
		})
	}
}

// checkOwnDecode verifies our decoding of a packet the reference misreads,
// against the packet's description.
func checkOwnDecode(t *testing.T, p pkt, got *gm.MCRequest) {
	t.Helper()
	want := p.ours()
	frames := want.FramingExtras
	if p.user != "" {
		frames = append(frames, gm.FrameInfo{ObjId: gm.FrameImpersonate, ObjLen: len(p.user), ObjData: []byte(p.user)})
	}
	key := append(want.CollId[:want.CollIdLen:want.CollIdLen], p.key...)
	if !bytes.Equal(got.Key, key) || !bytes.Equal(got.Body, p.body) || !bytes.Equal(got.Extras, p.extras) ||
		len(got.FramingExtras) != len(frames) {
		t.Fatalf("decoded %+v", got)
	}
	for i, f := range frames {
		g := got.FramingExtras[i]
		if g.ObjId != f.ObjId || !bytes.Equal(g.ObjData, f.ObjData) {
			t.Fatalf("frame %d = %+v, want %+v", i, g, f)
		}
	}
}

type rpkt struct {
	name                    string
	op                      uint8
	status                  uint16
	cas                     uint64
	opaque                  uint32
	datatype                uint8
	extras, key, body, flex []byte
}

var diffResponses = []rpkt{
	{name: "GET hit", op: 0x00, extras: u32(0xdeadbeef), body: []byte("World"), cas: 1},
	{name: "GET miss", op: 0x00, status: 1, body: []byte("Not found")},
	{name: "GETK hit", op: 0x0c, extras: u32(0), key: []byte("Hello"), body: []byte("World"), opaque: 3},
	{name: "SET with mutation token", op: 0x01, extras: cat(u64(0x1234), u64(42)), cas: 0xffffffffffffffff},
	{name: "STAT", op: 0x10, key: []byte("pid"), body: []byte("3078")},
	{name: "STAT end", op: 0x10},
	{name: "E2BIG", op: 0x01, status: 3, body: []byte("Too large.")},
	{name: "UNKNOWN_COMMAND", op: 0xee, status: 0x81},
	{name: "AUTH_CONTINUE", op: 0x21, status: 0x21, body: []byte("r=nonce,s=salt,i=4096")},
	{name: "JSON value", op: 0x00, datatype: 1, extras: u32(0), body: []byte(`{"a":[1,2,3]}`)},
	{name: "large value", op: 0x00, extras: u32(0), body: bytes.Repeat([]byte("x"), 1000)},
	{name: "INCREMENT", op: 0x05, body: u64(1), cas: 5},
	{name: "subdoc multi failure", op: 0xd0, status: 0xcc, body: []byte{0, 0, 0xc0, 0, 0, 0, 0}},
}

func (p rpkt) ours() gm.MCResponse {
	return gm.MCResponse{Opcode: gm.CommandCode(p.op), Status: gm.Status(p.status), Cas: p.cas, Opaque: p.opaque,
		DataType: p.datatype, Extras: p.extras, Key: p.key, Body: p.body, FlexibleExtras: p.flex}
}

func (p rpkt) ref() ref.MCResponse {
	return ref.MCResponse{Opcode: ref.CommandCode(p.op), Status: ref.Status(p.status), Cas: p.cas, Opaque: p.opaque,
		DataType: p.datatype, Extras: p.extras, Key: p.key, Body: p.body, FlexibleExtras: p.flex}
}

func diffResponse(o *gm.MCResponse, r *ref.MCResponse) bool {
	return uint8(o.Opcode) == uint8(r.Opcode) && uint16(o.Status) == uint16(r.Status) && o.Cas == r.Cas &&
		o.Opaque == r.Opaque && o.DataType == r.DataType && bytes.Equal(o.Extras, r.Extras) &&
		bytes.Equal(o.Key, r.Key) && bytes.Equal(o.Body, r.Body) && bytes.Equal(o.FlexibleExtras, r.FlexibleExtras)
}

func TestDiffResponses(t *testing.T) {
	for _, p := range diffResponses {
		t.Run(p.name, func(t *testing.T) {
			o, r := p.ours(), p.ref()
			ob, rb := o.Bytes(), r.Bytes()
			if !bytes.Equal(ob, rb) || o.Size() != r.Size() || !bytes.Equal(o.HeaderBytes(), r.HeaderBytes()) {
				t.Fatalf("Bytes differ\n ours %x\n ref  %x", ob, rb)
			}
			var ow bytes.Buffer
			if _, err := o.Transmit(&ow); err != nil || !bytes.Equal(ow.Bytes(), rb) {
				t.Fatalf("Transmit: %v", err)
			}
			var od gm.MCResponse
			var rd ref.MCResponse
			if _, err := od.Receive(bytes.NewReader(rb), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := rd.Receive(bytes.NewReader(ob), nil); err != nil {
				t.Fatal(err)
			}
			if !diffResponse(&od, &rd) {
				t.Fatalf("decoded responses differ\n ours %v\n ref  %v", &od, &rd)
			}
			var viaBuf gm.MCResponse
			if _, err := viaBuf.ReceiveWithBuf(bytes.NewReader(rb), nil, make([]byte, 2048)); err != nil || !diffResponse(&viaBuf, &rd) {
				t.Fatalf("ReceiveWithBuf: %v", err)
			}
		})
	}
}

// Responses with framing extras: the reference decodes them (FlexibleExtras
// and ComputeUnits) but its encoder drops them, sending RES_MAGIC. Ours
// sends FLEX_RES_MAGIC, which the reference decodes to the same fields.
func TestDiffFlexResponses(t *testing.T) {
	flex := cat([]byte{0x02, 0x00, 0x1f}, []byte{0x12, 0x00, 0x05}, []byte{0x22, 0x00, 0x02})
	p := rpkt{name: "GET with frames", op: 0x00, extras: u32(0), body: []byte("v"), flex: flex, opaque: 4}
	o, r := p.ours(), p.ref()
	ob := o.Bytes()
	if ob[0] != gm.FLEX_RES_MAGIC || ob[2] != byte(len(flex)) {
		t.Fatalf("ours: %x", ob[:4])
	}
	if rb := r.Bytes(); rb[0] != ref.RES_MAGIC || len(rb) != len(ob)-len(flex) {
		t.Fatalf("the reference now encodes frames (%x): update this test", rb[:4])
	}
	var rd ref.MCResponse
	if _, err := rd.Receive(bytes.NewReader(ob), nil); err != nil {
		t.Fatal(err)
	}
	if !diffResponse(&o, &rd) {
		t.Fatalf("the reference decodes ours as %v", &rd)
	}
	oru, owu := o.ComputeUnits()
	rru, rwu := rd.ComputeUnits()
	if oru != 5 || owu != 2 || oru != rru || owu != rwu {
		t.Fatalf("ComputeUnits ours %d/%d, reference %d/%d", oru, owu, rru, rwu)
	}
}

func TestDiffEmptyStream(t *testing.T) {
	var o gm.MCResponse
	var r ref.MCResponse
	_, oerr := o.Receive(bytes.NewReader(nil), nil)
	_, rerr := r.Receive(bytes.NewReader(nil), nil)
	if oerr != io.EOF || rerr != io.EOF {
		t.Fatalf("ours %v, reference %v", oerr, rerr)
	}
	var oq gm.MCRequest
	if _, err := oq.Receive(bytes.NewReader(nil), nil); err != io.EOF {
		t.Fatalf("request: %v", err)
	}
}

func TestDiffFrames(t *testing.T) {
	for id := range 7 {
		for n := range 20 {
			data := bytes.Repeat([]byte{byte(n + 1)}, n)
			o := gm.FrameInfo{ObjId: gm.FrameObjType(id), ObjLen: n, ObjData: data}
			r := ref.FrameInfo{ObjId: ref.FrameObjType(id), ObjLen: n, ObjData: data}
			ob, ohalf := o.Bytes()
			rb, rhalf := r.Bytes()
			if !bytes.Equal(ob, rb) || ohalf != rhalf {
				t.Errorf("frame %d/%d: ours %x, reference %x", id, n, ob, rb)
			}
		}
	}
	o, r := gm.NewStreamIDFrame(0x0203), ref.FrameInfo{ObjId: ref.FrameDcpStreamId, ObjLen: 2, ObjData: []byte{2, 3}}
	oid, oerr := o.GetStreamId()
	rid, rerr := r.GetStreamId()
	if oid != rid || oerr != nil || rerr != nil {
		t.Fatalf("GetStreamId ours %d %v, reference %d %v", oid, oerr, rid, rerr)
	}
	// Durability without a timeout agrees; with one, the reference reads a
	// one-byte slice as a uint16 and panics, where we read the 16 bits.
	od, rd := gm.NewDurabilityFrame(gm.DuraMajority, 0), ref.FrameInfo{ObjId: ref.FrameDurability, ObjLen: 1, ObjData: []byte{1}}
	ol, oh, _, oerr := od.GetDurabilityRequirements()
	rl, rh, _, rerr := rd.GetDurabilityRequirements()
	if uint8(ol) != uint8(rl) || oh != rh || oerr != nil || rerr != nil {
		t.Fatal("durability without timeout differs")
	}
	func() {
		defer func() { recover() }()
		rt := ref.FrameInfo{ObjId: ref.FrameDurability, ObjLen: 3, ObjData: []byte{1, 0x01, 0xf4}}
		rt.GetDurabilityRequirements()
		t.Error("the reference reads durability timeouts now: update this test")
	}()
	ot := gm.NewDurabilityFrame(gm.DuraMajority, 500)
	if _, has, ms, err := ot.GetDurabilityRequirements(); !has || ms != 500 || err != nil {
		t.Fatalf("timeout = %d %v %v", ms, has, err)
	}
}

func TestDiffNibbleHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := rng.IntN(12)
		in := make([]byte, n, n+rng.IntN(4))
		for i := range in {
			in[i] = byte(rng.Uint32())
		}
		for name, pair := range map[string][2][]byte{
			"left":  {gm.ShiftByteSliceLeft4Bits(in), ref.ShiftByteSliceLeft4Bits(in)},
			"right": {gm.ShiftByteSliceRight4Bits(in), ref.ShiftByteSliceRight4Bits(in)},
		} {
			if !bytes.Equal(pair[0], pair[1]) || len(pair[0]) != len(pair[1]) || cap(pair[0]) != cap(pair[1]) ||
				(pair[0] == nil) != (pair[1] == nil) {
				t.Fatalf("%s(%x): ours %x (cap %d), reference %x (cap %d)", name, in, pair[0], cap(pair[0]), pair[1], cap(pair[1]))
			}
		}
		if n > 0 {
			other := []byte{byte(rng.Uint32()), 1, 2}[:1+rng.IntN(3)]
			if o, r := gm.Merge2HalfByteSlices(in, other), ref.Merge2HalfByteSlices(in, other); !bytes.Equal(o, r) {
				t.Fatalf("merge(%x, %x): ours %x, reference %x", in, other, o, r)
			}
		}
	}
}

func TestDiffTap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		f := rng.Uint32() & 0x3ff
		of, rf := gm.TapConnectFlag(f), ref.TapConnectFlag(f)
		if of.String() != rf.String() || len(of.SplitFlags()) != len(rf.SplitFlags()) {
			t.Fatalf("flags %#x: ours %q, reference %q", f, of, rf)
		}
	}
	for _, body := range [][]byte{
		cat(u64(7), []byte{0, 2, 0, 1, 0, 9}, []byte("rest")),
		cat(u64(7), []byte{0, 3, 0, 1}), // vbucket list cut short
		{1, 2},                          // backfill time cut short
	} {
		for _, flags := range []uint32{0x01 | 0x04, 0x01 | 0x10 | 0x04, 0x02} {
			extras := u32(flags)
			o := gm.MCRequest{Opcode: gm.TAP_CONNECT, Key: []byte("n"), Extras: extras, Body: body}
			r := ref.MCRequest{Opcode: ref.TAP_CONNECT, Key: []byte("n"), Extras: extras, Body: body}
			ot, oerr := o.ParseTapCommands()
			rt, rerr := r.ParseTapCommands()
			if (oerr == nil) != (rerr == nil) || ot.Name != rt.Name || !bytes.Equal(ot.RemainingBody, rt.RemainingBody) ||
				len(ot.Flags) != len(rt.Flags) {
				t.Fatalf("flags %#x body %x: ours %+v %v, reference %+v %v", flags, body, ot, oerr, rt, rerr)
			}
			for k, v := range rt.Flags {
				if !reflect.DeepEqual(ot.Flags[gm.TapConnectFlag(k)], v) {
					t.Fatalf("flag %v: ours %v, reference %v", k, ot.Flags[gm.TapConnectFlag(k)], v)
				}
			}
		}
	}
}

// TestDiffAPI checks that every exported function, method and struct field
// of the reference exists here with the same signature. Both packages are
// named gomemcached, so reflected type strings compare directly.
func TestDiffAPI(t *testing.T) {
	funcs := []struct {
		name      string
		ours, ref any
	}{
		{"IsFatal", gm.IsFatal, ref.IsFatal},
		{"IsNotFound", gm.IsNotFound, ref.IsNotFound},
		{"IsTenantLimit", gm.IsTenantLimit, ref.IsTenantLimit},
		{"Merge2HalfByteSlices", gm.Merge2HalfByteSlices, ref.Merge2HalfByteSlices},
		{"ShiftByteSliceLeft4Bits", gm.ShiftByteSliceLeft4Bits, ref.ShiftByteSliceLeft4Bits},
		{"ShiftByteSliceRight4Bits", gm.ShiftByteSliceRight4Bits, ref.ShiftByteSliceRight4Bits},
		{"TapParseBool", gm.TapParseBool, ref.TapParseBool},
		{"TapParseUint16", gm.TapParseUint16, ref.TapParseUint16},
		{"TapParseUint64", gm.TapParseUint64, ref.TapParseUint64},
		{"TapParseVBList", gm.TapParseVBList, ref.TapParseVBList},
		{"NewMCResponsePool", gm.NewMCResponsePool, ref.NewMCResponsePool},
		{"NewStringMCResponsePool", gm.NewStringMCResponsePool, ref.NewStringMCResponsePool},
		{"CommandNames", gm.CommandNames, ref.CommandNames},
		{"StatusNames", gm.StatusNames, ref.StatusNames},
		{"StatusDesc", gm.StatusDesc, ref.StatusDesc},
		{"TapConnectFlagNames", gm.TapConnectFlagNames, ref.TapConnectFlagNames},
		{"TapFlagParsers", gm.TapFlagParsers, ref.TapFlagParsers},
		{"BufferedCommandCodeMap", gm.BufferedCommandCodeMap, ref.BufferedCommandCodeMap},
		{"ErrorInvalidOp", gm.ErrorInvalidOp, ref.ErrorInvalidOp},
		{"ErrorObjLenNotMatch", gm.ErrorObjLenNotMatch, ref.ErrorObjLenNotMatch},
	}
	for _, f := range funcs {
		if o, r := reflect.TypeOf(f.ours).String(), reflect.TypeOf(f.ref).String(); o != r {
			t.Errorf("%s: ours %s, reference %s", f.name, o, r)
		}
	}
	types := []struct{ ours, ref reflect.Type }{
		{reflect.TypeFor[gm.MCRequest](), reflect.TypeFor[ref.MCRequest]()},
		{reflect.TypeFor[*gm.MCRequest](), reflect.TypeFor[*ref.MCRequest]()},
		{reflect.TypeFor[gm.MCResponse](), reflect.TypeFor[ref.MCResponse]()},
		{reflect.TypeFor[*gm.MCResponse](), reflect.TypeFor[*ref.MCResponse]()},
		{reflect.TypeFor[gm.MCItem](), reflect.TypeFor[ref.MCItem]()},
		{reflect.TypeFor[gm.FrameInfo](), reflect.TypeFor[ref.FrameInfo]()},
		{reflect.TypeFor[*gm.FrameInfo](), reflect.TypeFor[*ref.FrameInfo]()},
		{reflect.TypeFor[gm.TapConnect](), reflect.TypeFor[ref.TapConnect]()},
		{reflect.TypeFor[gm.TapConnectFlag](), reflect.TypeFor[ref.TapConnectFlag]()},
		{reflect.TypeFor[gm.TapItemParser](), reflect.TypeFor[ref.TapItemParser]()},
		{reflect.TypeFor[gm.CommandCode](), reflect.TypeFor[ref.CommandCode]()},
		{reflect.TypeFor[gm.Status](), reflect.TypeFor[ref.Status]()},
		{reflect.TypeFor[gm.DurabilityLvl](), reflect.TypeFor[ref.DurabilityLvl]()},
		{reflect.TypeFor[gm.FrameObjType](), reflect.TypeFor[ref.FrameObjType]()},
		{reflect.TypeFor[gm.ErrorMapVersion](), reflect.TypeFor[ref.ErrorMapVersion]()},
		{reflect.TypeFor[*gm.MCResponsePool](), reflect.TypeFor[*ref.MCResponsePool]()},
		{reflect.TypeFor[*gm.StringMCResponsePool](), reflect.TypeFor[*ref.StringMCResponsePool]()},
	}
	for _, tp := range types {
		if tp.ours.Kind() != tp.ref.Kind() {
			t.Errorf("%v: kind %v, reference %v", tp.ref, tp.ours.Kind(), tp.ref.Kind())
			continue
		}
		for i := range tp.ref.NumMethod() {
			rm := tp.ref.Method(i)
			om, ok := tp.ours.MethodByName(rm.Name)
			if !ok {
				t.Errorf("%v lacks method %s", tp.ref, rm.Name)
			} else if om.Type.String() != rm.Type.String() {
				t.Errorf("%v.%s: ours %v, reference %v", tp.ref, rm.Name, om.Type, rm.Type)
			}
		}
		if tp.ref.Kind() != reflect.Struct {
			continue
		}
		for i := range tp.ref.NumField() {
			rf := tp.ref.Field(i)
			if !rf.IsExported() {
				continue
			}
			of, ok := tp.ours.FieldByName(rf.Name)
			if !ok || of.Type.String() != rf.Type.String() || of.Index[0] != rf.Index[0] {
				t.Errorf("%v.%s: ours %v at %v, reference %v at %v", tp.ref, rf.Name, of.Type, of.Index, rf.Type, rf.Index)
			}
		}
	}
}
