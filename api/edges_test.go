package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
)

// TestPublicListenerServesOnlyNotifications: what WeChat must reach from the
// internet is all the public listener answers; the shop API, the admin page
// and the metrics are not there to be found.
func TestPublicListenerServesOnlyNotifications(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodPost, "/v1/orders", http.StatusNotFound},
		{http.MethodGet, "/v1/orders/o_x", http.StatusNotFound},
		{http.MethodGet, "/admin/", http.StatusNotFound},
		{http.MethodPost, "/admin/api/replay-stuck", http.StatusNotFound},
		{http.MethodGet, "/metrics", http.StatusNotFound},
		{http.MethodGet, "/readyz", http.StatusNotFound},
		{http.MethodPost, "/wechat/notify/default/v2/pay", http.StatusOK}, // answered (a FAIL in XML: an empty body)
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, "http://public"+tc.path, strings.NewReader(""))
		h.publicHandler.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s on the public listener: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
		if tc.want == http.StatusNotFound && !strings.Contains(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: a 404 that is not JSON", tc.method, tc.path)
		}
	}
}

// TestPublicRateLimit: one address over its rate is told to slow down
// (429, Retry-After); another address is not.
func TestPublicRateLimit(t *testing.T) {
	h, _ := startHarness(t, func(cfg *api.Config) { cfg.Edges = api.Edges{Rate: 1, Burst: 3} })
	ask := func(ip string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://public/healthz", nil)
		req.RemoteAddr = ip + ":5000"
		h.publicHandler.ServeHTTP(rec, req)
		return rec
	}
	for i := range 3 {
		if rec := ask("198.51.100.1"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, rec.Code)
		}
	}
	rec := ask("198.51.100.1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d, Retry-After %q; want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := ask("198.51.100.2"); rec.Code != http.StatusOK {
		t.Fatalf("another address: %d, want 200", rec.Code)
	}
}

// TestEdgesHoldSlowAndBigClients: 300 connections trickling a body and 300
// sending unfinished 60 KiB headers, all from one address, hold a bounded
// amount of memory (one address keeps at most its share of connections),
// and a genuine notification from another address is still answered.
func TestEdgesHoldSlowAndBigClients(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("dials from 127.0.0.2, which only Linux routes to loopback by default")
	}
	h := newHarness(t)
	o := h.prepaid(t, 1000, "v2")
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx, api.Listeners{Public: public}) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := public.Addr().String()

	heapBefore := heapInUse()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	pad := strings.Repeat("a", 60<<10)
	for i := range 600 {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("attack connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 { // a body that never comes
			fmt.Fprintf(c, "POST /wechat/notify/default/v2/pay HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 1000000\r\n\r\n<xml>")
		} else { // headers that never end
			fmt.Fprintf(c, "POST /wechat/notify/default/v2/pay HTTP/1.1\r\nHost: x\r\nX-Pad: %s", pad)
		}
	}
	// A genuine notification from another address gets through.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	defer c.Close()
	body := h.v2Notification(o, 1000, nil)
	fmt.Fprintf(c, "POST /wechat/notify/default/v2/pay HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the genuine notification got no answer: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte("SUCCESS")) {
		t.Fatalf("the genuine notification: %d %s", resp.StatusCode, answer)
	}
	if grown := heapInUse() - heapBefore; grown > 64<<20 {
		t.Errorf("600 hostile connections grew the heap by %d MiB, want a bounded amount (< 64 MiB)", grown>>20)
	}
	// Most of them were turned away at once: one address keeps its share.
	var turnedAway atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			var timeout net.Error
			if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &timeout) && timeout.Timeout()) {
				turnedAway.Add(1) // closed (EOF) or reset (the server closed with our bytes unread)
			}
		})
	}
	wg.Wait()
	if turnedAway.Load() < int64(600-api.DefaultEdges().MaxConnsPerIP-1) {
		t.Errorf("%d of 600 connections from one address were turned away, want all but %d", turnedAway.Load(), api.DefaultEdges().MaxConnsPerIP)
	}
}

// TestHeadersAreBounded: headers past 64 KiB are refused (431), not read into memory.
func TestHeadersAreBounded(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx, api.Listeners{Internal: ln}) }()
	t.Cleanup(func() { cancel(); <-done })
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Pad", strings.Repeat("a", 200<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("200 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// TestShopRateLimit: each shop has its own rate on the internal listener,
// counted once its key is checked: one shop over it is told to slow down,
// another on the same host is not; made-up keys from one address are held
// by that address's allowance of failures, whatever keys they carry.
func TestShopRateLimit(t *testing.T) {
	h := newAdminHarness(t, api.Config{InternalRate: 2})
	betaKey := h.addShop(t, "beta", h.keys.Merchant.Name)
	get := func(key string) int {
		status, _ := h.do(t, http.MethodGet, "/v1/orders/o_missing", "", nil, "Authorization", "Bearer "+key)
		return status
	}
	statuses := []int{}
	for range 8 {
		statuses = append(statuses, get(h.key))
	}
	if statuses[0] != http.StatusNotFound || statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Fatalf("shop alpha, 8 requests at a rate of 2/s (bursts of 4): %v; want 404s, then 429", statuses)
	}
	if got := get(betaKey); got != http.StatusNotFound {
		t.Fatalf("shop beta while alpha is held: %d, want 404", got)
	}
	limited := 0
	for i := range 150 {
		if get(fmt.Sprintf("wxs_made%05d_up", i)) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("150 made-up keys from one address were never held")
	}
}
