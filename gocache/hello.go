package gocache

import (
	"encoding/binary"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// supportedFeatures are the HELLO features gocache turns on.
var supportedFeatures = map[gm.Feature]bool{
	gm.FeatureTCPNoDelay: true, gm.FeatureMutationSeqno: true, gm.FeatureXError: true,
	gm.FeatureSelectBucket: true, gm.FeatureSnappy: true, gm.FeatureJSON: true, gm.FeatureAltRequest: true,
	gm.FeatureCollections: true, gm.FeatureXattr: true, gm.FeatureVAttr: true, gm.FeatureSubdocCreateAsDeleted: true, gm.FeatureSubdocDocumentMacro: true, gm.FeatureSubdocReplaceBodyWithXattr: true, gm.FeatureSubdocMultipleXattrKeys: true,
	gm.FeatureSubdocBinaryXattr: true,
	// cluster.go
	gm.FeatureDuplex: true, gm.FeatureClustermapChangeNotification: true, gm.FeatureClustermapChangeNotificationBrief: true,
	gm.FeatureDedupeNotMyVbucketClustermap: true, gm.FeatureGetClusterConfigWithKnownVersion: true,
}

// hello serves HELLO: the key is the client's name, the value a list of
// features; the answer lists those gocache supports, which the connection
// then has (replacing what an earlier HELLO negotiated).
func (h *handler) hello(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Body)%2 != 0 {
		h.invalid(w, req)
		return
	}
	clusterOK, dropFull := clusterHello(req.Body)
	if !clusterOK { // as kv_engine: refused, nothing changed
		w.WriteStatus(req, gm.EINVAL, []byte("ClustermapChangeNotification needs Duplex"))
		return
	}
	features := &state(w).features
	features.Clear()
	accepted := make([]byte, 0, len(req.Body))
	for b := req.Body; len(b) > 0; b = b[2:] {
		f := gm.Feature(binary.BigEndian.Uint16(b))
		if dropFull && f == gm.FeatureClustermapChangeNotification {
			continue // the brief ones only, as kv_engine
		}
		if supportedFeatures[f] && !features.Has(f) {
			features.Add(f)
			accepted = binary.BigEndian.AppendUint16(accepted, uint16(f))
		}
	}
	if len(req.Key) > 0 {
		h.srv.logger().Debug("hello", "remote", w.Conn().RemoteAddr().String(), "agent", string(req.Key))
	}
	h.clusterSubscribe(w)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: accepted}
	w.WriteResponse(&res)
}
