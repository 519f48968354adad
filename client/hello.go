package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Feature is a HELLO feature: a capability the client asks the server to
// turn on for the connection. It is the root package's type, so that
// client, server and gocache share one set of codes.
type Feature = gomemcached.Feature

// Features is a list of HELLO features.
type Features []Feature

// The HELLO features, by the reference's names. Other values may be asked
// for as Feature(n) or by their gomemcached names; the server turns on
// those it knows.
const (
	FeatureTcpNoDelay        = gomemcached.FeatureTCPNoDelay
	FeatureMutationToken     = gomemcached.FeatureMutationSeqno // mutations answer with vbucket UUID and sequence number
	FeatureXattr             = gomemcached.FeatureXattr
	FeatureXerror            = gomemcached.FeatureXError
	FeatureSnappyCompression = gomemcached.FeatureSnappy
	FeatureDataType          = gomemcached.FeatureJSON // kv_engine's JSON feature
	FeatureTracing           = gomemcached.FeatureTracing
	FeatureSyncReplication   = gomemcached.FeatureSyncReplication
	FeatureCollections       = gomemcached.FeatureCollections
	FeatureSnappyEverywhere  = gomemcached.FeatureSnappyEverywhere
	FeaturePreserveExpiry    = gomemcached.FeaturePreserveExpiry
	FeatureComputeUnits      = gomemcached.FeatureReportUnitUsage
	FeatureHandleThrottle    = gomemcached.FeatureNonBlockingThrottling
)

// Errors of EnableFeatures, as the reference names them.
var (
	// ErrUnSuccessfulHello matches the error of a HELLO answered with a
	// failed status, which unwraps to the response: errors.Is also matches
	// the status's sentinel (gomemcached.ErrUnknownCommand from a server
	// that does not know HELLO, ...), and errors.As finds the
	// *gomemcached.MCResponse.
	ErrUnSuccessfulHello = errors.New("Unsuccessful HELLO exchange")
	// ErrInvalidHello: the answer to HELLO is malformed: another opcode,
	// or a value that is not a list of 16-bit features.
	ErrInvalidHello = errors.New("Invalid HELLO response")
)

// features records what the last HELLO negotiated, for the encoder and
// IsFeatureEnabled. A HELLO replaces what earlier ones negotiated, on the
// server as here.
type features struct {
	list           atomic.Pointer[Features] // as the server accepted them; nil before any HELLO
	collections    atomic.Bool
	preserveExpiry atomic.Bool
	syncRepl       atomic.Bool
	// helloKnown is set once the server has answered a HELLO: see hello.
	helloKnown atomic.Bool
}

// set records the features the server accepted.
func (f *features) set(accepted Features) {
	f.list.Store(&accepted)
	f.collections.Store(slices.Contains(accepted, FeatureCollections))
	f.preserveExpiry.Store(slices.Contains(accepted, FeaturePreserveExpiry))
	f.syncRepl.Store(slices.Contains(accepted, FeatureSyncReplication))
}

// enabled returns the features the last HELLO turned on.
func (f *features) enabled() Features {
	if p := f.list.Load(); p != nil {
		return *p
	}
	return nil
}

// EnableFeatures asks the server to turn on features for this connection
// (HELLO, with the connection's name, GetConnName, as the key) and records
// those the server accepted: IsFeatureEnabled and CollectionEnabled report
// them, and the key-value methods encode keys with a collection id only
// once collections are on. As on the server, a HELLO replaces what earlier
// ones turned on. It returns the server's answer, whose value lists the
// accepted features.
//
// A failed status comes with an error matching ErrUnSuccessfulHello that
// unwraps to the response; ErrInvalidHello reports a malformed answer.
//
// Unlike the reference, EnableFeatures first makes sure the server knows
// HELLO, by sending one without a key and without features, once per
// connection. memcached 1.6 does not know HELLO, and an unknown command
// that carries a key makes it read the next request out of step (it
// answers only after swallowing as many bytes of that request as the key
// had, and parses the rest as a new packet), so a HELLO with a key would
// never be answered. The keyless one is answered UNKNOWN_COMMAND, which
// EnableFeatures returns as its error (errors.Is matches
// ErrUnSuccessfulHello and gomemcached.ErrUnknownCommand), leaving the
// connection usable.
func (c *Client) EnableFeatures(features Features) (*gomemcached.MCResponse, error) {
	c.c.changed.Store(true)
	return c.c.hello(nil, c.c.readDeadline(), c.GetConnName(), features)
}

// EnableMutationToken turns on FeatureMutationToken (HELLO), after which
// mutations answer with 16 bytes of extras: the vbucket's UUID and the
// mutation's sequence number. Unlike the reference, which sends that
// feature alone (and so turns off the others a server had turned on), it
// asks for the features already on as well.
func (c *Client) EnableMutationToken() (*gomemcached.MCResponse, error) {
	want := slices.Clone(c.c.feat.enabled())
	if !slices.Contains(want, FeatureMutationToken) {
		want = append(want, FeatureMutationToken)
	}
	return c.EnableFeatures(want)
}

// IsFeatureEnabled reports whether the last HELLO turned feature on.
func (c *Client) IsFeatureEnabled(feature Feature) bool {
	return slices.Contains(c.c.feat.enabled(), feature)
}

// CollectionEnabled reports whether the last HELLO turned collections on:
// keys are then sent with their collection id.
func (c *Client) CollectionEnabled() bool { return c.c.feat.collections.Load() }

// hello implements EnableFeatures; ctx (nil for none) and hard bound each
// request.
func (c *conn) hello(ctx context.Context, hard time.Time, name string, want Features) (*gomemcached.MCResponse, error) {
	if !c.feat.helloKnown.Load() {
		// The probe: no key, so that memcached answers it in step.
		res, err := c.callCtx(ctx, hard, &request{opcode: gomemcached.HELLO})
		if err != nil {
			return res, helloErr(res, err)
		}
		if err := checkHello(res); err != nil {
			return nil, err
		}
		c.feat.helloKnown.Store(true)
		c.feat.set(nil) // the probe asked for nothing
	}
	body := make([]byte, 0, 2*len(want))
	for _, f := range want {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	if len(name) > maxHelloKey {
		name = name[:maxHelloKey]
	}
	res, err := c.callCtx(ctx, hard, &request{opcode: gomemcached.HELLO, key: name, body: body})
	if err != nil {
		return res, helloErr(res, err)
	}
	if err := checkHello(res); err != nil {
		return nil, err
	}
	accepted := make(Features, 0, len(res.Body)/2)
	for b := res.Body; len(b) >= 2; b = b[2:] {
		accepted = append(accepted, Feature(binary.BigEndian.Uint16(b)))
	}
	c.feat.set(accepted)
	return res, nil
}

// maxHelloKey bounds the name sent as HELLO's key (servers keep less:
// kv_engine, 32 bytes of an agent name).
const maxHelloKey = MaxKeyLen

// checkHello checks the shape of a successful answer to HELLO.
func checkHello(res *gomemcached.MCResponse) error {
	if res.Opcode != gomemcached.HELLO || len(res.Body)%2 != 0 || res.Status != gomemcached.SUCCESS {
		return ErrInvalidHello
	}
	return nil
}

// helloError is a HELLO answered with a failed status.
type helloError struct{ res *gomemcached.MCResponse }

func (e *helloError) Error() string { return ErrUnSuccessfulHello.Error() + ": " + e.res.Error() }

// Is matches ErrUnSuccessfulHello.
func (e *helloError) Is(target error) bool { return target == ErrUnSuccessfulHello }

// Unwrap returns the response.
func (e *helloError) Unwrap() error { return e.res }

// helloErr returns the error of a failed HELLO call: a failed status
// becomes a *helloError; transport errors stay as they are.
func helloErr(res *gomemcached.MCResponse, err error) error {
	if res != nil && err == error(res) {
		return &helloError{res: res}
	}
	return err
}

// helloUnknown reports whether err is a server's refusal of the keyless
// HELLO that hello sends first: it does not know HELLO.
func (c *conn) helloUnknown(err error) bool {
	var he *helloError
	return !c.feat.helloKnown.Load() && errors.As(err, &he) && he.res.Status == gomemcached.UNKNOWN_COMMAND
}
