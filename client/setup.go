package memcached

import (
	"context"
	"slices"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// SetupError is the error of Dial, and of a Pool opening a connection,
// when the connection was made but preparing it as ClientOptions asks
// failed. The connection has been closed.
type SetupError struct {
	// Step is the step that failed: "auth", "hello" or "select bucket".
	Step string
	// Err is why: a *gomemcached.ServerError for a refusal (errors.Is
	// matches gomemcached.ErrAuthFailed, ErrNoBucket, ErrAccessDenied,
	// ...), an *AuthError, a *TimeoutError, a context's error or a
	// *ConnError.
	Err error
}

func (e *SetupError) Error() string {
	return "memcached: connection setup: " + e.Step + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *SetupError) Unwrap() error { return e.Err }

// Fatal reports true: the connection is closed (see gomemcached.IsFatal),
// whatever Err says of itself.
func (e *SetupError) Fatal() bool { return true }

// setup prepares a new connection as its options ask: authentication,
// HELLO, bucket, in that order (memcached with -S closes a connection that
// sends anything but SASL before authenticating, HELLO included), each
// bounded by ctx.
func (c *conn) setup(ctx context.Context) error {
	o := &c.opts
	if o.Username != "" {
		if _, err := c.authenticate(ctx, time.Time{}, o.Mechanism, o.Username, o.Password); err != nil {
			return &SetupError{Step: "auth", Err: apiError(err)}
		}
	}
	features := o.Features
	if o.Bucket != "" && !slices.Contains(features, FeatureXerror) {
		features = append(slices.Clip(features), FeatureXerror)
	}
	if len(features) > 0 {
		if _, err := c.hello(ctx, time.Time{}, c.connName(), features); err != nil && !c.helloUnknown(err) {
			return &SetupError{Step: "hello", Err: apiError(err)}
		}
	}
	if o.Bucket != "" {
		if _, err := c.selectBucket(ctx, time.Time{}, o.Bucket); err != nil {
			return &SetupError{Step: "select bucket", Err: apiError(err)}
		}
	}
	return nil
}

// apiError returns err in the style of the new APIs: a failed response
// (the reference's style, where the response is the error), also under a
// HELLO error, becomes a *gomemcached.ServerError.
func apiError(err error) error {
	switch e := err.(type) {
	case *gomemcached.MCResponse:
		return serverError(e)
	case *helloError:
		return serverError(e.res)
	}
	return err
}
