package gomemcached

// Feature is a HELLO feature code: a capability a client asks the server
// to turn on for its connection, as couchbase/kv_engine numbers them
// (include/mcbp/protocol/feature.h). HELLO's value is a list of them, two
// bytes each, and the server answers with those it turned on. Clients,
// servers and gocache all use this one type.
type Feature uint16

// The HELLO features. 0x01 and 0x09 are retired (DATATYPE and an early
// collections); 0x13 is the reference's SnappyEverywhere.
const (
	FeatureTLS                               Feature = 0x02
	FeatureTCPNoDelay                        Feature = 0x03
	FeatureMutationSeqno                     Feature = 0x04 // mutations answer with vbucket UUID and seqno
	FeatureTCPDelay                          Feature = 0x05
	FeatureXattr                             Feature = 0x06
	FeatureXError                            Feature = 0x07 // the client reads statuses beyond memcached's
	FeatureSelectBucket                      Feature = 0x08
	FeatureSnappy                            Feature = 0x0a
	FeatureJSON                              Feature = 0x0b // the JSON datatype; the reference's FeatureDataType
	FeatureDuplex                            Feature = 0x0c
	FeatureClustermapChangeNotification      Feature = 0x0d
	FeatureUnorderedExecution                Feature = 0x0e
	FeatureTracing                           Feature = 0x0f
	FeatureAltRequest                        Feature = 0x10 // requests may carry framing extras
	FeatureSyncReplication                   Feature = 0x11
	FeatureCollections                       Feature = 0x12
	FeatureSnappyEverywhere                  Feature = 0x13
	FeaturePreserveExpiry                    Feature = 0x14 // kv_engine's PreserveTtl
	FeatureVAttr                             Feature = 0x15
	FeaturePiTR                              Feature = 0x16
	FeatureSubdocCreateAsDeleted             Feature = 0x17
	FeatureSubdocDocumentMacro               Feature = 0x18
	FeatureSubdocReplaceBodyWithXattr        Feature = 0x19
	FeatureReportUnitUsage                   Feature = 0x1a
	FeatureNonBlockingThrottling             Feature = 0x1b
	FeatureSubdocReplicaRead                 Feature = 0x1c
	FeatureGetClusterConfigWithKnownVersion  Feature = 0x1d
	FeatureDedupeNotMyVbucketClustermap      Feature = 0x1e
	FeatureClustermapChangeNotificationBrief Feature = 0x1f
	FeatureSubdocMultipleXattrKeys           Feature = 0x20
	FeatureSubdocBinaryXattr                 Feature = 0x21
	FeatureRangeScanIncludeXattr             Feature = 0x22
	FeatureSubdocReplicaReadDeleted          Feature = 0x23 // kv_engine's SubdocAllowReplicaReadOnDeletedDocs
	FeatureGetRandomKeyIncludeXattr          Feature = 0x24
	FeatureMutateWithMeta                    Feature = 0x25
	FeatureDcpSkipDeletes                    Feature = 0x26 // kv_engine's DcpSkipDeletesInInitialBackfill
)

var featureNames = [...]string{
	FeatureTLS: "TLS", FeatureTCPNoDelay: "TCPNoDelay", FeatureMutationSeqno: "MutationSeqno",
	FeatureTCPDelay: "TCPDelay", FeatureXattr: "Xattr", FeatureXError: "XError",
	FeatureSelectBucket: "SelectBucket", FeatureSnappy: "Snappy", FeatureJSON: "JSON",
	FeatureDuplex: "Duplex", FeatureClustermapChangeNotification: "ClustermapChangeNotification",
	FeatureUnorderedExecution: "UnorderedExecution", FeatureTracing: "Tracing",
	FeatureAltRequest: "AltRequest", FeatureSyncReplication: "SyncReplication",
	FeatureCollections: "Collections", FeatureSnappyEverywhere: "SnappyEverywhere",
	FeaturePreserveExpiry: "PreserveExpiry", FeatureVAttr: "VAttr", FeaturePiTR: "PiTR",
	FeatureSubdocCreateAsDeleted: "SubdocCreateAsDeleted", FeatureSubdocDocumentMacro: "SubdocDocumentMacro",
	FeatureSubdocReplaceBodyWithXattr: "SubdocReplaceBodyWithXattr", FeatureReportUnitUsage: "ReportUnitUsage",
	FeatureNonBlockingThrottling: "NonBlockingThrottling", FeatureSubdocReplicaRead: "SubdocReplicaRead",
	FeatureGetClusterConfigWithKnownVersion:  "GetClusterConfigWithKnownVersion",
	FeatureDedupeNotMyVbucketClustermap:      "DedupeNotMyVbucketClustermap",
	FeatureClustermapChangeNotificationBrief: "ClustermapChangeNotificationBrief",
	FeatureSubdocMultipleXattrKeys:           "SubdocMultipleXattrKeys",
	FeatureSubdocBinaryXattr:                 "SubdocBinaryXattr",
	FeatureRangeScanIncludeXattr:             "RangeScanIncludeXattr",
	FeatureSubdocReplicaReadDeleted:          "SubdocAllowReplicaReadOnDeletedDocs",
	FeatureGetRandomKeyIncludeXattr:          "GetRandomKeyIncludeXattr",
	FeatureMutateWithMeta:                    "MutateWithMeta",
	FeatureDcpSkipDeletes:                    "DcpSkipDeletesInInitialBackfill",
}

// String returns the feature's name, or its code in hex ("0x2e") when it
// has none.
func (f Feature) String() string {
	if int(f) < len(featureNames) && featureNames[f] != "" {
		return featureNames[f]
	}
	return hexByte(uint16(f))
}

// FeatureSet is a set of features, for a server to record what a
// connection negotiated. Codes over 255, which no server knows, are never
// members. The zero value is empty; a FeatureSet is not safe for
// concurrent use.
type FeatureSet struct{ bits [4]uint64 }

// Has reports whether f is in the set.
func (s *FeatureSet) Has(f Feature) bool { return f < 256 && s.bits[f/64]&(1<<(f%64)) != 0 }

// Add adds f to the set; codes over 255 are ignored.
func (s *FeatureSet) Add(f Feature) {
	if f < 256 {
		s.bits[f/64] |= 1 << (f % 64)
	}
}

// Clear empties the set.
func (s *FeatureSet) Clear() { s.bits = [4]uint64{} }
