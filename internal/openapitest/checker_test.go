package openapitest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/api"
)

// answer is a canned answer of a fake server.
type answer struct {
	status int
	header map[string]string
	body   string
}

// TestCheckerCatchesMismatches: the Checker tells a matching exchange from
// each kind of mismatch; a Checker that passed everything would make every
// test that uses it pass for nothing.
func TestCheckerCatchesMismatches(t *testing.T) {
	json := map[string]string{"Content-Type": "application/json", "X-Request-Id": "req_1"}
	with := func(extra ...string) map[string]string {
		h := map[string]string{}
		for k, v := range json {
			h[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	key := []string{"Authorization", "Bearer wxs_k_s"}
	tests := []struct {
		name               string
		listener           Listener
		method, path, body string
		header             []string
		answer             answer
		wantErr            string // "" when the exchange matches
	}{
		{name: "matches", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{200, json, `{"status":"ok"}`}},
		{name: "body off its schema", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{200, json, `{"status":"fine"}`}, wantErr: "status"},
		{name: "undocumented field", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{200, json, `{"status":"ok","extra":1}`}, wantErr: "does not match"},
		{name: "undocumented status", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{418, json, `{"status":"ok"}`}, wantErr: "418"},
		{name: "wrong content type", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{200, map[string]string{"Content-Type": "text/html", "X-Request-Id": "r"}, `ok`}, wantErr: "does not match"},
		{name: "no X-Request-Id", listener: Internal, method: "GET", path: "/healthz",
			answer: answer{200, map[string]string{"Content-Type": "application/json"}, `{"status":"ok"}`}, wantErr: "X-Request-Id"},
		{name: "429 without Retry-After", listener: Internal, method: "GET", path: "/v1/orders/o_1", header: key,
			answer: answer{429, json, `{"error":{"code":"rate_limited","reason":"slow down"}}`}, wantErr: "Retry-After"},
		{name: "429 with Retry-After", listener: Internal, method: "GET", path: "/v1/orders/o_1", header: key,
			answer: answer{429, with("Retry-After", "2"), `{"error":{"code":"rate_limited","reason":"slow down"}}`}},
		{name: "error code of another status", listener: Internal, method: "GET", path: "/v1/orders/o_1", header: key,
			answer: answer{404, json, `{"error":{"code":"rate_limited","reason":"r"}}`}, wantErr: "does not match"},
		{name: "invalid_fields without problems", listener: Internal, method: "GET", path: "/v1/jssdk/config?url=x", header: key,
			answer: answer{422, json, `{"error":{"code":"invalid_fields","reason":"r"}}`}, wantErr: "does not match"},
		{name: "a time that is not RFC 3339", listener: Internal, method: "GET", path: "/v1/orders/o_1/refunds/rf-000001", header: key,
			answer: answer{200, json, `{"order_id":"o_1","out_refund_no":"rf-000001","amount_fen":1,"reason":"","status":"queued",` +
				`"created_at":"yesterday","updated_at":"2026-11-30T02:13:22.437060986Z"}`}, wantErr: "created_at"},
		{name: "a client_ip that is no IP, answered 2xx", listener: Internal, method: "POST", path: "/v1/orders",
			header: append([]string{"Content-Type", "application/json"}, key...), body: `{"amount_fen":1,"description":"d","openid":"o","pay_api":"v2","client_ip":"1.2.3.4; DROP"}`,
			answer: answer{201, json, `{"order":{}}`}, wantErr: "calls the request invalid"},
		{name: "invalid request answered 2xx", listener: Internal, method: "POST", path: "/v1/orders",
			header: append([]string{"Content-Type", "application/json"}, key...), body: `{"amount_fen":1.5,"description":"d","openid":"o","pay_api":"v2"}`,
			answer: answer{201, json, `{"order":{}}`}, wantErr: "calls the request invalid"},
		{name: "invalid request refused", listener: Internal, method: "POST", path: "/v1/orders",
			header: append([]string{"Content-Type", "application/json"}, key...), body: `{"amount_fen":1.5,"description":"d","openid":"o","pay_api":"v2"}`,
			answer: answer{422, json, `{"error":{"code":"invalid_fields","reason":"r","problems":[{"field":"amount_fen","code":"not_integer","reason":"r"}]}}`}},
		{name: "no key, refused", listener: Internal, method: "GET", path: "/v1/orders/o_1",
			answer: answer{401, with("WWW-Authenticate", `Bearer realm="wxflow"`), `{"error":{"code":"unauthenticated","reason":"a key"}}`}},
		{name: "no key, answered", listener: Internal, method: "GET", path: "/healthz?x=1", header: nil,
			answer: answer{200, json, `{"status":"ok"}`}},
		{name: "no key answered 2xx", listener: Internal, method: "GET", path: "/v1/jssdk/config?url=https%3A%2F%2Fshop.example%2F",
			answer:  answer{200, json, `{"appId":"wx1","timestamp":1,"nonceStr":"n","signature":"0123456789012345678901234567890123456789"}`},
			wantErr: "calls the request invalid"},
		{name: "unknown path, the mux's 404", listener: Internal, method: "GET", path: "/nothing",
			answer: answer{404, json, `{"error":{"code":"not_found","reason":"no such resource"}}`}},
		{name: "unknown path answered", listener: Internal, method: "GET", path: "/nothing",
			answer: answer{200, json, `{}`}, wantErr: "not in the document"},
		{name: "other method, the mux's 405", listener: Internal, method: "DELETE", path: "/v1/orders",
			answer: answer{405, with("Allow", "POST"), `{"error":{"code":"method_not_allowed","reason":"see Allow"}}`}},
		{name: "405 without Allow", listener: Internal, method: "DELETE", path: "/v1/orders",
			answer: answer{405, json, `{"error":{"code":"method_not_allowed","reason":"see Allow"}}`}, wantErr: "Allow"},
		{name: "admin page: not API", listener: Internal, method: "GET", path: "/admin/login",
			answer: answer{200, map[string]string{"Content-Type": "text/html"}, `<html>`}},
		{name: "shop API on the public listener: 404", listener: Public, method: "POST", path: "/v1/orders",
			answer: answer{404, json, `{"error":{"code":"not_found","reason":"nothing here"}}`}},
		{name: "shop API served on the public listener", listener: Public, method: "GET", path: "/readyz",
			answer: answer{200, json, `{"status":"ready"}`}, wantErr: "not in the document"},
		{name: "v2 FAIL is a refusal", listener: Public, method: "POST", path: "/wechat/notify/default/v2/pay",
			header: []string{"Content-Type", "application/json"}, body: `{}`,
			answer: answer{200, map[string]string{"Content-Type": "text/xml", "X-Request-Id": "r"},
				`<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[wrong content type]]></return_msg></xml>`}},
		{name: "v2 SUCCESS to an invalid request", listener: Public, method: "POST", path: "/wechat/notify/default/v2/pay",
			header: []string{"Content-Type", "application/json"}, body: `{}`,
			answer: answer{200, map[string]string{"Content-Type": "text/xml", "X-Request-Id": "r"},
				`<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>`}, wantErr: "calls the request invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.answer.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.answer.status)
				_, _ = w.Write([]byte(tc.answer.body))
			}))
			defer srv.Close()
			c := &Checker{listener: tc.listener}
			var err error
			if c.ops, err = operations(api.OpenAPI(), tc.listener); err != nil {
				t.Fatal(err)
			}
			if c.v, err = theValidator(); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := (&http.Client{Transport: c.Transport(nil)}).Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("a matching exchange was refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			case tc.wantErr != "" && len(c.failures) != 1:
				t.Fatalf("%d failures recorded, want 1", len(c.failures))
			}
		})
	}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		template, path string
		want           bool
	}{
		{"/v1/orders/{id}", "/v1/orders/o_1", true},
		{"/v1/orders/{id}", "/v1/orders/", false},
		{"/v1/orders/{id}", "/v1/orders/o_1/close", false},
		{"/v1/orders/{id}/close", "/v1/orders/o_1/close", true},
		{"/healthz", "/healthz", true},
		{"/healthz", "/healthz/", false},
		{"/admin/api/books/{day}", "/admin/api/books/..%2f..%2fetc", true}, // the escaped path, as the mux sees it
	}
	for _, tc := range tests {
		if got := matches(strings.Split(tc.template, "/"), strings.Split(tc.path, "/")); got != tc.want {
			t.Errorf("%s ~ %s: %v, want %v", tc.template, tc.path, got, tc.want)
		}
	}
}

// BenchmarkCheck measures the check of one exchange: GET /v1/orders/{id}
// answered with an order, its history and a refund.
func BenchmarkCheck(b *testing.B) {
	c := &Checker{listener: Internal}
	var err error
	if c.ops, err = operations(api.OpenAPI(), Internal); err != nil {
		b.Fatal(err)
	}
	if c.v, err = theValidator(); err != nil {
		b.Fatal(err)
	}
	const at = `"2026-11-30T02:13:22.437060986Z"`
	body := []byte(`{"order":{"id":"o_1","merchant":"default","shop":"demo","out_trade_no":"wxf1","description":"tea","amount_fen":1990,` +
		`"pay_api":"v3","client":"jsapi","openid":"oUser123","state":"refunded","transaction_id":"4200","paid_fen":1990,"refunded_fen":500,` +
		`"expires_at":` + at + `,"created_at":` + at + `,"updated_at":` + at + `,"version":7},` +
		`"history":[{"at":` + at + `,"applied":true,"type":"created","to":"created","seq":1,"event_id":"evt_1","command_id":"create:o_1","actor":"shop:demo"}],` +
		`"refunds":[{"out_refund_no":"rf-1","order_id":"o_1","amount_fen":500,"state":"succeeded","seq":1,"refund_id":"503","created_at":` + at + `,"updated_at":` + at + `}]}`)
	req := httptest.NewRequest(http.MethodGet, "http://api/v1/orders/o_1", nil)
	req.Header.Set("Authorization", "Bearer wxs_k_s")
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req_1"}}, Request: req}
	if err := c.Check(req, nil, resp, body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Check(req, nil, resp, body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCheckSchema: a value is held to a named schema of the document.
func TestCheckSchema(t *testing.T) {
	c := New(t, Internal)
	const at = `"2026-11-30T02:13:22.437060986Z"`
	order := `{"id":"o_1","merchant":"default","out_trade_no":"wxf1","description":"tea","amount_fen":1990,"pay_api":"v3","client":"jsapi",` +
		`"state":"created","paid_fen":0,"refunded_fen":0,"expires_at":` + at + `,"created_at":` + at + `,"updated_at":` + at + `,"version":1}`
	event := `{"id":"evt_1","type":"created","order_id":"o_1","seq":1,"to":"created","at":` + at + `,"command_id":"create:o_1","order":` + order + `}`
	if err := c.CheckSchema("Event", []byte(event)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"an unknown type": strings.Replace(event, `"type":"created"`, `"type":"born"`, 1),
		"a field more":    strings.Replace(event, `"seq":1`, `"seq":1,"extra":true`, 1),
		"an order short":  strings.Replace(event, `"version":1`, `"versio":1`, 1),
	} {
		if err := c.CheckSchema("Event", []byte(bad)); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
	if err := c.CheckSchema("NoSuchSchema", []byte(`{}`)); err == nil {
		t.Error("a schema the document lacks: passed")
	}
}
