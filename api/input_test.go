package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/engine"
)

// TestStrictInput: bodies, headers and query parameters of /v1 are read
// strictly, every problem of a request reported at once in the one error
// shape, none phrased by Go's JSON parser.
func TestStrictInput(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 100, "v2")
	refunds := "/v1/orders/" + string(o.ID) + "/refunds"
	ok := `"description":"d","openid":"o1","pay_api":"v2"`
	type problem struct{ field, code string }
	tests := []struct {
		name, method, path, contentType, body string
		header                                []string
		status                                int
		code                                  string
		problems                              []problem
	}{
		{name: "no-cors form body", path: "/v1/orders", contentType: "text/plain", body: `{"amount_fen":1,` + ok + `}`,
			status: 415, code: "unsupported_media_type"},
		{name: "no content type", path: "/v1/orders", body: `{"amount_fen":1,` + ok + `}`, status: 415, code: "unsupported_media_type"},
		{name: "form", path: "/v1/orders", contentType: "application/x-www-form-urlencoded", body: "amount_fen=1", status: 415, code: "unsupported_media_type"},
		{name: "json with a prefix", path: "/v1/orders", contentType: "application/jsonx", body: `{"amount_fen":1,` + ok + `}`, status: 415, code: "unsupported_media_type"},
		{name: "refund as text/plain", path: refunds, contentType: "text/plain", body: `{"amount_fen":1}`, status: 415, code: "unsupported_media_type"},
		{name: "close as text/plain", path: "/v1/orders/" + string(o.ID) + "/close", contentType: "text/plain", body: `{}`, status: 415, code: "unsupported_media_type"},
		{name: "case-variant key", path: "/v1/orders", body: `{"amount_fen":1,"AMOUNT_FEN":777,` + ok + `}`,
			status: 422, code: "invalid_fields", problems: []problem{{"AMOUNT_FEN", "unknown_field"}}},
		{name: "duplicate key", path: "/v1/orders", body: `{"amount_fen":1,"amount_fen":777,` + ok + `}`,
			status: 422, code: "invalid_fields", problems: []problem{{"amount_fen", "duplicate_field"}}},
		{name: "duplicate key, escaped", path: "/v1/orders", body: `{"amount_fen":1,"amount\u005ffen":777,` + ok + `}`,
			status: 422, code: "invalid_fields", problems: []problem{{"amount_fen", "duplicate_field"}}},
		{name: "duplicate refund amount", path: refunds, body: `{"amount_fen":1,"amount_fen":100}`,
			status: 422, code: "invalid_fields", problems: []problem{{"amount_fen", "duplicate_field"}}},
		{name: "ESC in description", path: "/v1/orders", body: `{"amount_fen":1,"description":"tea\u001b[31m","openid":"o1","pay_api":"v2"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"description", "control_character"}}},
		{name: "newline in refund reason", path: refunds, body: `{"amount_fen":1,"reason":"a\nb"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"reason", "control_character"}}},
		{name: "invalid UTF-8", path: "/v1/orders", body: "{\"amount_fen\":1,\"description\":\"\xff\",\"openid\":\"o1\",\"pay_api\":\"v2\"}",
			status: 422, code: "invalid_fields", problems: []problem{{"description", "control_character"}}},
		{name: "long description", path: "/v1/orders", body: `{"amount_fen":1,"description":"` + strings.Repeat("茶", 43) + `","openid":"o1","pay_api":"v2"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"description", "too_long"}}},
		{name: "long reason", path: refunds, body: `{"amount_fen":1,"reason":"` + strings.Repeat("r", 81) + `"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"reason", "too_long"}}},
		{name: "string amount", path: "/v1/orders", body: `{"amount_fen":"100",` + ok + `}`,
			status: 422, code: "invalid_fields", problems: []problem{{"amount_fen", "not_integer"}}},
		{name: "number description", path: "/v1/orders", body: `{"amount_fen":1,"description":5,"openid":"o1","pay_api":"v2"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"description", "wrong_type"}}},
		{name: "bad client_ip", path: "/v1/orders", body: `{"amount_fen":1,"client_ip":"1.2.3.4; DROP",` + ok + `}`,
			status: 422, code: "invalid_fields", problems: []problem{{"client_ip", "invalid_format"}}},
		{name: "openid with a space", path: "/v1/orders", body: `{"amount_fen":1,"description":"d","openid":"o 1","pay_api":"v2"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"openid", "invalid_format"}}},
		{name: "non-ASCII Idempotency-Key", path: "/v1/orders", body: `{"amount_fen":1,` + ok + `}`, header: []string{"Idempotency-Key", "clé-1"},
			status: 422, code: "invalid_fields", problems: []problem{{"Idempotency-Key", "invalid_format"}}},
		{name: "every problem at once", path: "/v1/orders",
			body:   `{"amount_fen":19.9,"description":"","pay_api":"v4","client":"app","expires_in_seconds":-1,"Openid":"o1","x":1,"x":2}`,
			status: 422, code: "invalid_fields", problems: []problem{{"x", "duplicate_field"}, {"amount_fen", "not_integer"}, {"Openid", "unknown_field"},
				{"x", "unknown_field"}, {"description", "required"}, {"openid", "required"}, {"pay_api", "invalid_value"},
				{"client", "invalid_value"}, {"expires_in_seconds", "out_of_range"}}},
		{name: "refund: every problem at once", path: refunds, body: `{"amount_fen":0,"reason":"\u0007","out_refund_no":"no!"}`,
			status: 422, code: "invalid_fields", problems: []problem{{"amount_fen", "out_of_range"}, {"reason", "control_character"}, {"out_refund_no", "invalid_format"}}},
		{name: "close with a field", path: "/v1/orders/" + string(o.ID) + "/close", body: `{"force":true}`,
			status: 422, code: "invalid_fields", problems: []problem{{"force", "unknown_field"}}},
		{name: "array body", path: "/v1/orders", body: `[1]`, status: 400, code: "malformed_request"},
		{name: "truncated", path: "/v1/orders", body: `{"amount_fen":1,`, status: 400, code: "malformed_request"},
		{name: "JS-SDK page elsewhere", method: http.MethodGet, path: "/v1/jssdk/config?url=https%3A%2F%2Fevil.example%2Fpay", status: 422, code: "invalid_fields",
			problems: []problem{{"url", "domain_not_allowed"}}},
		{name: "JS-SDK page, not a URL", method: http.MethodGet, path: "/v1/jssdk/config?url=shop.example", status: 422, code: "invalid_fields",
			problems: []problem{{"url", "invalid_format"}}},
		{name: "redirect elsewhere", method: http.MethodGet, path: "/v1/oauth/authorize?redirect_uri=https%3A%2F%2Fshop.example.evil.example%2Fcb&scope=all&state=a%20b",
			status: 422, code: "invalid_fields", problems: []problem{{"redirect_uri", "domain_not_allowed"}, {"scope", "invalid_value"}, {"state", "invalid_format"}}},
		{name: "redirect with user info", method: http.MethodGet, path: "/v1/oauth/authorize?redirect_uri=https%3A%2F%2Fevil%40shop.example%2Fcb",
			status: 422, code: "invalid_fields", problems: []problem{{"redirect_uri", "invalid_format"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, ct := tc.method, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" && method == http.MethodPost && !strings.HasPrefix(tc.name, "no content type") {
				ct = "application/json"
			}
			status, out := h.do(t, method, tc.path, ct, []byte(tc.body), tc.header...)
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, out, tc.status)
			}
			e := decodeError(t, out)
			if e.Error.Code != tc.code {
				t.Errorf("code %q, want %q", e.Error.Code, tc.code)
			}
			var got []problem
			for _, p := range e.Error.Problems {
				got = append(got, problem{p.Field, p.Code})
				if p.Reason == "" {
					t.Errorf("problem %+v without a reason", p)
				}
			}
			if !slices.Equal(got, tc.problems) {
				t.Errorf("problems %v, want %v", got, tc.problems)
			}
			for _, leak := range []string{"Go struct", "cannot unmarshal", "json:", "int64", "api.", "engine."} {
				if strings.Contains(string(out), leak) {
					t.Errorf("the answer says %q: %s", leak, out)
				}
			}
		})
	}
	if n, _ := h.store.CountOrders(context.Background()); n != 1 {
		t.Errorf("%d orders, want only the harness's one", n)
	}
	if rs, _ := h.store.Refunds(context.Background(), o.ID); len(rs) != 0 {
		t.Errorf("refunds %+v", rs)
	}
}

// TestStrictInputAccepts: what the strict reading must still take.
func TestStrictInputAccepts(t *testing.T) {
	h := newHarness(t)
	tests := []struct{ name, contentType, body string }{
		{"charset parameter", "application/json; charset=utf-8", `{"amount_fen":1,"description":"d","openid":"o1","pay_api":"v2"}`},
		{"upper-case media type", "Application/JSON", `{"amount_fen":2,"description":"d","openid":"o1","pay_api":"v2"}`},
		{"every field", "application/json", `{"amount_fen":3,"description":"茶 · tea","out_trade_no":"SHOP-0000001","oauth_code":"CODE1",` +
			`"pay_api":"v3","client":"jsapi","client_ip":"2001:db8::1","expires_in_seconds":600}`},
		{"description of 127 bytes", "application/json", `{"amount_fen":4,"description":"` + strings.Repeat("d", 127) + `","openid":"o1","pay_api":"v2"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := h.do(t, http.MethodPost, "/v1/orders", tc.contentType, []byte(tc.body))
			if status != http.StatusCreated {
				t.Fatalf("%d %s", status, out)
			}
		})
	}
	o := h.prepaid(t, 100, "v2")
	if s, out := h.do(t, http.MethodPost, "/v1/orders/"+string(o.ID)+"/close", "application/json", nil); s != http.StatusAccepted {
		t.Fatalf("close without a body: %d %s", s, out)
	}
	if got := h.state(t, o.ID); got.State != engine.Prepaid && got.State != engine.Closed {
		t.Fatalf("state %s", got.State)
	}
}
