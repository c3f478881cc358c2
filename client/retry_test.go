package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/client"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// scripted is an API that answers each request with the next of its
// answers (the last one forever) and counts the requests.
type scripted struct {
	answers []func(w http.ResponseWriter, r *http.Request)
	n       atomic.Int32
	mu      sync.Mutex
	keys    []string // the Idempotency-Key of each request
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1)) - 1
	s.mu.Lock()
	s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
	s.mu.Unlock()
	s.answers[min(i, len(s.answers)-1)](w, r)
}

func status(code int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

const (
	orderJSON   = `{"order":{"id":"o_1","merchant":"default","shop":"demo","out_trade_no":"wxf1","description":"tea","amount_fen":1990,"pay_api":"v3","client":"jsapi","openid":"oUser","state":"authorized","paid_fen":0,"refunded_fen":0,"version":2}}`
	busyJSON    = `{"error":{"code":"unavailable","reason":"wxflow cannot answer now; try again"}}`
	limitedJSON = `{"error":{"code":"rate_limited","reason":"too many requests for this shop: slow down and retry after the Retry-After seconds"}}`
)

func scriptedClient(t *testing.T, s *scripted, p client.RetryPolicy) *client.Client {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "wxs_test_key", client.WithRetry(p))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var fast = client.RetryPolicy{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

// TestRetries: what is retried and what is not.
func TestRetries(t *testing.T) {
	ctx := context.Background()
	create := client.CreateOrderRequest{AmountFen: 1990, Description: "tea", PayAPI: client.PayV3, Payer: client.PayerOpenID("oUser")}
	withKey := create
	withKey.IdempotencyKey = "cart-1"
	tests := []struct {
		name     string
		answers  []func(http.ResponseWriter, *http.Request)
		req      client.CreateOrderRequest
		requests int32
		wantErr  error
	}{
		{"503 of a create with a key: retried", []func(http.ResponseWriter, *http.Request){status(503, busyJSON), status(201, orderJSON)}, withKey, 2, nil},
		{"503 of a create without a key: not retried", []func(http.ResponseWriter, *http.Request){status(503, busyJSON), status(201, orderJSON)}, create, 1, client.ErrUnavailable},
		{"429: always retried", []func(http.ResponseWriter, *http.Request){status(429, limitedJSON, "Retry-After", "0"), status(201, orderJSON)}, create, 2, nil},
		{"429 asking too long a wait: returned", []func(http.ResponseWriter, *http.Request){status(429, limitedJSON, "Retry-After", "3600")}, create, 1, client.ErrRateLimited},
		{"422: never retried", []func(http.ResponseWriter, *http.Request){status(422, `{"error":{"code":"invalid_fields","reason":"r","problems":[{"field":"amount_fen","code":"out_of_range","reason":"x"}]}}`)}, withKey, 1, client.ErrInvalidRequest},
		{"a proxy's 502 page: retried with a key", []func(http.ResponseWriter, *http.Request){status(502, "<html>bad gateway</html>"), status(201, orderJSON)}, withKey, 2, nil},
		{"5xx until the attempts end", []func(http.ResponseWriter, *http.Request){status(500, `{"error":{"code":"internal","reason":"a bug"}}`)}, withKey, 4, client.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{answers: tc.answers}
			c := scriptedClient(t, s, fast)
			res, err := c.CreateOrder(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got := s.n.Load(); got != tc.requests {
				t.Fatalf("%d requests, want %d", got, tc.requests)
			}
			if err == nil && res.Order.ID != "o_1" {
				t.Fatalf("result %+v", res)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range s.keys {
				if k != tc.req.IdempotencyKey {
					t.Errorf("a retry sent Idempotency-Key %q, want %q", k, tc.req.IdempotencyKey)
				}
			}
		})
	}
}

// TestRetryAfterIsWaited: a 429's Retry-After is honoured, and reported
// when it is longer than the policy waits.
func TestRetryAfterIsWaited(t *testing.T) {
	s := &scripted{answers: []func(http.ResponseWriter, *http.Request){status(429, limitedJSON, "Retry-After", "1"), status(200, orderJSON)}}
	c := scriptedClient(t, s, fast)
	start := time.Now()
	if _, err := c.GetOrder(context.Background(), "o_1"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %s; Retry-After said 1 s", waited)
	}
	s = &scripted{answers: []func(http.ResponseWriter, *http.Request){status(429, limitedJSON, "Retry-After", "120")}}
	_, err := scriptedClient(t, s, fast).GetOrder(context.Background(), "o_1")
	var e *client.Error
	if !errors.As(err, &e) || e.RetryAfter != 2*time.Minute || e.StatusCode != 429 {
		t.Fatalf("a long Retry-After: %#v", err)
	}
}

// TestRetryStopsWithTheContext: cancelling the context ends the wait
// before a retry at once.
func TestRetryStopsWithTheContext(t *testing.T) {
	s := &scripted{answers: []func(http.ResponseWriter, *http.Request){status(503, busyJSON, "Retry-After", "20")}}
	c := scriptedClient(t, s, client.RetryPolicy{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.GetOrder(ctx, "o_1"); done <- err }()
	enginetest.WaitFor(t, 10*time.Second, func() error { // the first answer is in: the client waits 20 s to retry
		if s.n.Load() == 0 {
			return errors.New("no request yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("after cancel: %v, want context.Canceled wrapping the 503", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client kept waiting after its context ended")
	}
}

// TestNetworkErrors: no answer at all is retried for a read, never for a
// create without a key.
func TestNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close() // hang up without an answer
		}
	}()
	t.Cleanup(func() { ln.Close() })
	c, err := client.New("http://"+ln.Addr().String(), "wxs_test_key", client.WithRetry(fast))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrder(context.Background(), "o_1"); err == nil {
		t.Fatal("no error without an answer")
	}
	if n := accepted.Load(); n < 4 {
		t.Fatalf("a read was tried %d times, want 4", n)
	}
	accepted.Store(0)
	if _, err := c.CreateOrder(context.Background(), client.CreateOrderRequest{AmountFen: 1, Description: "d", PayAPI: client.PayV2,
		Payer: client.PayerOpenID("o")}); err == nil {
		t.Fatal("no error without an answer")
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("a create without a key was tried %d times, want once", n)
	}
}

// TestNewRefuses: a base URL that would send the key in clear, or an
// unusable key or URL.
func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		url, key string
		opts     []client.Option
		ok       bool
	}{
		{"http://127.0.0.1:8080", "wxs_a_b", nil, true},
		{"http://localhost:8080/", "wxs_a_b", nil, true},
		{"https://wxflow.example", "wxs_a_b", nil, true},
		{"http://wxflow.example", "wxs_a_b", nil, false},
		{"http://wxflow.example", "wxs_a_b", []client.Option{client.AllowPlainHTTP()}, true},
		{"ftp://wxflow.example", "wxs_a_b", nil, false},
		{"https://wxflow.example?x=1", "wxs_a_b", nil, false},
		{"https://user:pw@wxflow.example", "wxs_a_b", nil, false},
		{"https://wxflow.example", "", nil, false},
		{"https://wxflow.example", "wxs_a\r\nX-Evil: 1", nil, false},
		{"https://wxflow.example", "wxs_a_b", []client.Option{client.WithHTTPClient(nil)}, false},
		{"https://wxflow.example", "wxs_a_b", []client.Option{client.WithUserAgent("a\nb")}, false},
	} {
		_, err := client.New(tc.url, tc.key, tc.opts...)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q, %q): %v, want ok %v", tc.url, strings.ReplaceAll(tc.key, "\n", `\n`), err, tc.ok)
		}
	}
}

// TestRequestHeaders: every request carries the key and the user agent; a
// body is JSON; a request id from the context is sent when it is one.
func TestRequestHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		status(202, orderJSON)(w, r)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL+"/", "wxs_test_key", client.WithUserAgent("acme-shop/1.0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := client.WithRequestID(context.Background(), "trace-1001")
	if _, err := c.CloseOrder(ctx, "o_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CloseOrder(client.WithRequestID(context.Background(), "bad id\n"), "o_1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	h := got[0]
	if h.Get("Authorization") != "Bearer wxs_test_key" || h.Get("User-Agent") != "acme-shop/1.0" ||
		h.Get("Content-Type") != "application/json" || h.Get("X-Request-Id") != "trace-1001" {
		t.Fatalf("headers %v", h)
	}
	if id := got[1].Get("X-Request-Id"); id != "" {
		t.Fatalf("a malformed request id was sent: %q", id)
	}
}
