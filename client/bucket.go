package memcached

import (
	"context"
	"strconv"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// SelectBucket makes bucket the connection's bucket (SELECT_BUCKET), that
// of the key-value calls that follow; "@no bucket@" leaves every bucket. A
// missing bucket is refused with NO_BUCKET (errors.Is matches
// gomemcached.ErrNoBucket), one the user may not use with EACCESS
// (gomemcached.ErrAccessDenied); the response is returned as the error, as
// in the reference. An empty name, or one over MaxKeyLen bytes, fails with
// ErrInvalidBucket before anything is sent.
//
// SELECT_BUCKET is a Couchbase command: memcached 1.6 does not know it,
// and never answers it (see EnableFeatures), so the call ends only with
// its deadline.
func (c *Client) SelectBucket(bucket string) (*gomemcached.MCResponse, error) {
	c.c.changed.Store(true)
	return c.c.selectBucket(nil, c.c.readDeadline(), bucket)
}

// LastBucket returns the bucket of the last successful SelectBucket (or
// ClientOptions.Bucket), "" if none or after "@no bucket@". (The reference
// records the name asked for, even when the server refuses it.)
func (c *Client) LastBucket() string {
	if p := c.c.bucket.Load(); p != nil {
		return *p
	}
	return ""
}

// noBucket is the name SELECT_BUCKET takes to leave every bucket.
const noBucket = "@no bucket@"

// ErrInvalidBucket is returned by SelectBucket, before anything is sent,
// for an empty bucket name or one longer than MaxKeyLen bytes. It matches
// gomemcached.ErrInvalidArguments.
var ErrInvalidBucket error = &bucketError{}

type bucketError struct{}

func (*bucketError) Error() string {
	return "memcached: a bucket name must have 1 to " + strconv.Itoa(MaxKeyLen) + " bytes"
}

func (*bucketError) Is(target error) bool {
	return target == ErrInvalidBucket || target == gomemcached.ErrInvalidArguments
}

// selectBucket implements SelectBucket.
func (c *conn) selectBucket(ctx context.Context, hard time.Time, bucket string) (*gomemcached.MCResponse, error) {
	if bucket == "" || len(bucket) > MaxKeyLen {
		return nil, ErrInvalidBucket
	}
	res, err := c.callCtx(ctx, hard, &request{opcode: gomemcached.SELECT_BUCKET, key: bucket})
	if err == nil {
		if bucket == noBucket {
			bucket = ""
		}
		c.bucket.Store(&bucket)
	}
	return res, err
}
