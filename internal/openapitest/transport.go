package openapitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
)

// Transport wraps base (http.DefaultTransport when nil) so that every
// exchange through it is checked: one that does not match the document is
// recorded, and its RoundTrip returns an error instead of the answer.
func (c *Checker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base}
}

// Client is a copy of client (http.DefaultClient when nil) whose transport
// checks every exchange.
func (c *Checker) Client(client *http.Client) *http.Client {
	if client == nil {
		client = http.DefaultClient
	}
	out := *client
	out.Transport = c.Transport(client.Transport)
	return &out
}

type transport struct {
	c    *Checker
	base http.RoundTripper
}

// RoundTrip sends req, reads the whole answer and checks both.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	resp, err := t.base.RoundTrip(withBody(req, body))
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := t.c.Check(req, body, resp, respBody); err != nil {
		t.c.record(err)
		return nil, fmt.Errorf("openapitest: the exchange does not match api/openapi.json: %w", err)
	}
	return resp, nil
}

// Handler wraps h so that every request it serves and its answer are
// checked, for tests that call a handler directly (httptest.NewRecorder).
// A mismatch is recorded for the end of the test; the answer goes out as h
// gave it.
func (c *Checker) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, withBody(r, body))
		resp := rec.Result()
		respBody := rec.Body.Bytes()
		if err := c.Check(r, body, resp, respBody); err != nil {
			c.record(err)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(respBody)
	})
}
