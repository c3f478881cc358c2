package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
)

// TestAdminWebhooks: an admin adds a shop's endpoint (its secret shown once,
// stored sealed), lists it without the secret, sees its deliveries, resends
// one or all since a time and removes it; bad input is a 4xx with a reason,
// private and non-http targets are refused, another shop's endpoint is not
// found, and nothing answers without the admin token.
func TestAdminWebhooks(t *testing.T) {
	h := newHarness(t)
	auth := []string{"Authorization", "Bearer " + adminToken}
	call := func(method, path, body string, header ...string) (int, map[string]any) {
		t.Helper()
		ct := ""
		if body != "" {
			ct = "application/json"
		}
		status, out := h.do(t, method, path, ct, []byte(body), append(header, auth...)...)
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, status, out)
		}
		return status, v
	}
	base := "/admin/api/shops/alpha/webhooks"

	if s, _ := h.do(t, http.MethodGet, base, "", nil); s != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", s)
	}
	if s, _ := h.do(t, http.MethodPost, base, "application/json", []byte(`{"url":"https://shop.example.com/h"}`), "Authorization", "Bearer nope"); s != http.StatusUnauthorized {
		t.Fatalf("adding with a wrong token: %d", s)
	}
	if s, _ := call(http.MethodGet, "/admin/api/shops/nosuch/webhooks", ""); s != http.StatusNotFound {
		t.Fatalf("unknown shop: %d", s)
	}
	if s, _ := call(http.MethodGet, "/admin/api/shops/NOT..VALID/webhooks", ""); s != http.StatusNotFound {
		t.Fatalf("malformed shop: %d", s)
	}

	for _, tc := range []struct {
		body, code string
		status     int
	}{
		{`{}`, api.ProblemRequired, 422},
		{`{"url":""}`, api.ProblemRequired, 422},
		{`{"url":1}`, api.ProblemWrongType, 422},
		{`{"url":"https://shop.example.com/h","URL":"x"}`, api.ProblemUnknownField, 422},
		{`{"url":"ftp://shop.example.com/h"}`, api.ProblemInvalidFormat, 422},
		{`{"url":"https://user:pw@shop.example.com/h"}`, api.ProblemInvalidFormat, 422},
		{`{"url":"http://127.0.0.1:8080/h"}`, api.ProblemInvalidValue, 422},
		{`{"url":"http://169.254.169.254/latest/meta-data/"}`, api.ProblemInvalidValue, 422},
		{`{"url":"http://localhost/h"}`, api.ProblemInvalidValue, 422},
		{`{"url":"https://shop.example.com/h"} x`, "malformed_request", 400},
	} {
		s, v := call(http.MethodPost, base, tc.body)
		if s != tc.status || !strings.Contains(fmt.Sprint(v), tc.code) {
			t.Errorf("add %s: %d %v, want %d %s", tc.body, s, v, tc.status, tc.code)
		}
	}
	if s, _ := h.do(t, http.MethodPost, base, "application/x-www-form-urlencoded", []byte("url=https://shop.example.com/h"), auth...); s != http.StatusUnsupportedMediaType {
		t.Errorf("a form: %d", s)
	}

	s, added := call(http.MethodPost, base, `{"url":"https://Shop.Example.com/hooks?token=abc"}`)
	if s != http.StatusCreated {
		t.Fatalf("add: %d %v", s, added)
	}
	secret, _ := added["secret"].(string)
	ep, _ := added["webhook"].(map[string]any)
	id, _ := ep["id"].(string)
	if !strings.HasPrefix(secret, engine.WebhookSecretPrefix) || id == "" || ep["url"] != "https://shop.example.com/hooks?token=abc" {
		t.Fatalf("add answered %v", added)
	}
	stored, err := h.store.WebhookEndpoint(t.Context(), "alpha", id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := stored.SigningSecret(testSecret); err != nil || got != secret || strings.Contains(stored.Sealed, secret) {
		t.Fatalf("the stored secret: %v (sealed %q)", err, stored.Sealed)
	}
	_, list := h.do(t, http.MethodGet, base, "", nil, auth...)
	if !strings.Contains(string(list), id) || strings.Contains(string(list), secret) || strings.Contains(string(list), stored.Sealed) {
		t.Fatalf("list shows a secret, or not the endpoint: %s", list)
	}

	// Another shop sees nothing of it.
	if s, _ := call(http.MethodGet, "/admin/api/shops/beta/webhooks/"+id+"/deliveries", ""); s != http.StatusNotFound {
		t.Fatalf("through another shop: %d", s)
	}
	if s, _ := call(http.MethodDelete, "/admin/api/shops/beta/webhooks/"+id, ""); s != http.StatusNotFound {
		t.Fatalf("removal through another shop: %d", s)
	}

	// An order of alpha's merchant: its events are queued for the endpoint.
	if st, _ := h.create(t, `{"amount_fen":100,"description":"d","openid":"o1","pay_api":"v3"}`); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	var page struct {
		Deliveries []engine.WebhookDelivery `json:"deliveries"`
		NextBefore int64                    `json:"next_before"`
	}
	_, out := h.do(t, http.MethodGet, base+"/"+id+"/deliveries?state=pending&limit=1", "", nil, auth...)
	if err := json.Unmarshal(out, &page); err != nil || len(page.Deliveries) != 1 || page.NextBefore == 0 || page.Deliveries[0].State != engine.WebhookPending {
		t.Fatalf("deliveries: %s", out)
	}
	_, out = h.do(t, http.MethodGet, fmt.Sprintf("%s/%s/deliveries?before=%d", base, id, page.NextBefore), "", nil, auth...)
	var rest struct{ Deliveries []engine.WebhookDelivery }
	if err := json.Unmarshal(out, &rest); err != nil || len(rest.Deliveries) != 1 || rest.Deliveries[0].EventType != engine.EventCreated {
		t.Fatalf("next page: %s", out)
	}
	for _, q := range []string{"?state=lost", "?limit=0", "?limit=501", "?limit=x", "?before=-1"} {
		if s, v := call(http.MethodGet, base+"/"+id+"/deliveries"+q, ""); s != http.StatusUnprocessableEntity {
			t.Errorf("deliveries%s: %d %v", q, s, v)
		}
	}

	// Resend.
	evt := rest.Deliveries[0].EventID
	if s, v := call(http.MethodPost, base+"/"+id+"/resend", `{"event_id":"`+evt+`"}`); s != http.StatusOK || v["resent"] != float64(1) {
		t.Fatalf("resend one: %d %v", s, v)
	}
	if s, v := call(http.MethodPost, base+"/"+id+"/resend", `{"since":"2000-01-01T00:00:00Z"}`); s != http.StatusOK || v["resent"] != float64(2) {
		t.Fatalf("resend since: %d %v", s, v)
	}
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"event_id":"evt_nosuch"}`, 404},
		{`{}`, 422},
		{`{"event_id":"` + evt + `","since":"2000-01-01T00:00:00Z"}`, 422},
		{`{"since":"yesterday"}`, 422},
		{`{"event_id":"evt with space"}`, 422},
		{`{"event_id":"` + evt + `","extra":1}`, 422},
	} {
		if s, v := call(http.MethodPost, base+"/"+id+"/resend", tc.body); s != tc.status {
			t.Errorf("resend %s: %d %v, want %d", tc.body, s, v, tc.status)
		}
	}

	// At most MaxWebhookEndpoints per shop.
	for i := 1; i < engine.MaxWebhookEndpoints; i++ {
		if s, v := call(http.MethodPost, base, fmt.Sprintf(`{"url":"https://shop.example.com/h%d"}`, i)); s != http.StatusCreated {
			t.Fatalf("add %d: %d %v", i, s, v)
		}
	}
	if s, v := call(http.MethodPost, base, `{"url":"https://shop.example.com/one-too-many"}`); s != http.StatusConflict || !strings.Contains(fmt.Sprint(v), "too_many_endpoints") {
		t.Fatalf("one too many: %d %v", s, v)
	}

	// Removal cancels what is pending.
	if s, v := call(http.MethodDelete, base+"/"+id, ""); s != http.StatusOK || v["cancelled"] != float64(2) {
		t.Fatalf("remove: %d %v", s, v)
	}
	if s, _ := call(http.MethodDelete, base+"/"+id, ""); s != http.StatusNotFound {
		t.Fatalf("removed twice: %d", s)
	}
	if s, _ := call(http.MethodPost, base+"/"+id+"/resend", `{"since":"2000-01-01T00:00:00Z"}`); s != http.StatusNotFound {
		t.Fatalf("resend to a removed endpoint: %d", s)
	}
}

// TestAdminWebhooksAllowPrivate: with WebhookAllowPrivate, an endpoint on
// loopback is accepted (wxflow dev); still only http(s), and never the
// link-local metadata service.
func TestAdminWebhooksAllowPrivate(t *testing.T) {
	h, _ := startHarness(t, func(cfg *api.Config) { cfg.WebhookAllowPrivate = true })
	auth := []string{"Authorization", "Bearer " + adminToken}
	if s, out := h.do(t, http.MethodPost, "/admin/api/shops/alpha/webhooks", "application/json", []byte(`{"url":"http://127.0.0.1:9000/h"}`), auth...); s != http.StatusCreated {
		t.Fatalf("loopback, allowed: %d %s", s, out)
	}
	for _, bad := range []string{"gopher://127.0.0.1:9000/h", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/"} {
		if s, out := h.do(t, http.MethodPost, "/admin/api/shops/alpha/webhooks", "application/json", []byte(`{"url":"`+bad+`"}`), auth...); s != http.StatusUnprocessableEntity ||
			!strings.HasPrefix(bad, "gopher") && !strings.Contains(string(out), "never allowed") {
			t.Errorf("%s: %d %s", bad, s, out)
		}
	}
}
