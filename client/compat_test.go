package memcached

// The compatibility surface: every exported identifier of the reference's
// client package (github.com/couchbase/gomemcached/client v0.3.4) either
// exists here with the same signature, or is listed below as left to a
// later issue. Both packages are named memcached and both use a package
// named gomemcached for packets, so reflected type strings compare
// directly.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	refc "github.com/couchbase/gomemcached/client"

	"github.com/f8e615c8/gomemcached/internal/peer"
)

// later lists the identifiers of the reference's mc.go left to later
// issues, by issue.
var later = map[string][]string{}

// refSourceDir returns the directory of the reference's client sources.
func refSourceDir(t *testing.T) string {
	pc := reflect.ValueOf(refc.Connect).Pointer()
	file, _ := runtime.FuncForPC(pc).FileLine(pc)
	if !filepath.IsAbs(file) {
		if peer.InCI() {
			t.Fatalf("reference sources not found (%q): built with -trimpath?", file)
		}
		t.Skipf("!!! reference sources not found (%q): built with -trimpath?", file)
	}
	return filepath.Dir(file)
}

// exportedDecls returns the exported top-level identifiers of the non-test
// Go files in dir, methods as Type.Method, with the file declaring each.
func exportedDecls(t *testing.T, dir string) map[string]string {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	decls := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(f)
		for _, d := range af.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				name := d.Name.Name
				if d.Recv != nil {
					rt := d.Recv.List[0].Type
					if s, ok := rt.(*ast.StarExpr); ok {
						rt = s.X
					}
					name = rt.(*ast.Ident).Name + "." + name
				}
				decls[name] = base
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							decls[s.Name.Name] = base
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								decls[n.Name] = base
							}
						}
					}
				}
			}
		}
	}
	return decls
}

// TestAPIInventory checks that each exported identifier of the reference
// (tap_feed.go's included) is implemented here or listed as left for
// later, and that nothing listed for later exists here already.
func TestAPIInventory(t *testing.T) {
	ref := exportedDecls(t, refSourceDir(t))
	ours := exportedDecls(t, ".")
	deferred := map[string]string{}
	for issue, names := range later {
		for _, n := range names {
			deferred[n] = issue
		}
	}
	var implemented, left int
	for name, file := range ref {
		_, have := ours[name]
		issue, isLater := deferred[name]
		switch {
		case have && isLater:
			t.Errorf("%s is implemented but listed as left for %s", name, issue)
		case !have && !isLater:
			t.Errorf("%s (%s) is neither implemented nor listed as left for later", name, file)
		case have:
			implemented++
		default:
			left++
		}
	}
	for name := range deferred {
		if _, ok := ref[name]; !ok {
			t.Errorf("%s is listed for later but the reference has no such identifier", name)
		}
	}
	t.Logf("%d of the reference's identifiers implemented, %d left to later issues", implemented, left)
}

// TestAPISignatures compares the signatures of what is implemented.
func TestAPISignatures(t *testing.T) {
	funcs := []struct {
		name      string
		ours, ref any
	}{
		{"Connect", Connect, refc.Connect},
		{"ConnectTLS", ConnectTLS, refc.ConnectTLS},
		{"Wrap", Wrap, refc.Wrap},
		{"SetConnectionName", SetConnectionName, refc.SetConnectionName},
		{"SetDefaultTimeouts", SetDefaultTimeouts, refc.SetDefaultTimeouts},
		{"SetDefaultDialTimeout", SetDefaultDialTimeout, refc.SetDefaultDialTimeout},
		{"UnwrapMemcachedError", UnwrapMemcachedError, refc.UnwrapMemcachedError},
		{"ConnName", &ConnName, &refc.ConnName},
		{"DefaultDialTimeout", &DefaultDialTimeout, &refc.DefaultDialTimeout},
		{"DefaultWriteTimeout", &DefaultWriteTimeout, &refc.DefaultWriteTimeout},
		{"Healthy", &Healthy, &refc.Healthy},
		{"UnHealthy", &UnHealthy, &refc.UnHealthy},
		{"TransmitHook", &TransmitHook, &refc.TransmitHook},
		{"ReceiveHook", &ReceiveHook, &refc.ReceiveHook},
		{"ErrPreserveExpiryNotSupported", &ErrPreserveExpiryNotSupported, &refc.ErrPreserveExpiryNotSupported},
		{"ErrDurabilityNotSupported", &ErrDurabilityNotSupported, &refc.ErrDurabilityNotSupported},
		{"ErrUnSuccessfulHello", &ErrUnSuccessfulHello, &refc.ErrUnSuccessfulHello},
		{"ErrInvalidHello", &ErrInvalidHello, &refc.ErrInvalidHello},
		{"FeatureTcpNoDelay", FeatureTcpNoDelay, refc.FeatureTcpNoDelay},
		{"FeatureMutationToken", FeatureMutationToken, refc.FeatureMutationToken},
		{"FeatureXattr", FeatureXattr, refc.FeatureXattr},
		{"FeatureXerror", FeatureXerror, refc.FeatureXerror},
		{"FeatureSnappyCompression", FeatureSnappyCompression, refc.FeatureSnappyCompression},
		{"FeatureDataType", FeatureDataType, refc.FeatureDataType},
		{"FeatureTracing", FeatureTracing, refc.FeatureTracing},
		{"FeatureSyncReplication", FeatureSyncReplication, refc.FeatureSyncReplication},
		{"FeatureCollections", FeatureCollections, refc.FeatureCollections},
		{"FeatureSnappyEverywhere", FeatureSnappyEverywhere, refc.FeatureSnappyEverywhere},
		{"FeaturePreserveExpiry", FeaturePreserveExpiry, refc.FeaturePreserveExpiry},
		{"FeatureComputeUnits", FeatureComputeUnits, refc.FeatureComputeUnits},
		{"FeatureHandleThrottle", FeatureHandleThrottle, refc.FeatureHandleThrottle},
		{"CASStore", CASStore, refc.CASStore},
		{"CASQuit", CASQuit, refc.CASQuit},
		{"CASDelete", CASDelete, refc.CASDelete},
		{"VbAlive", VbAlive, refc.VbAlive},
		{"VbActive", VbActive, refc.VbActive},
		{"VbReplica", VbReplica, refc.VbReplica},
		{"VbPending", VbPending, refc.VbPending},
		{"VbDead", VbDead, refc.VbDead},
		{"GetSubDocVal", GetSubDocVal, refc.GetSubDocVal},
		{"IfResStatusError", IfResStatusError, refc.IfResStatusError},
		{"ObservedNotPersisted", ObservedNotPersisted, refc.ObservedNotPersisted},
		{"ObservedPersisted", ObservedPersisted, refc.ObservedPersisted},
		{"ObservedNotFound", ObservedNotFound, refc.ObservedNotFound},
		{"ObservedLogicallyDeleted", ObservedLogicallyDeleted, refc.ObservedLogicallyDeleted},
		{"UPRDefaultNoopIntervalSeconds", UPRDefaultNoopIntervalSeconds, refc.UPRDefaultNoopIntervalSeconds},
		{"PriorityDisabled", PriorityDisabled, refc.PriorityDisabled},
		{"PriorityLow", PriorityLow, refc.PriorityLow},
		{"PriorityMed", PriorityMed, refc.PriorityMed},
		{"PriorityHigh", PriorityHigh, refc.PriorityHigh},
		{"UninitializedStream", &UninitializedStream, &refc.UninitializedStream},
		{"NonCollectionStream", NonCollectionStream, refc.NonCollectionStream},
		{"CollectionsNonStreamId", CollectionsNonStreamId, refc.CollectionsNonStreamId},
		{"CollectionsStreamId", CollectionsStreamId, refc.CollectionsStreamId},
		{"FeedStateInitial", FeedStateInitial, refc.FeedStateInitial},
		{"FeedStateOpened", FeedStateOpened, refc.FeedStateOpened},
		{"FeedStateClosed", FeedStateClosed, refc.FeedStateClosed},
		{"CompressionTypeStartMarker", CompressionTypeStartMarker, refc.CompressionTypeStartMarker},
		{"CompressionTypeNone", CompressionTypeNone, refc.CompressionTypeNone},
		{"CompressionTypeSnappy", CompressionTypeSnappy, refc.CompressionTypeSnappy},
		{"CompressionTypeEndMarker", CompressionTypeEndMarker, refc.CompressionTypeEndMarker},
		{"JSONDataType", JSONDataType, refc.JSONDataType},
		{"SnappyDataType", SnappyDataType, refc.SnappyDataType},
		{"XattrDataType", XattrDataType, refc.XattrDataType},
		{"StreamNotRequested", StreamNotRequested, refc.StreamNotRequested},
		{"ErrorInvalidLog", &ErrorInvalidLog, &refc.ErrorInvalidLog},
		{"InvalidSysEvent", InvalidSysEvent, refc.InvalidSysEvent},
		{"CollectionCreate", CollectionCreate, refc.CollectionCreate},
		{"CollectionDrop", CollectionDrop, refc.CollectionDrop},
		{"CollectionFlush", CollectionFlush, refc.CollectionFlush},
		{"ScopeCreate", ScopeCreate, refc.ScopeCreate},
		{"ScopeDrop", ScopeDrop, refc.ScopeDrop},
		{"CollectionChanged", CollectionChanged, refc.CollectionChanged},
		{"ErrorInvalidOp", &ErrorInvalidOp, &refc.ErrorInvalidOp},
		{"ErrorInvalidVersion", &ErrorInvalidVersion, &refc.ErrorInvalidVersion},
		{"ErrorValueTooShort", &ErrorValueTooShort, &refc.ErrorValueTooShort},
		{"ErrorNoMaxTTL", &ErrorNoMaxTTL, &refc.ErrorNoMaxTTL},
		{"DefaultTapArguments", DefaultTapArguments, refc.DefaultTapArguments},
		{"TapNoBackfill", uint64(TapNoBackfill), uint64(refc.TapNoBackfill)},
		{"TapRecvHook", &TapRecvHook, &refc.TapRecvHook},
		{"TapBeginBackfill", TapBeginBackfill, refc.TapBeginBackfill},
		{"TapEndBackfill", TapEndBackfill, refc.TapEndBackfill},
		{"TapMutation", TapMutation, refc.TapMutation},
		{"TapDeletion", TapDeletion, refc.TapDeletion},
		{"TapCheckpointStart", TapCheckpointStart, refc.TapCheckpointStart},
		{"TapCheckpointEnd", TapCheckpointEnd, refc.TapCheckpointEnd},
	}
	for _, f := range funcs {
		if o, r := typeName(reflect.TypeOf(f.ours)), reflect.TypeOf(f.ref).String(); o != r {
			t.Errorf("%s: ours %s, reference %s", f.name, o, r)
		}
		if k := reflect.TypeOf(f.ours).Kind(); k != reflect.Func && k != reflect.Pointer && f.ours != any(nil) {
			if scalar(reflect.ValueOf(f.ours)) != scalar(reflect.ValueOf(f.ref)) {
				t.Errorf("%s: ours %v, reference %v", f.name, f.ours, f.ref)
			}
		}
	}
	if RandomScanSeed != refc.RandomScanSeed {
		t.Errorf("RandomScanSeed: ours %#x, reference %#x", RandomScanSeed, refc.RandomScanSeed)
	}
	if Healthy != refc.Healthy || UnHealthy != refc.UnHealthy || ConnName != refc.ConnName {
		t.Error("initial values of Healthy, UnHealthy or ConnName differ")
	}
	if ErrPreserveExpiryNotSupported.Error() != refc.ErrPreserveExpiryNotSupported.Error() ||
		ErrDurabilityNotSupported.Error() != refc.ErrDurabilityNotSupported.Error() ||
		ErrUnSuccessfulHello.Error() != refc.ErrUnSuccessfulHello.Error() ||
		ErrInvalidHello.Error() != refc.ErrInvalidHello.Error() {
		t.Error("error messages differ")
	}
	for _, e := range [][2]error{
		{ErrorInvalidLog, refc.ErrorInvalidLog}, {ErrorInvalidOp, refc.ErrorInvalidOp},
		{ErrorInvalidVersion, refc.ErrorInvalidVersion}, {ErrorValueTooShort, refc.ErrorValueTooShort},
		{ErrorNoMaxTTL, refc.ErrorNoMaxTTL},
	} {
		if e[0].Error() != e[1].Error() {
			t.Errorf("error message %q, reference %q", e[0], e[1])
		}
	}
	if UninitializedStream != DcpStreamType(refc.UninitializedStream) {
		t.Errorf("UninitializedStream: ours %d, reference %d", UninitializedStream, refc.UninitializedStream)
	}

	types := []struct{ ours, ref reflect.Type }{
		{reflect.TypeFor[Client](), reflect.TypeFor[refc.Client]()},
		{reflect.TypeFor[*Client](), reflect.TypeFor[*refc.Client]()},
		{reflect.TypeFor[ClientContext](), reflect.TypeFor[refc.ClientContext]()},
		{reflect.TypeFor[*ClientContext](), reflect.TypeFor[*refc.ClientContext]()},
		{reflect.TypeFor[CASState](), reflect.TypeFor[refc.CASState]()},
		{reflect.TypeFor[StatValue](), reflect.TypeFor[refc.StatValue]()},
		{reflect.TypeFor[CasOp](), reflect.TypeFor[refc.CasOp]()},
		{reflect.TypeFor[CasFunc](), reflect.TypeFor[refc.CasFunc]()},
		{reflect.TypeFor[VbStateType](), reflect.TypeFor[refc.VbStateType]()},
		{reflect.TypeFor[MemcachedConnection](), reflect.TypeFor[refc.MemcachedConnection]()},
		{reflect.TypeFor[Feature](), reflect.TypeFor[refc.Feature]()},
		{reflect.TypeFor[Features](), reflect.TypeFor[refc.Features]()},
		{reflect.TypeFor[ObservedStatus](), reflect.TypeFor[refc.ObservedStatus]()},
		{reflect.TypeFor[ObserveResult](), reflect.TypeFor[refc.ObserveResult]()},
		{reflect.TypeFor[ObserveSeqResult](), reflect.TypeFor[refc.ObserveSeqResult]()},
		{reflect.TypeFor[*ObserveSeqResult](), reflect.TypeFor[*refc.ObserveSeqResult]()},
		{reflect.TypeFor[SubDocOp](), reflect.TypeFor[refc.SubDocOp]()},
		{reflect.TypeFor[*SubDocOp](), reflect.TypeFor[*refc.SubDocOp]()},
		{reflect.TypeFor[PriorityType](), reflect.TypeFor[refc.PriorityType]()},
		{reflect.TypeFor[DcpStreamType](), reflect.TypeFor[refc.DcpStreamType]()},
		{reflect.TypeFor[UprStream](), reflect.TypeFor[refc.UprStream]()},
		{reflect.TypeFor[FeedState](), reflect.TypeFor[refc.FeedState]()},
		{reflect.TypeFor[UprFeatures](), reflect.TypeFor[refc.UprFeatures]()},
		{reflect.TypeFor[*UprFeatures](), reflect.TypeFor[*refc.UprFeatures]()},
		{reflect.TypeFor[UprFeed](), reflect.TypeFor[refc.UprFeed]()},
		{reflect.TypeFor[*UprFeed](), reflect.TypeFor[*refc.UprFeed]()},
		{reflect.TypeFor[UprFeedIface](), reflect.TypeFor[refc.UprFeedIface]()},
		{reflect.TypeFor[UprStats](), reflect.TypeFor[refc.UprStats]()},
		{reflect.TypeFor[FailoverLog](), reflect.TypeFor[refc.FailoverLog]()},
		{reflect.TypeFor[*FailoverLog](), reflect.TypeFor[*refc.FailoverLog]()},
		{reflect.TypeFor[VBSeqnos](), reflect.TypeFor[refc.VBSeqnos]()},
		{reflect.TypeFor[SystemEventType](), reflect.TypeFor[refc.SystemEventType]()},
		{reflect.TypeFor[ScopeCreateEvent](), reflect.TypeFor[refc.ScopeCreateEvent]()},
		{reflect.TypeFor[CollectionCreateEvent](), reflect.TypeFor[refc.CollectionCreateEvent]()},
		{reflect.TypeFor[CollectionDropEvent](), reflect.TypeFor[refc.CollectionDropEvent]()},
		{reflect.TypeFor[ScopeDropEvent](), reflect.TypeFor[refc.ScopeDropEvent]()},
		{reflect.TypeFor[CollectionChangedEvent](), reflect.TypeFor[refc.CollectionChangedEvent]()},
		{reflect.TypeFor[UprEvent](), reflect.TypeFor[refc.UprEvent]()},
		{reflect.TypeFor[*UprEvent](), reflect.TypeFor[*refc.UprEvent]()},
		{reflect.TypeFor[Uleb128](), reflect.TypeFor[refc.Uleb128]()},
		{reflect.TypeFor[CollectionsFilter](), reflect.TypeFor[refc.CollectionsFilter]()},
		{reflect.TypeFor[*CollectionsFilter](), reflect.TypeFor[*refc.CollectionsFilter]()},
		{reflect.TypeFor[TapOpcode](), reflect.TypeFor[refc.TapOpcode]()},
		{reflect.TypeFor[TapEvent](), reflect.TypeFor[refc.TapEvent]()},
		{reflect.TypeFor[TapArguments](), reflect.TypeFor[refc.TapArguments]()},
		{reflect.TypeFor[*TapArguments](), reflect.TypeFor[*refc.TapArguments]()},
		{reflect.TypeFor[TapFeed](), reflect.TypeFor[refc.TapFeed]()},
		{reflect.TypeFor[*TapFeed](), reflect.TypeFor[*refc.TapFeed]()},
	}
	for _, tp := range types {
		if tp.ours.Kind() != tp.ref.Kind() {
			t.Errorf("%v: kind %v, reference %v", tp.ref, tp.ours.Kind(), tp.ref.Kind())
			continue
		}
		if typeName(tp.ours) != tp.ref.String() {
			t.Errorf("type %v named %v here", tp.ref, tp.ours)
		}
		if tp.ref.Kind() == reflect.Func && tp.ref.String() != tp.ours.String() {
			t.Errorf("%v: ours %v", tp.ref, tp.ours)
		}
		for i := range tp.ref.NumMethod() {
			rm := tp.ref.Method(i)
			if _, isLater := deferredMethod(rm.Name); isLater && tp.ref.Name() != "MemcachedConnection" {
				continue
			}
			om, ok := tp.ours.MethodByName(rm.Name)
			if !ok {
				t.Errorf("%v lacks method %s", tp.ref, rm.Name)
			} else if typeName(om.Type) != rm.Type.String() {
				t.Errorf("%v.%s: ours %v, reference %v", tp.ref, rm.Name, om.Type, rm.Type)
			}
		}
		if tp.ref.Kind() != reflect.Struct || tp.ref.Name() == "Client" {
			continue
		}
		for i := range tp.ref.NumField() {
			rf := tp.ref.Field(i)
			if !rf.IsExported() {
				continue
			}
			of, ok := tp.ours.FieldByName(rf.Name)
			if !ok || of.Type.String() != rf.Type.String() {
				t.Errorf("%v.%s: ours %v, reference %v", tp.ref, rf.Name, of.Type, rf.Type)
			}
		}
	}
}

// scalar is the value of a constant of an integer or string kind, as a
// string, so that ours and the reference's compare whatever their types.
func scalar(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.String:
		return strconv.Quote(v.String())
	}
	return strconv.FormatUint(v.Uint(), 10)
}

// typeName is t's name as the reference would spell it: Feature is an alias
// of the root package's gomemcached.Feature, the one feature type of
// client, server and gocache, and is memcached.Feature to the reference.
func typeName(t reflect.Type) string {
	return strings.ReplaceAll(t.String(), "gomemcached.Feature", "memcached.Feature")
}

// deferredMethod reports whether the reference's Client method name is left
// to a later issue (listed, or declared in a feed's file).
func deferredMethod(name string) (string, bool) {
	for issue, names := range later {
		if slices.Contains(names, "Client."+name) {
			return issue, true
		}
	}
	return "", false
}

// TestClientIface checks that ClientIface is the reference's interface
// minus the methods left to later issues, with the same signatures.
func TestClientIface(t *testing.T) {
	ours, ref := reflect.TypeFor[ClientIface](), reflect.TypeFor[refc.ClientIface]()
	for i := range ref.NumMethod() {
		rm := ref.Method(i)
		om, ok := ours.MethodByName(rm.Name)
		_, isLater := deferredMethod(rm.Name)
		switch {
		case ok && isLater:
			t.Errorf("ClientIface has %s, listed as left for later", rm.Name)
		case !ok && !isLater:
			t.Errorf("ClientIface lacks %s", rm.Name)
		case ok && typeName(om.Type) != rm.Type.String():
			t.Errorf("ClientIface.%s: ours %v, reference %v", rm.Name, om.Type, rm.Type)
		}
	}
	for i := range ours.NumMethod() {
		if _, ok := ref.MethodByName(ours.Method(i).Name); !ok {
			t.Errorf("ClientIface has %s, which the reference's has not", ours.Method(i).Name)
		}
	}
}
