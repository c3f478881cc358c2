package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// merchantsHarness is the harness serving, besides its default merchant,
// the simulator's dev merchants but default (second, and provider's two
// sub-merchants) and one merchant whose folder is broken.
func merchantsHarness(t *testing.T) (*harness, *wechat.Registry) {
	t.Helper()
	keys, err := sim.EnsureMerchants(t.TempDir(), sim.DevMerchants())
	if err != nil {
		t.Fatal(err)
	}
	reg := keys.Registry
	h, _ := startHarness(t, func(cfg *api.Config) {
		for _, m := range reg.Merchants() {
			if m.Name == "default" {
				continue // the harness's own
			}
			c2, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
			c3, _ := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
			cfg.Merchants = append(cfg.Merchants, api.Merchant{Merchant: m, V2: c2, V3: c3})
		}
		cfg.Broken = map[string]error{"broken": errors.New("apiclient_key.pem: no such file")}
	})
	return h, reg
}

// A shop's order is for a merchant it acts for and an app of that merchant
// of the payer's kind: every other combination is refused before the
// engine hears of it.
func TestCreateOrderMerchantAndApp(t *testing.T) {
	h, reg := merchantsHarness(t)
	multi := h.addShop(t, "multi", "default", "second", "provider-sub1", "provider-sub2", "broken", "nosuch")
	solo := h.addShop(t, "solo", "second")
	two := h.addShop(t, "two", "second", "provider-sub1")
	app := func(merchant string, kind wechat.AppKind) string {
		t.Helper()
		m, err := reg.Merchant(merchant)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := m.AppFor(kind)
		if !ok {
			t.Fatalf("%s has no %s app", merchant, kind)
		}
		return a.AppID
	}
	second, sub1 := app("second", wechat.AppOfficialAccount), app("provider-sub1", wechat.AppMiniProgram)
	providerOA := app("provider-sub2", wechat.AppOfficialAccount)
	const pay = `"amount_fen":100,"description":"d","pay_api":"v3"`
	tests := []struct {
		name, key, body string
		status          int
		code, field     string // the error's code; the problem's field
		merchant, appid string // of the order made
	}{
		{name: "default when the shop acts for it", key: multi, body: `{` + pay + `,"openid":"o1"}`, status: 201, merchant: "default", appid: h.keys.Merchant.AppID},
		{name: "the shop's only merchant", key: solo, body: `{` + pay + `,"openid":"o1"}`, status: 201, merchant: "second", appid: second},
		{name: "a merchant the shop may not act for", key: solo, body: `{` + pay + `,"merchant":"default","openid":"o1"}`, status: 403, code: "merchant_not_allowed"},
		{name: "several merchants, none named", key: two, body: `{` + pay + `,"openid":"o1"}`, status: 422, code: "invalid_fields", field: "merchant"},
		{name: "a broken merchant", key: multi, body: `{` + pay + `,"merchant":"broken","openid":"o1"}`, status: 503, code: "merchant_unavailable"},
		{name: "a merchant not configured", key: multi, body: `{` + pay + `,"merchant":"nosuch","openid":"o1"}`, status: 422, code: "invalid_fields", field: "merchant"},
		{name: "a bad merchant name", key: multi, body: `{` + pay + `,"merchant":"No Such","openid":"o1"}`, status: 422, code: "invalid_fields", field: "merchant"},
		{name: "another merchant's app", key: multi, body: `{` + pay + `,"merchant":"second","appid":"` + sub1 + `","openid":"o1"}`, status: 422, code: "invalid_fields", field: "appid"},
		{name: "a login_code in an Official Account", key: multi, body: `{` + pay + `,"merchant":"second","appid":"` + second + `","login_code":"c1"}`, status: 422, code: "invalid_fields", field: "appid"},
		{name: "a login_code without a mini-program", key: multi, body: `{` + pay + `,"merchant":"provider-sub2","login_code":"c1"}`, status: 422, code: "invalid_fields", field: "appid"},
		{name: "a sub-merchant's mini-program", key: multi, body: `{` + pay + `,"merchant":"provider-sub1","login_code":"c1"}`, status: 201, merchant: "provider-sub1", appid: sub1},
		{name: "a sub-merchant's payer in its provider's Official Account", key: multi, body: `{` + pay + `,"merchant":"provider-sub1","oauth_code":"c2"}`, status: 201, merchant: "provider-sub1", appid: providerOA},
		{name: "the provider's app named", key: multi, body: `{` + pay + `,"merchant":"provider-sub2","appid":"` + providerOA + `","openid":"o2"}`, status: 201, merchant: "provider-sub2", appid: providerOA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := h.do(t, http.MethodPost, "/v1/orders", "application/json", []byte(tc.body), "Authorization", "Bearer "+tc.key)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, out)
			}
			if strings.Contains(string(out), "apiclient_key") {
				t.Errorf("the answer tells a shop about the merchant's key files: %s", out)
			}
			if tc.code != "" {
				e := decodeError(t, out).Error
				if e.Code != tc.code {
					t.Fatalf("code %q, want %q: %s", e.Code, tc.code, out)
				}
				if tc.field != "" && (len(e.Problems) != 1 || e.Problems[0].Field != tc.field) {
					t.Fatalf("problems %+v, want one on %s", e.Problems, tc.field)
				}
				return
			}
			var v struct{ Order engine.Order }
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatal(err)
			}
			if o := v.Order; o.Merchant != tc.merchant || o.AppID != tc.appid {
				t.Fatalf("order of %s in %s, want %s in %s", v.Order.Merchant, v.Order.AppID, tc.merchant, tc.appid)
			}
		})
	}
}

// A notification is verified with the keys of the merchant whose path it
// came on, and pays only that merchant's order.
func TestNotificationOfAnotherMerchant(t *testing.T) {
	h, _ := merchantsHarness(t)
	o := h.prepaid(t, 1000, "v2")
	genuine := h.v2Notification(o, 1000, nil)
	for _, tc := range []struct {
		path string
		why  api.Refusal
	}{
		{"/wechat/notify/second/v2/pay", api.RefusedSignature},        // default's key is not second's
		{"/wechat/notify/provider-sub1/v2/pay", api.RefusedSignature}, // nor the provider's
		{"/wechat/notify/broken/v2/pay", api.RefusedRequest},
		{"/wechat/notify/nosuch/v2/pay", api.RefusedRequest},
	} {
		before := h.srv.Counters.NotificationsRefused[tc.why].Load()
		if status, _ := h.public(t, http.MethodPost, tc.path, "text/xml", genuine); status != http.StatusOK {
			t.Fatalf("%s: status %d", tc.path, status)
		}
		if h.srv.Counters.NotificationsRefused[tc.why].Load() != before+1 {
			t.Errorf("%s: not refused as %s", tc.path, tc.why)
		}
	}
	if got := h.state(t, o.ID); got.State != engine.Prepaid {
		t.Fatalf("another merchant's path moved the order to %s", got.State)
	}
}

// A flood of forged notifications is counted in full but logged within a
// bound: anyone may post to the public listener, and must not fill the
// logs by doing so.
func TestRefusedNotificationFloodIsLoggedWithinBound(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	o := h.prepaid(t, 1000, "v2")
	forged := h.v2Notification(o, 1000, func(p map[string]string) { p["total_fee"] = "1" })
	forged = []byte(strings.Replace(string(forged), "<total_fee><![CDATA[1]]>", "<total_fee><![CDATA[2]]>", 1)) // the signature no longer holds
	const flood = 90                                                                                            // under the public listener's rate per address
	for range flood {
		if status, _ := h.public(t, http.MethodPost, "/wechat/notify/default/v2/pay", "text/xml", forged); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	if got := h.srv.Counters.NotificationsRefused[api.RefusedSignature].Load(); got != flood {
		t.Fatalf("%d refusals counted, want %d", got, flood)
	}
	if n := strings.Count(h.logs.String(), "notification refused"); n == 0 || n > flood/2 {
		t.Fatalf("%d warnings for %d refusals: want some, far fewer", n, flood)
	}
}
