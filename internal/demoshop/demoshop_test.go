package demoshop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// browser is a cookie-keeping HTTP client that trusts the simulator, as a
// payer's browser that has accepted its certificate.
type browser struct {
	t    *testing.T
	http *http.Client
	hops []*url.URL // every URL the last get went through
}

func newBrowser(t *testing.T, st *stack.Dev) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t}
	b.http = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: st.Sim.RootCAs()}},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			b.hops = append(b.hops, req.URL)
			if len(via) > 10 {
				return fmt.Errorf("%d redirects", len(via))
			}
			return nil
		}}
	return b
}

// do sends a request and returns the answer's status, body and final URL.
func (b *browser) do(method, u string, body string, header ...string) (int, string, *url.URL) {
	b.t.Helper()
	b.hops = nil
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Request.URL
}

// getJSON gets u and decodes a 200 answer into out.
func (b *browser) getJSON(u string, out any) int {
	b.t.Helper()
	status, body, _ := b.do(http.MethodGet, u, "")
	if status == http.StatusOK && out != nil {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			b.t.Fatalf("GET %s: %v: %s", u, err, body)
		}
	}
	return status
}

// status is the demo shop's answer to its page's poll.
type status struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	AmountFen   int64  `json:"amount_fen"`
	PaidFen     int64  `json:"paid_fen"`
	RefundedFen int64  `json:"refunded_fen"`
	Client      string `json:"client"`
	Paid        bool   `json:"paid"`
	PaidBy      *struct {
		Actor string `json:"actor"`
	} `json:"paid_by"`
	Refunds []struct {
		OutRefundNo string `json:"out_refund_no"`
		Status      string `json:"status"`
	} `json:"refunds"`
}

// bridge calls the simulator's WeixinJSBridge as its script does.
func bridge(t *testing.T, b *browser, st *stack.Dev, call map[string]any) sim.BridgeAnswer {
	t.Helper()
	raw, _ := json.Marshal(call)
	status, body, _ := b.do(http.MethodPost, st.SimURL+"/sim/jsbridge/invoke", string(raw), "Content-Type", "application/json")
	var a sim.BridgeAnswer
	if status != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("bridge %v: HTTP %d %s", call["name"], status, body)
	}
	return a
}

func TestShop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = time.Minute, time.Minute
	sdk := filepath.Join(t.TempDir(), "index.js")
	if err := os.WriteFile(sdk, []byte("module.exports = { config: function () {} };\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		DemoShopAddr: "127.0.0.1:0", DemoShopJSSDK: sdk, Sim: sim.Config{TimeScale: 0.01}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	shop := strings.TrimSuffix(st.DemoShopURL, "/demo/")
	origin := "Origin"
	payer := newBrowser(t, st)

	// buy walks the Official Account flow up to the order's page: the shop,
	// WeChat's OAuth (the simulator) and back. It returns the order's page
	// URL and the OAuth callback's URL.
	buy := func(b *browser, item, api string) (*url.URL, *url.URL) {
		t.Helper()
		code, body, final := b.do(http.MethodGet, shop+"/demo/buy?item="+item+"&api="+api, "")
		if code != http.StatusOK || !strings.HasPrefix(final.Path, "/demo/orders/o_") {
			t.Fatalf("buy: HTTP %d at %s: %s", code, final, body)
		}
		var back *url.URL
		for _, h := range b.hops {
			if h.Path == "/demo/back" {
				back = h
			}
		}
		if len(b.hops) != 3 || !strings.HasPrefix(b.hops[0].String(), st.SimURL+"/connect/oauth2/authorize?") || back == nil {
			t.Fatalf("buy went through %v, want the simulator's OAuth page, /demo/back, the order", b.hops)
		}
		return final, back
	}
	poll := func(b *browser, id string, done func(status) error) status {
		t.Helper()
		var s status
		enginetest.WaitFor(t, 30*time.Second, func() error {
			if code := b.getJSON(shop+"/demo/api/orders/"+id, &s); code != http.StatusOK {
				return fmt.Errorf("HTTP %d", code)
			}
			return done(s)
		})
		return s
	}
	signed := func(s status) error {
		if s.State != "signed" {
			return fmt.Errorf("order %s", s.State)
		}
		return nil
	}

	if code, body, _ := payer.do(http.MethodGet, st.DemoShopURL, ""); code != http.StatusOK || !strings.Contains(body, "Green tea") {
		t.Fatalf("front page: HTTP %d", code)
	}
	page, back := buy(payer, "green-tea", "v3")
	id := strings.TrimPrefix(page.Path, "/demo/orders/")

	t.Run("JS-SDK flow: config, pay, paid by the notification, refund", func(t *testing.T) {
		if s := poll(payer, id, signed); s.Paid || s.AmountFen != 1990 || s.Client != "jsapi" {
			t.Fatalf("before paying: %+v", s)
		}
		// wx.config: the shop signs this page; the simulator's bridge agrees.
		var cfg struct {
			AppID     string `json:"appId"`
			Timestamp int64  `json:"timestamp"`
			NonceStr  string `json:"nonceStr"`
			Signature string `json:"signature"`
		}
		if code := payer.getJSON(shop+"/demo/api/jssdk-config?url="+url.QueryEscape(page.String()), &cfg); code != http.StatusOK {
			t.Fatalf("jssdk-config: HTTP %d", code)
		}
		verify := map[string]any{"verifyAppId": cfg.AppID, "verifySignType": "sha1", "verifyTimestamp": strconv.FormatInt(cfg.Timestamp, 10),
			"verifyNonceStr": cfg.NonceStr, "verifySignature": cfg.Signature}
		if a := bridge(t, payer, st, map[string]any{"name": "preVerifyJSAPI", "params": verify, "url": page.String() + "#top"}); a.ErrMsg != "preVerifyJSAPI:ok" {
			t.Fatalf("preVerifyJSAPI: %+v", a)
		}
		// wx.chooseWXPay: what the JS-SDK hands the bridge.
		var pp map[string]map[string]string
		if code := payer.getJSON(shop+"/demo/api/orders/"+id+"/pay-params", &pp); code != http.StatusOK {
			t.Fatalf("pay-params: HTTP %d", code)
		}
		c := pp["choose_wx_pay"]
		params := map[string]any{"timeStamp": c["timestamp"], "nonceStr": c["nonceStr"], "package": c["package"], "paySign": c["paySign"],
			"signType": c["signType"], "appId": cfg.AppID}
		if a := bridge(t, payer, st, map[string]any{"name": "getBrandWCPayRequest", "params": params}); a.Sheet == nil || a.Sheet.AmountFen != 1990 {
			t.Fatalf("the pay sheet: %+v", a)
		}
		if a := bridge(t, payer, st, map[string]any{"name": "getBrandWCPayRequest", "params": params, "choice": "ok"}); a.ErrMsg != "get_brand_wcpay_request:ok" {
			t.Fatalf("pay: %+v", a)
		}
		s := poll(payer, id, func(s status) error {
			if !s.Paid {
				return fmt.Errorf("not paid: %s", s.State)
			}
			return nil
		})
		if s.PaidBy == nil || s.PaidBy.Actor != "wechat:notify" || s.PaidFen != 1990 {
			t.Fatalf("paid: %+v", s)
		}
		// Refund: twice, as a double click does; one refund.
		for range 2 {
			code, body, _ := payer.do(http.MethodPost, shop+"/demo/api/orders/"+id+"/refund", "{}", "Content-Type", "application/json", origin, shop)
			if code != http.StatusOK || !strings.Contains(body, `"out_refund_no":"dr`) {
				t.Fatalf("refund: HTTP %d %s", code, body)
			}
		}
		s = poll(payer, id, func(s status) error {
			if s.State != "refunded" || s.RefundedFen != 1990 {
				return fmt.Errorf("order %s, refunded %d", s.State, s.RefundedFen)
			}
			return nil
		})
		if len(s.Refunds) != 1 || s.Refunds[0].Status != "succeeded" {
			t.Fatalf("refunds: %+v", s.Refunds)
		}
		code, body, _ := payer.do(http.MethodPost, shop+"/demo/api/orders/"+id+"/refund", "{}", "Content-Type", "application/json", origin, shop)
		if code != http.StatusConflict || !strings.Contains(body, "nothing_to_refund") {
			t.Fatalf("refund of a refunded order: HTTP %d %s", code, body)
		}
	})

	t.Run("the OAuth callback again is the same order", func(t *testing.T) {
		code, _, final := payer.do(http.MethodGet, back.String(), "")
		if code != http.StatusOK || final.Path != page.Path {
			t.Fatalf("the callback again: HTTP %d at %s, want %s", code, final, page.Path)
		}
	})

	t.Run("another browser sees nothing", func(t *testing.T) {
		other := newBrowser(t, st)
		for _, u := range []string{"/demo/orders/" + id, "/demo/api/orders/" + id, "/demo/api/orders/" + id + "/pay-params"} {
			if code, _, _ := other.do(http.MethodGet, shop+u, ""); code != http.StatusNotFound {
				t.Errorf("GET %s from another browser: HTTP %d", u, code)
			}
		}
		if code, _, _ := other.do(http.MethodPost, shop+"/demo/api/orders/"+id+"/refund", "{}", "Content-Type", "application/json", origin, shop); code != http.StatusNotFound {
			t.Errorf("refund from another browser: HTTP %d", code)
		}
		// Another browser with the OAuth callback's URL (a code it stole) has
		// no state cookie: refused.
		if code, _, _ := other.do(http.MethodGet, back.String(), ""); code != http.StatusForbidden {
			t.Errorf("the callback in another browser: HTTP %d", code)
		}
	})

	t.Run("refused requests", func(t *testing.T) {
		refund := shop + "/demo/api/orders/" + id + "/refund"
		cases := []struct {
			name, method, path, body string
			header                   []string
			want                     int
		}{
			{"refund from another site", http.MethodPost, refund, "{}", []string{"Content-Type", "application/json", origin, "http://evil.example"}, http.StatusForbidden},
			{"refund with no origin", http.MethodPost, refund, "{}", []string{"Content-Type", "application/json"}, http.StatusForbidden},
			{"refund as a form", http.MethodPost, refund, "a=1", []string{"Content-Type", "application/x-www-form-urlencoded", origin, shop}, http.StatusUnsupportedMediaType},
			{"refund, cross-site fetch", http.MethodPost, refund, "{}", []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
			{"sign another site's page", http.MethodGet, shop + "/demo/api/jssdk-config?url=" + url.QueryEscape("http://evil.example/demo/"), "", nil, http.StatusUnprocessableEntity},
			{"sign a page outside the shop", http.MethodGet, shop + "/demo/api/jssdk-config?url=" + url.QueryEscape(shop+"/admin/"), "", nil, http.StatusUnprocessableEntity},
			{"sign a page with a user", http.MethodGet, shop + "/demo/api/jssdk-config?url=" + url.QueryEscape(strings.Replace(shop, "http://", "http://u:p@", 1)+"/demo/"), "", nil, http.StatusUnprocessableEntity},
			{"no such item", http.MethodGet, shop + "/demo/buy?item=caviar&api=v3", "", nil, http.StatusBadRequest},
			{"no such pay API", http.MethodGet, shop + "/demo/buy?item=oolong&api=v4", "", nil, http.StatusBadRequest},
			{"callback without state", http.MethodGet, shop + "/demo/back?item=oolong&api=v3&code=SIMCODEx", "", nil, http.StatusForbidden},
			{"mini-program order, unknown field", http.MethodPost, shop + "/demo/api/mp/orders", `{"item":"oolong","api":"v3","login_code":"x","amount_fen":1}`, []string{"Content-Type", "application/json", origin, shop}, http.StatusBadRequest},
			{"mini-program order, no code", http.MethodPost, shop + "/demo/api/mp/orders", `{"item":"oolong","api":"v3"}`, []string{"Content-Type", "application/json", origin, shop}, http.StatusUnprocessableEntity},
			{"mini-program order, a code WeChat never gave", http.MethodPost, shop + "/demo/api/mp/orders", `{"item":"oolong","api":"v3","login_code":"SIMCODEforged"}`, []string{"Content-Type", "application/json", origin, shop}, http.StatusCreated},
			{"no such order", http.MethodGet, shop + "/demo/api/orders/o_nope", "", nil, http.StatusNotFound},
			{"no such page", http.MethodGet, shop + "/demo/nope", "", nil, http.StatusNotFound},
		}
		for _, c := range cases {
			if code, body, _ := payer.do(c.method, c.path, c.body, c.header...); code != c.want {
				t.Errorf("%s: HTTP %d, want %d: %s", c.name, code, c.want, body)
			}
		}
	})

	t.Run("mini-program: login code, requestPayment parameters, the payer", func(t *testing.T) {
		var login struct {
			Code string `json:"code"`
		}
		code, body, _ := payer.do(http.MethodPost, st.SimURL+"/sim/login", "{}", "Content-Type", "application/json")
		if code != http.StatusOK || json.Unmarshal([]byte(body), &login) != nil {
			t.Fatalf("wx.login: HTTP %d %s", code, body)
		}
		in, _ := json.Marshal(map[string]string{"item": "milk-tea", "api": "v2", "login_code": login.Code})
		code, body, _ = payer.do(http.MethodPost, shop+"/demo/api/mp/orders", string(in), "Content-Type", "application/json", origin, shop)
		var o struct {
			ID string `json:"id"`
		}
		if code != http.StatusCreated || json.Unmarshal([]byte(body), &o) != nil {
			t.Fatalf("mini-program order: HTTP %d %s", code, body)
		}
		if code, body, _ := payer.do(http.MethodGet, shop+"/demo/orders/"+o.ID, ""); code != http.StatusOK || !strings.Contains(body, `id="mp-pay"`) || strings.Contains(body, "jsbridge.js") {
			t.Fatalf("the mini-program order's page: HTTP %d", code)
		}
		if s := poll(payer, o.ID, signed); s.Client != "miniprogram" || s.AmountFen != 880 {
			t.Fatalf("mini-program order: %+v", s)
		}
		var pp map[string]map[string]string
		payer.getJSON(shop+"/demo/api/orders/"+o.ID+"/pay-params", &pp)
		rp := pp["request_payment"]
		if rp["signType"] != "MD5" || rp["timeStamp"] == "" || rp["paySign"] == "" || rp["appId"] != "" {
			t.Fatalf("request_payment: %v", rp)
		}
		pay, _ := json.Marshal(map[string]string{"prepay_id": strings.TrimPrefix(rp["package"], "prepay_id=")})
		if code, body, _ := payer.do(http.MethodPost, st.SimURL+"/sim/pay", string(pay), "Content-Type", "application/json"); code != http.StatusOK {
			t.Fatalf("the payer: HTTP %d %s", code, body)
		}
		poll(payer, o.ID, func(s status) error {
			if !s.Paid {
				return fmt.Errorf("not paid: %s", s.State)
			}
			return nil
		})
	})

	t.Run("the page and its scripts", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, shop+"/demo/orders/"+id, nil)
		resp, err := payer.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		html, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self' "+st.SimURL) || !strings.Contains(csp, "img-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP: %s", csp)
		}
		// The bridge before the JS-SDK before the shop's script.
		bridgeAt := bytes.Index(html, []byte(st.SimURL+"/sim/jsbridge.js"))
		sdkAt := bytes.Index(html, []byte(`src="/demo/static/jweixin.js"`))
		shopAt := bytes.Index(html, []byte(`src="/demo/static/shop.js"`))
		if bridgeAt < 0 || sdkAt < bridgeAt || shopAt < sdkAt {
			t.Errorf("scripts out of order: bridge %d, JS-SDK %d, shop %d", bridgeAt, sdkAt, shopAt)
		}
		code, js, _ := payer.do(http.MethodGet, shop+"/demo/static/jweixin.js", "")
		if code != http.StatusOK || !strings.Contains(js, "module.exports = { config: function () {} };") || !strings.Contains(js, "window.wx = module.exports") {
			t.Errorf("the JS-SDK file: HTTP %d %s", code, js)
		}
		if code, _, _ := payer.do(http.MethodGet, shop+"/demo/static/shop.js", ""); code != http.StatusOK {
			t.Errorf("shop.js: HTTP %d", code)
		}
	})
}
