package client

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says which failed requests a [Client] sends again, and when.
// Zero fields take the defaults.
//
// Only what is safe is retried:
//   - a 429 (rate_limited), always: wxflow refused the request before
//     looking at it. The wait is its Retry-After.
//   - no answer (a network error) or a 5xx, only for a request that does
//     nothing twice when sent again: a read, a close, a create with an
//     Idempotency-Key, a refund with an out_refund_no or an Idempotency-Key.
//     A create or refund without one is never retried: it could make a
//     second order or refund.
//
// A 202 "pending" answer is a success, not a failure: nothing is retried.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included
	// (default 4); 1 never retries.
	MaxAttempts int
	// MinBackoff is the wait before the first retry when wxflow gave no
	// Retry-After (default 200 ms); each next one doubles, with jitter.
	MinBackoff time.Duration
	// MaxBackoff caps that wait (default 5 s).
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After waited for (default 30 s):
	// longer, the call returns the 429 at once, its Error.RetryAfter set.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 4
	}
	if p.MinBackoff == 0 {
		p.MinBackoff = 200 * time.Millisecond
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = 30 * time.Second
	}
	return p
}

// next says whether to try again after attempt failed (with apiErr, the
// answer's error, or a network error err when apiErr is nil), and after how
// long.
func (p RetryPolicy) next(attempt int, safe bool, apiErr *Error, err error) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	switch {
	case apiErr == nil: // no answer
		return p.backoff(attempt), safe && err != nil
	case apiErr.StatusCode == http.StatusTooManyRequests:
		if apiErr.RetryAfter > p.MaxRetryAfter {
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			return apiErr.RetryAfter, true
		}
		return p.backoff(attempt), true
	case apiErr.StatusCode >= 500 && safe:
		if apiErr.RetryAfter > 0 && apiErr.RetryAfter <= p.MaxRetryAfter {
			return apiErr.RetryAfter, true
		}
		return p.backoff(attempt), true
	}
	return 0, false
}

// backoff is MinBackoff·2^(attempt-1), capped at MaxBackoff, of which a
// random half is waited: clients that failed together do not retry together.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date. 0 when
// absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
