package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// errorAnswer is the API's one error shape.
type errorAnswer struct {
	Error struct {
		Code     string
		Reason   string
		Problems []struct{ Field, Code, Reason string }
	}
}

func decodeError(t *testing.T, out []byte) errorAnswer {
	t.Helper()
	var e errorAnswer
	if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" || e.Error.Reason == "" {
		t.Fatalf("not the error shape: %s (%v)", out, err)
	}
	return e
}

// TestShopAuthentication: every /v1 route refuses a request without a valid
// key, as 401 with WWW-Authenticate, before it reads anything else.
func TestShopAuthentication(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 100, "v2")
	id := string(o.ID)
	forged := h.key[:len(h.key)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(h.key, "0")]
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/orders", `{"amount_fen":1,"description":"d","openid":"o1","pay_api":"v2"}`},
		{http.MethodGet, "/v1/orders/" + id, ""},
		{http.MethodGet, "/v1/orders/" + id + "/pay-params", ""},
		{http.MethodPost, "/v1/orders/" + id + "/refunds", `{"amount_fen":1}`},
		{http.MethodGet, "/v1/orders/" + id + "/refunds", ""},
		{http.MethodGet, "/v1/orders/" + id + "/refunds/SHOP-R-0001", ""},
		{http.MethodPost, "/v1/orders/" + id + "/close", `{}`},
		{http.MethodGet, "/v1/jssdk/config?url=https%3A%2F%2Fshop.example%2F", ""},
		{http.MethodGet, "/v1/oauth/authorize?redirect_uri=https%3A%2F%2Fshop.example%2Fcb", ""},
	}
	creds := []struct{ name, authorization, challenge string }{
		{"no key", "", `Bearer realm="wxflow"`},
		{"another scheme", "Basic " + h.key, `Bearer realm="wxflow"`},
		{"wrong key", "Bearer wxs_0000000000000_" + strings.Repeat("0", 52), `error="invalid_token"`},
		{"forged secret", "Bearer " + forged, `error="invalid_token"`},
		{"not a key", "Bearer hunter2", `error="invalid_token"`},
	}
	for _, rt := range routes {
		for _, c := range creds {
			t.Run(rt.method+" "+strings.SplitN(rt.path, "?", 2)[0]+"/"+c.name, func(t *testing.T) {
				resp, out := h.doResp(t, rt.method, rt.path, "application/json", []byte(rt.body), "Authorization", c.authorization)
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), c.challenge) {
					t.Fatalf("%d %q %s, want 401 with %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), out, c.challenge)
				}
				if e := decodeError(t, out); e.Error.Code != "unauthenticated" {
					t.Errorf("code %q", e.Error.Code)
				}
			})
		}
	}
	if n, _ := h.store.CountOrders(context.Background()); n != 1 {
		t.Errorf("%d orders, want only the harness's one", n)
	}
	if got := h.state(t, o.ID); got.State != engine.Prepaid || got.RefundedFen != 0 {
		t.Errorf("refused requests changed the order: %+v", got)
	}
}

// TestRevokedKey: a revoked key works until the cache bound passes, and
// not after; the shop's other keys keep working.
func TestRevokedKey(t *testing.T) {
	h := newHarness(t)
	second := h.addShop(t, "alpha")
	get := func(key string) int {
		s, _ := h.do(t, http.MethodGet, "/v1/orders/o_none", "", nil, "Authorization", "Bearer "+key)
		return s
	}
	if s := get(h.key); s != http.StatusNotFound {
		t.Fatalf("before revoking: %d", s)
	}
	id, _ := engine.ShopKeyID(h.key)
	if n, err := h.store.RevokeShopKeys(context.Background(), "alpha", id, time.Now()); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if s := get(h.key); s != http.StatusNotFound {
		t.Fatalf("inside the cache bound: %d, want the cached answer", s)
	}
	h.clock.Add(int64(keyCacheTTL + time.Second))
	if s := get(h.key); s != http.StatusUnauthorized {
		t.Fatalf("past the cache bound: %d, want 401", s)
	}
	if s := get(second); s != http.StatusNotFound {
		t.Fatalf("the shop's other key: %d", s)
	}
}

// TestShopsSeeOnlyTheirOwnOrders: shop beta cannot read, refund or close
// shop alpha's order, and its answers are the 404 of an order that does
// not exist, naming no order.
func TestShopsSeeOnlyTheirOwnOrders(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 500, "v3")
	ctx := context.Background()
	notify := engine.Command{ID: "n:" + string(o.ID), Verb: engine.VerbNotify, OrderID: o.ID,
		Notify: &engine.Payment{TransactionID: "4200x", AmountFen: 500, Source: engine.SourceNotification}}
	if res, err := h.eng.Apply(ctx, notify); err != nil || !res.Applied {
		t.Fatalf("pay: %+v %v", res, err)
	}
	beta := []string{"Authorization", "Bearer " + h.betaKey}
	tests := []struct{ name, method, path, body string }{
		{"read", http.MethodGet, "/v1/orders/" + string(o.ID), ""},
		{"pay-params", http.MethodGet, "/v1/orders/" + string(o.ID) + "/pay-params", ""},
		{"refund", http.MethodPost, "/v1/orders/" + string(o.ID) + "/refunds", `{"amount_fen":100}`},
		{"close", http.MethodPost, "/v1/orders/" + string(o.ID) + "/close", `{}`},
		{"no such order", http.MethodGet, "/v1/orders/o_doesnotexist", ""},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := h.do(t, tc.method, tc.path, "application/json", []byte(tc.body), beta...)
			if s != http.StatusNotFound || decodeError(t, out).Error.Code != "not_found" {
				t.Fatalf("%d %s, want 404 not_found", s, out)
			}
			if bytes.Contains(out, []byte(o.ID)) || bytes.Contains(out, []byte(o.OutTradeNo)) {
				t.Errorf("the answer names the order: %s", out)
			}
			bodies = append(bodies, string(out))
		})
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("answers differ, telling another shop's order from none: %q and %q", bodies[0], b)
		}
	}
	if got := h.state(t, o.ID); got.State != engine.Notified || got.RefundedFen != 0 {
		t.Fatalf("beta changed alpha's order: %+v", got)
	}
	if s, _ := h.do(t, http.MethodGet, "/v1/orders/"+string(o.ID), "", nil); s != http.StatusOK {
		t.Fatalf("alpha reading its own order: %d", s)
	}
}

// TestConflictNamesNoOrder: a create that meets an out_trade_no another
// order holds (another shop's, here) is a 409 that names no order.
func TestConflictNamesNoOrder(t *testing.T) {
	h := newHarness(t)
	body := `{"amount_fen":100,"out_trade_no":"SHOP-000042","description":"d","openid":"o1","pay_api":"v3"}`
	s, first := h.create(t, body)
	if s != http.StatusCreated {
		t.Fatalf("create: %d", s)
	}
	for _, key := range []string{h.key, h.betaKey} {
		s, out := h.do(t, http.MethodPost, "/v1/orders", "application/json", []byte(strings.Replace(body, "100", "200", 1)), "Authorization", "Bearer "+key)
		if s != http.StatusConflict || bytes.Contains(out, []byte(first.ID)) || bytes.Contains(out, []byte(strings.TrimPrefix(string(first.ID), "o_"))) {
			t.Errorf("%d %s: want a 409 naming no order", s, out)
		}
	}
}

// TestIdempotencyKeyReplay: the same Idempotency-Key again answers the first
// answer's status and body with Idempotent-Replayed: true; the same key from
// another shop is another order.
func TestIdempotencyKeyReplay(t *testing.T) {
	h := newHarness(t)
	body := []byte(`{"amount_fen":100,"description":"d","openid":"o1","pay_api":"v3"}`)
	first, out1 := h.doResp(t, http.MethodPost, "/v1/orders", "application/json", body, "Idempotency-Key", "order-77")
	again, out2 := h.doResp(t, http.MethodPost, "/v1/orders", "application/json", body, "Idempotency-Key", "order-77")
	if first.StatusCode != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %q %s", first.StatusCode, first.Header.Get("Idempotent-Replayed"), out1)
	}
	if again.StatusCode != first.StatusCode || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(out1, out2) {
		t.Fatalf("replay: %d %q\n%s\nfirst:\n%s", again.StatusCode, again.Header.Get("Idempotent-Replayed"), out2, out1)
	}
	other, out3 := h.doResp(t, http.MethodPost, "/v1/orders", "application/json", body, "Idempotency-Key", "order-77", "Authorization", "Bearer "+h.betaKey)
	var a, b struct{ Order engine.Order }
	_ = json.Unmarshal(out1, &a)
	_ = json.Unmarshal(out3, &b)
	if other.StatusCode != http.StatusCreated || other.Header.Get("Idempotent-Replayed") != "" || b.Order.ID == "" || b.Order.ID == a.Order.ID || b.Order.Shop != "beta" {
		t.Fatalf("the same key from another shop: %d %s, first %s", other.StatusCode, out3, a.Order.ID)
	}
	// The order id is keyed by the server secret: not a plain hash of the key.
	if strings.Contains(string(a.Order.ID), "order-77") || a.Order.Shop != "alpha" {
		t.Errorf("order %+v", a.Order)
	}
	// A refund asked twice with one key is one refund, replayed.
	o := h.prepaid(t, 300, "v2")
	if res, _ := h.eng.Apply(context.Background(), engine.Command{ID: "n:" + string(o.ID), Verb: engine.VerbNotify, OrderID: o.ID,
		Notify: &engine.Payment{TransactionID: "4200y", AmountFen: 300, Source: engine.SourceNotification}}); !res.Applied {
		t.Fatalf("pay: %+v", res)
	}
	path := "/v1/orders/" + string(o.ID) + "/refunds"
	r1, _ := h.doResp(t, http.MethodPost, path, "application/json", []byte(`{"amount_fen":100}`), "Idempotency-Key", "refund-1")
	r2, _ := h.doResp(t, http.MethodPost, path, "application/json", []byte(`{"amount_fen":100}`), "Idempotency-Key", "refund-1")
	if r1.StatusCode != http.StatusAccepted || r2.StatusCode != http.StatusAccepted || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("refund twice: %d, %d %q", r1.StatusCode, r2.StatusCode, r2.Header.Get("Idempotent-Replayed"))
	}
	if rs, _ := h.store.Refunds(context.Background(), o.ID); len(rs) != 1 {
		t.Fatalf("%d refunds, want 1", len(rs))
	}
}

// TestUnknownRoutes: the mux's own answers are JSON in the one error shape.
func TestUnknownRoutes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/v1/nothing", 404, "not_found", ""},
		{http.MethodGet, "/nothing", 404, "not_found", ""},
		{http.MethodDelete, "/v1/orders", 405, "method_not_allowed", "POST"},
		{http.MethodPut, "/v1/orders/o_1", 405, "method_not_allowed", "GET"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, out := h.doResp(t, tc.method, tc.path, "", nil)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(resp.Header.Get("Allow"), tc.allow) {
				t.Fatalf("%d %s %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"), out)
			}
			if e := decodeError(t, out); e.Error.Code != tc.code {
				t.Errorf("code %q, want %q", e.Error.Code, tc.code)
			}
		})
	}
}
