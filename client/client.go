package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls wxflow's shop API over HTTP as one shop. It is safe for
// concurrent use. Make it once with [New] and share it.
//
// Every call takes a context: cancelling it stops the request and any wait
// before a retry. A call retries only what is safe to send again (see
// [RetryPolicy]); a refusal is an [*Error].
type Client struct {
	base      *url.URL
	key       string
	http      *http.Client
	retry     RetryPolicy
	userAgent string
	plainHTTP bool
}

// Option configures a [Client]; an option given a bad value makes [New]
// fail.
type Option func(*Client) error

// WithHTTPClient sends the requests with hc (its transport, proxy, TLS
// roots and timeouts). Default: a client with a 30 s timeout. The client's
// redirect policy is kept, but for [Client.OAuthURL], which never follows.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient(nil)")
		}
		c.http = hc
		return nil
	}
}

// WithRetry sets how requests are retried; see [RetryPolicy].
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxAttempts < 0 || p.MinBackoff < 0 || p.MaxBackoff < 0 || p.MaxRetryAfter < 0 {
			return errors.New("client: WithRetry: negative value")
		}
		c.retry = p.withDefaults()
		return nil
	}
}

// WithUserAgent sets the User-Agent of every request (default
// "wxflow-client-go").
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if ua == "" || strings.ContainsAny(ua, "\r\n") {
			return errors.New("client: WithUserAgent: empty or several lines")
		}
		c.userAgent = ua
		return nil
	}
}

// AllowPlainHTTP lets the base URL be http:// on a host that is not the
// loopback. The shop key travels with every request as a bearer token:
// anywhere but loopback, reach wxflow over TLS (a TLS proxy in front of
// it) and leave this option out.
func AllowPlainHTTP() Option {
	return func(c *Client) error {
		c.plainHTTP = true
		return nil
	}
}

// New is a client of the wxflow API at baseURL (the internal listener, e.g.
// "https://wxflow.internal.example" or "http://127.0.0.1:8080") acting as
// the shop whose API key is key ("wxs_<key id>_<secret>").
func New(baseURL, key string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	if key == "" {
		return nil, errors.New("client: a shop API key is needed")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return nil, errors.New("client: the shop API key must be visible ASCII")
		}
	}
	c := &Client{base: u, key: key, http: &http.Client{Timeout: 30 * time.Second}, retry: RetryPolicy{}.withDefaults(),
		userAgent: "wxflow-client-go"}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if u.Scheme == "http" && !c.plainHTTP && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("client: %s is plain HTTP on a host that is not the loopback: the shop key would travel in clear (use https, or AllowPlainHTTP)", baseURL)
	}
	return c, nil
}

// loopback says whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requestIDKey carries a request id in a context.
type requestIDKey struct{}

// WithRequestID returns a context whose requests carry X-Request-Id: id (up
// to 64 visible ASCII characters; another value is not sent). wxflow logs
// it and follows the order with it through every worker: give your own
// trace id to find a request in wxflow's logs.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// call is one API request.
type call struct {
	method, path string
	query        url.Values
	body         any // JSON; nil: no body
	jsonType     bool
	idemKey      string
	// safe: sending the request again does nothing twice (a read, a close,
	// a create or refund with its key or number), so a network error or a
	// 5xx may be retried.
	safe       bool
	noRedirect bool
}

// answer is one HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 4 << 20

// do sends the call, retrying what the policy allows, and returns a 2xx
// (or, with noRedirect, a 3xx) answer; anything else is an [*Error].
func (c *Client) do(ctx context.Context, k call) (answer, error) {
	var body []byte
	if k.body != nil {
		var err error
		if body, err = json.Marshal(k.body); err != nil {
			return answer{}, fmt.Errorf("client: %s %s: %w", k.method, k.path, err)
		}
	}
	for attempt := 1; ; attempt++ {
		a, err := c.once(ctx, k, body)
		if err == nil && (a.status < 300 || k.noRedirect && a.status < 400) {
			return a, nil
		}
		var apiErr *Error
		if err == nil {
			apiErr = errorOf(a)
			err = apiErr
		}
		wait, again := c.retry.next(attempt, k.safe, apiErr, err)
		if !again || ctx.Err() != nil {
			return a, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, fmt.Errorf("%w (waiting to retry after: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// once makes one request.
func (c *Client) once(ctx context.Context, k call, body []byte) (answer, error) {
	// The path's segments are checked ids and fixed words: JoinPath escapes
	// each, and none is "." or "..".
	u := c.base.JoinPath(strings.Split(strings.TrimPrefix(k.path, "/"), "/")...)
	if len(k.query) > 0 {
		u.RawQuery = k.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u.String(), rd)
	if err != nil {
		return answer{}, fmt.Errorf("client: %s %s: %w", k.method, k.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil || k.jsonType {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.idemKey != "" {
		req.Header.Set("Idempotency-Key", k.idemKey)
	}
	if id, _ := ctx.Value(requestIDKey{}).(string); id != "" && len(id) <= 64 && visibleASCII(id) {
		req.Header.Set("X-Request-Id", id)
	}
	hc := c.http
	if k.noRedirect {
		nc := *c.http
		nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc = &nc
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("client: %s %s: %w", k.method, k.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return answer{}, fmt.Errorf("client: %s %s: reading the answer: %w", k.method, k.path, err)
	}
	if len(raw) > maxAnswer {
		return answer{}, fmt.Errorf("client: %s %s: the answer is larger than %d bytes", k.method, k.path, maxAnswer)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// errorOf reads an answer that is not a success as an [*Error]. An answer
// that is not wxflow's error shape (a proxy's page) gets a code from its
// status.
func errorOf(a answer) *Error {
	var b struct {
		Error struct {
			Code     string    `json:"code"`
			Reason   string    `json:"reason"`
			Problems []Problem `json:"problems"`
		} `json:"error"`
	}
	e := &Error{StatusCode: a.status, RequestID: a.header.Get("X-Request-Id"), RetryAfter: retryAfter(a.header.Get("Retry-After"), time.Now())}
	if json.Unmarshal(a.body, &b) == nil && b.Error.Code != "" {
		e.Code, e.Reason, e.Problems = b.Error.Code, b.Error.Reason, b.Error.Problems
		return e
	}
	switch {
	case a.status == http.StatusTooManyRequests:
		e.Code = CodeRateLimited
	case a.status == http.StatusUnauthorized:
		e.Code = CodeUnauthenticated
	case a.status == http.StatusNotFound:
		e.Code = CodeNotFound
	case a.status >= 500:
		e.Code = CodeUnavailable
	default:
		e.Code = fmt.Sprintf("http_%d", a.status)
	}
	e.Reason = http.StatusText(a.status) + " (the answer is not wxflow's: a proxy in between?)"
	return e
}

// decode reads a JSON answer into v.
func decode(k call, a answer, v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("client: %s %s: the answer is not the JSON expected: %w", k.method, k.path, err)
	}
	return nil
}
