package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// IsAnswer reports whether a 5xx answer is the service's own word (for
// WeChat Pay: its signature verifies), and so an answer to pass on, not a
// sign that the site is down. It is given at most [MaxAnswerBytes] of the body.
type IsAnswer func(header http.Header, body []byte) bool

// MaxAnswerBytes is how much of a 5xx body is read to judge it; a longer one
// is not an answer.
const MaxAnswerBytes = 1 << 20

// errAttemptTimeout is the cause of a host that did not answer within the attempt's time.
var errAttemptTimeout = errors.New("failover: no answer within the attempt's time")

// Transport wraps next (the transport that reaches the hosts, with any
// metrics below this one) so that calls addressed to the primary fail over
// as the package describes; isAnswer judges 5xx answers (nil: no 5xx is an
// answer). Requests to any other host go to next untouched. A request body
// is sent again on the next host only when the request can replay it
// (GetBody, which http.NewRequest sets for in-memory bodies); otherwise the
// first host's failure is the call's.
func (h *Hosts) Transport(next http.RoundTripper, isAnswer IsAnswer) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if isAnswer == nil {
		isAnswer = func(http.Header, []byte) bool { return false }
	}
	return &transport{h: h, next: next, isAnswer: isAnswer}
}

type transport struct {
	h        *Hosts
	next     http.RoundTripper
	isAnswer IsAnswer
}

// RoundTrip tries the hosts in order, each at most once.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.h.owns(req.URL) {
		return t.next.RoundTrip(req)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var (
		resp  *http.Response
		err   error
		tried bool
	)
	for i, role := range roles {
		b := t.h.b[role]
		ok, probe := b.allow(t.h.cfg.Now())
		if !ok {
			continue
		}
		r, rerr := t.attemptRequest(req, role, tried, replayable)
		if rerr != nil { // the body cannot be sent again: the last failure stands
			t.h.record(role, abandoned, probe, nil)
			break
		}
		if tried {
			discard(resp)
		}
		last := true
		for _, later := range roles[i+1:] {
			last = last && !t.h.b[later].available(t.h.cfg.Now())
		}
		o := t.attempt(r, role, last)
		t.h.record(role, o.verdict, probe, o.cause)
		resp, err, tried = o.resp, o.err, true
		if o.verdict == answered || o.verdict == abandoned {
			return resp, err
		}
	}
	if !tried {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%w (%s, %s)", ErrUnavailable, t.h.primary, t.h.backup)
	}
	return resp, err
}

// attemptRequest is the request for one host: the caller's own the first
// time (its body), a clone with a fresh body after.
func (t *transport) attemptRequest(req *http.Request, role Role, again, replayable bool) (*http.Request, error) {
	if !again && role == Primary {
		return req, nil
	}
	if again && !replayable {
		return nil, errors.New("failover: body cannot be sent again")
	}
	r := req.Clone(req.Context())
	if again && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	base := t.h.base(role)
	r.URL.Scheme, r.URL.Host, r.Host = base.Scheme, base.Host, base.Host
	return r, nil
}

// outcome is one attempt's result: what the caller gets if it is the last
// (resp or err), the verdict on the host, and why the host failed.
type outcome struct {
	resp    *http.Response
	err     error
	verdict verdict
	cause   error
}

// attempt sends req to one host and judges the outcome. Unless last, the
// host has its own time limit (for the answer's headers). A 5xx answer is
// read into memory to be judged; any other answer is returned as it comes,
// its body still streaming.
func (t *transport) attempt(req *http.Request, role Role, last bool) outcome {
	parent := req.Context()
	ctx, cancel := context.WithCancel(context.WithValue(parent, roleKey{}, role))
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }})
	var timer *time.Timer
	if !last {
		d := t.h.cfg.AttemptTimeout
		if deadline, ok := parent.Deadline(); ok {
			d = min(d, time.Until(deadline)/2)
		}
		timer = time.AfterFunc(d, cancel)
	}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	timedOut := timer != nil && !timer.Stop()
	if err == nil && timedOut { // the limit fell as the headers came: the body is cut
		discard(resp)
		resp, err = nil, errAttemptTimeout
	}
	if err != nil {
		cancel()
		switch {
		case parent.Err() != nil:
			return outcome{err: err, verdict: abandoned}
		case timedOut:
			err = fmt.Errorf("%w: %w", errAttemptTimeout, err)
		}
		if !connected.Load() {
			return outcome{err: err, verdict: unreachable, cause: err}
		}
		return outcome{err: err, verdict: failed, cause: err}
	}
	if resp.StatusCode < 500 {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return outcome{resp: resp, verdict: answered}
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	resp.Body.Close()
	cancel()
	if rerr != nil {
		if parent.Err() != nil {
			return outcome{err: rerr, verdict: abandoned}
		}
		return outcome{err: rerr, verdict: failed, cause: rerr}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) <= MaxAnswerBytes && t.isAnswer(resp.Header, body) {
		return outcome{resp: resp, verdict: answered}
	}
	return outcome{resp: resp, verdict: failed, cause: fmt.Errorf("HTTP %d without the service's signature", resp.StatusCode)}
}

// cancelOnClose ends an attempt's context once its answer has been read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// discard closes an answer that will not be returned.
func discard(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
}

// CloseIdleConnections closes next's idle connections, when it has any
// (http.Client.CloseIdleConnections reaches through this transport).
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
