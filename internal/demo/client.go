package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is a tiny JSON-over-HTTP client, for the demo and the bench. It
// retries a request that got no answer or a 5xx: every request they make is
// idempotent.
type Client struct {
	Base string
	HTTP *http.Client
	// Key, when set, is sent as "Authorization: Bearer <Key>" on every
	// request: the shop API key of wxflow's API (none for the simulator).
	Key string
}

// Do sends in as JSON and decodes the answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.DoHeader(ctx, method, path, in, out)
}

// DoHeader is Do with headers, given as name, value pairs.
func (c *Client) DoHeader(ctx context.Context, method, path string, in, out any, header ...string) error {
	for {
		retry, err := c.once(ctx, method, path, in, out, header...)
		if err == nil || !retry {
			return err
		}
		// The process may be restarting (the reliability run kills it): every
		// request the demo makes is idempotent, so it tries again.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// once makes one request and says whether a failure is worth retrying
// (no answer, a 5xx, or a 429).
func (c *Client) once(ctx context.Context, method, path string, in, out any, header ...string) (bool, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, body)
	if err != nil {
		return false, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return true, err
	}
	if resp.StatusCode >= 300 {
		// A 5xx may pass; a 429 asks to slow down, and every request is idempotent.
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests, &statusError{Status: resp.StatusCode,
			msg: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))}
	}
	if out == nil || len(raw) == 0 {
		return false, nil
	}
	return false, json.Unmarshal(raw, out)
}

// statusError is an answer other than 2xx, so callers can tell a conflict
// from a failure.
type statusError struct {
	Status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// IsStatus says whether err is an answer with the given HTTP status.
func IsStatus(err error, status int) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == status
}
