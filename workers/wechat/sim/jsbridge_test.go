package sim_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// clock is a settable time for the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// invoke posts one bridge call as the stand-in script does and returns the
// HTTP status and the answer.
func (w *world) invoke(t testing.TB, body any) (int, sim.BridgeAnswer, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := w.http.Post(w.url+"/sim/jsbridge/invoke", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a sim.BridgeAnswer
	_ = json.Unmarshal(raw, &a)
	return resp.StatusCode, a, string(raw)
}

// ticket fetches a jsapi_ticket as wxflow's tokens worker does.
func (w *world) ticket(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	tok, err := w.mp.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := w.mp.JSAPITicket(ctx, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	return tk.Value
}

// configParams are the preVerifyJSAPI parameters the JS-SDK sends for a
// wx.config signed for page.
func configParams(appID, ticket, page string, ts int64) map[string]any {
	c := mp.JSConfig(appID, ticket, page, time.Unix(ts, 0), "Wm3WZYTPz0wzccnW")
	return map[string]any{"verifyJsApiList": []string{"getBrandWCPayRequest"}, "appId": appID, "verifyAppId": appID,
		"verifySignType": "sha1", "verifyTimestamp": strconv.FormatInt(c.Timestamp, 10), "verifyNonceStr": c.NonceStr, "verifySignature": c.Signature}
}

func TestJSBridgePreVerify(t *testing.T) {
	clk := &clock{t: time.Unix(1414587000, 0)}
	w := newWorld(t, sim.Config{Now: clk.Now, TimeScale: 1})
	appID := w.sim.Keys().Merchant.AppID
	tk := w.ticket(t)
	const page = "http://127.0.0.1:8082/demo/orders/o_1?bridge=now"
	good := configParams(appID, tk, page, 1414587457)
	with := func(k string, v any) map[string]any {
		p := map[string]any{}
		for kk, vv := range good {
			p[kk] = vv
		}
		p[k] = v
		return p
	}
	other := configParams(appID, tk, "http://127.0.0.1:8082/demo/orders/o_1", 1414587457)
	cases := []struct {
		name   string
		params map[string]any
		url    string
		want   string // err_msg; "" for a 400
	}{
		{"signed for the page", good, page, "preVerifyJSAPI:ok"},
		{"the page's fragment is not signed", good, page + "#/pay?x=1", "preVerifyJSAPI:ok"},
		{"timestamp as a number", with("verifyTimestamp", 1414587457), page, "preVerifyJSAPI:ok"},
		{"signed for the page without its query", other, page, "preVerifyJSAPI:fail_invalid signature"},
		{"another page", good, "http://127.0.0.1:8082/demo/", "preVerifyJSAPI:fail_invalid signature"},
		{"signature in upper case", with("verifySignature", strings.ToUpper(good["verifySignature"].(string))), page, "preVerifyJSAPI:fail_invalid signature"},
		{"another app", with("verifyAppId", "wx0000000000000000"), page, "preVerifyJSAPI:fail_invalid signature"},
		{"another nonce", with("verifyNonceStr", "nonce"), page, "preVerifyJSAPI:fail_invalid signature"},
		{"timestamp missing (the SDK sends \"undefined\")", with("verifyTimestamp", "undefined"), page, "preVerifyJSAPI:fail_invalid signature"},
		{"timestamp not canonical", with("verifyTimestamp", "01414587457"), page, "preVerifyJSAPI:fail_invalid signature"},
		{"no signature", with("verifySignature", ""), page, "preVerifyJSAPI:fail_invalid signature"},
		{"relative url", good, "/demo/", ""},
		{"javascript url", good, "javascript:alert(1)", ""},
		{"signature an object", with("verifySignature", map[string]any{}), page, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, a, raw := w.invoke(t, map[string]any{"name": "preVerifyJSAPI", "params": c.params, "url": c.url})
			if c.want == "" {
				if status != http.StatusBadRequest || !strings.Contains(raw, `"error"`) {
					t.Fatalf("HTTP %d %s, want a 400", status, raw)
				}
				return
			}
			if status != http.StatusOK || a.ErrMsg != c.want {
				t.Fatalf("HTTP %d %s, want %s", status, raw, c.want)
			}
		})
	}
	// The ticket lives 7200 s; past it, the same signature is refused.
	clk.add(7201 * time.Second)
	if _, a, _ := w.invoke(t, map[string]any{"name": "preVerifyJSAPI", "params": good, "url": page}); a.ErrMsg != "preVerifyJSAPI:fail_invalid signature" || !strings.Contains(a.ErrDesc, "no live jsapi_ticket") {
		t.Fatalf("expired ticket: %+v", a)
	}
}

func TestJSBridgeMalformedCalls(t *testing.T) {
	w := newWorld(t, sim.Config{})
	for _, body := range []string{
		`not json`,
		`{"name":"preVerifyJSAPI"}`,
		`{"name":"preVerifyJSAPI","params":[]}`,
		`{"name":"preVerifyJSAPI","params":{},"url":"http://a/","extra":1}`,
		`{"name":"preVerifyJSAPI","params":{},"url":"http://a/","choice":"ok"}`,
		`{"name":"getBrandWCPayRequest","params":{},"choice":"maybe"}`,
		`{"name":"openEnterpriseChat","params":{}}`,
		`{"name":"getBrandWCPayRequest","params":{"paySign":true}}`,
	} {
		resp, err := w.http.Post(w.url+"/sim/jsbridge/invoke", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `"error"`) {
			t.Errorf("%s: HTTP %d %s, want 400 with an error", body, resp.StatusCode, raw)
		}
	}
}

func TestJSBridgePay(t *testing.T) {
	clk := &clock{t: time.Now()}
	w := newWorld(t, sim.Config{Now: clk.Now})
	ctx := context.Background()
	m := w.sim.Keys().Merchant
	ts := clk.Now().Unix()

	v3ID, err := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "tea", OutTradeNo: "JSB-V3-1", TotalFen: 1990, OpenID: "oPayer", NotifyURL: w.shop.URL + "/v3/pay"})
	if err != nil {
		t.Fatal(err)
	}
	v3Params, err := v3.PayParams(m.PrivateKey, m.AppID, v3ID, "NONCE3", ts)
	if err != nil {
		t.Fatal(err)
	}
	v2Order, err := w.v2.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "tea", OutTradeNo: "JSB-V2-1", TotalFen: 800, ClientIP: "127.0.0.1", NotifyURL: w.shop.URL + "/v2/pay", OpenID: "oPayer"})
	if err != nil {
		t.Fatal(err)
	}
	v2Params := v2.PayParams(m.AppID, v2Order.PrepayID, "NONCE2", ts, string(m.APIKey), v2.SignMD5)
	v2hOrder, err := w.v2h.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "tea", OutTradeNo: "JSB-V2H-1", TotalFen: 700, ClientIP: "127.0.0.1", NotifyURL: w.shop.URL + "/v2/pay", OpenID: "oPayer"})
	if err != nil {
		t.Fatal(err)
	}

	// with copies p with the given key=value changes ("" deletes the key).
	with := func(p map[string]string, kv ...string) map[string]any {
		out := map[string]any{}
		for k, v := range p {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(out, kv[i])
			} else {
				out[kv[i]] = kv[i+1]
			}
		}
		return out
	}
	// sdk is what wx.chooseWXPay hands the bridge: the JS-SDK sends signType
	// "SHA1" when the shop gives none, and adds the verify* fields of wx.config.
	sdk := func(p map[string]any) map[string]any {
		if _, ok := p["signType"]; !ok {
			p["signType"] = "SHA1"
		}
		p["verifyAppId"], p["verifySignType"], p["verifyTimestamp"] = p["appId"], "sha1", "1414587457"
		return p
	}
	hmacParams := v2.PayParams(m.AppID, v2hOrder.PrepayID, "NONCE2H", ts, string(m.APIKey), v2.SignHMACSHA256)
	// A page calling the bridge itself may send timeStamp as a number.
	num := sdk(with(v3Params))
	num["timeStamp"] = ts
	cases := []struct {
		name   string
		params map[string]any
		want   string // err_msg, or "sheet ¥…" for the pay sheet
	}{
		{"v3, RSA", sdk(with(v3Params)), "sheet 1990"},
		{"v3, timeStamp as a number", num, "sheet 1990"},
		{"v3, the shop forgot signType (SDK default SHA1)", sdk(with(v3Params, "signType", "")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v3, signType MD5", sdk(with(v3Params, "signType", "MD5")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v3, another nonce", sdk(with(v3Params, "nonceStr", "OTHER")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v3, paySign not base64", sdk(with(v3Params, "paySign", "!!")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v3, another appId", sdk(with(v3Params, "appId", "wx0000000000000000")), "get_brand_wcpay_request:fail_invalid appid"},
		{"unknown prepay_id", sdk(with(v3Params, "package", "prepay_id=wx0")), "get_brand_wcpay_request:fail"},
		{"package without prepay_id=", sdk(with(v3Params, "package", v3ID)), "get_brand_wcpay_request:fail"},
		{"v2, MD5", sdk(with(v2Params)), "sheet 800"},
		{"v2, paySign in lower case", sdk(with(v2Params, "paySign", strings.ToLower(v2Params["paySign"]))), "sheet 800"},
		{"v2, forgot signType", sdk(with(v2Params, "signType", "")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v2, RSA", sdk(with(v2Params, "signType", "RSA")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v2, another timeStamp", sdk(with(v2Params, "timeStamp", "1")), "get_brand_wcpay_request:fail_invalid signature"},
		{"v2 HMAC order, HMAC-SHA256", sdk(with(hmacParams)), "sheet 700"},
		{"v2 HMAC order, signed MD5", sdk(with(v2.PayParams(m.AppID, v2hOrder.PrepayID, "N", ts, string(m.APIKey), v2.SignMD5))), "get_brand_wcpay_request:fail_invalid signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, a, raw := w.invoke(t, map[string]any{"name": "getBrandWCPayRequest", "params": c.params})
			got := a.ErrMsg
			if a.Sheet != nil {
				got = "sheet " + jsonNumber(a.Sheet.AmountFen)
				if a.Sheet.MchID != m.MchID {
					t.Errorf("sheet merchant %q", a.Sheet.MchID)
				}
			}
			if status != http.StatusOK || got != c.want {
				t.Fatalf("HTTP %d %s, want %s", status, raw, c.want)
			}
		})
	}

	state := func(outTradeNo string) string {
		for _, o := range w.sim.Snapshot().Orders {
			if o.OutTradeNo == outTradeNo {
				b, _ := json.Marshal(o)
				var v struct {
					State string `json:"trade_state"`
				}
				_ = json.Unmarshal(b, &v)
				return v.State
			}
		}
		return ""
	}
	pay := func(p map[string]any, choice string) sim.BridgeAnswer {
		t.Helper()
		_, a, _ := w.invoke(t, map[string]any{"name": "getBrandWCPayRequest", "params": p, "choice": choice})
		return a
	}
	// The payer's choices: cancel changes nothing, a refused card leaves the
	// order PAYERROR (payable again), ok pays and WeChat notifies.
	if a := pay(sdk(with(v3Params)), "cancel"); a.ErrMsg != "get_brand_wcpay_request:cancel" || state("JSB-V3-1") != "NOTPAY" {
		t.Fatalf("cancel: %+v, order %s", a, state("JSB-V3-1"))
	}
	if a := pay(sdk(with(v3Params)), "fail"); a.ErrMsg != "get_brand_wcpay_request:fail" || state("JSB-V3-1") != "PAYERROR" {
		t.Fatalf("refused card: %+v, order %s", a, state("JSB-V3-1"))
	}
	if a := pay(sdk(with(v3Params, "signType", "")), "ok"); a.ErrMsg != "get_brand_wcpay_request:fail_invalid signature" || state("JSB-V3-1") != "PAYERROR" {
		t.Fatalf("ok with a bad signature: %+v, order %s", a, state("JSB-V3-1"))
	}
	if a := pay(sdk(with(v3Params)), "ok"); a.ErrMsg != "get_brand_wcpay_request:ok" {
		t.Fatalf("ok: %+v", a)
	}
	w.waitFor(t, "v3-pay JSB-V3-1:SUCCESS")
	if a := pay(sdk(with(v3Params)), ""); a.ErrMsg != "get_brand_wcpay_request:fail" || !strings.Contains(a.ErrDesc, "paid") {
		t.Fatalf("paying a paid order again: %+v", a)
	}
	if a := pay(sdk(with(v2Params)), "ok"); a.ErrMsg != "get_brand_wcpay_request:ok" {
		t.Fatalf("v2 ok: %+v", a)
	}
	w.waitFor(t, "v2-pay JSB-V2-1")
	// A closed order, and one past the prepay's 2 hours, cannot be paid.
	if err := w.v2h.CloseOrder(ctx, "JSB-V2H-1"); err != nil {
		t.Fatal(err)
	}
	if a := pay(sdk(with(hmacParams)), ""); a.ErrMsg != "get_brand_wcpay_request:fail" || !strings.Contains(a.ErrDesc, "closed") {
		t.Fatalf("closed: %+v", a)
	}
	late, err := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "tea", OutTradeNo: "JSB-V3-2", TotalFen: 5, OpenID: "oPayer", NotifyURL: w.shop.URL + "/v3/pay"})
	if err != nil {
		t.Fatal(err)
	}
	lateParams, _ := v3.PayParams(m.PrivateKey, m.AppID, late, "NONCE", ts)
	clk.add(sim.PrepayLifetime + time.Second)
	if a := pay(sdk(with(lateParams)), ""); a.ErrMsg != "get_brand_wcpay_request:fail" || !strings.Contains(a.ErrDesc, "expired") {
		t.Fatalf("expired prepay: %+v", a)
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestJSBridgeScriptAndCORS(t *testing.T) {
	w := newWorld(t, sim.Config{})
	resp, err := w.http.Get(w.url + "/sim/jsbridge.js")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("script: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"window.WeixinJSBridge = bridge", "WeixinJSBridgeReady", "/sim/jsbridge/invoke", "getNetworkType"} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("the script lacks %q", want)
		}
	}
	// The JS-SDK returns an existing window.jWeixin instead of building itself.
	for _, never := range []string{"window.wx =", "window.jWeixin =", "window.wx=", "window.jWeixin="} {
		if bytes.Contains(js, []byte(never)) {
			t.Errorf("the script sets %q", never)
		}
	}
	preflight := func(path string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, w.url+path, nil)
		req.Header.Set("Origin", "http://127.0.0.1:8082")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := w.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, p := range []string{"/sim/jsbridge/invoke", "/sim/pay", "/sim/login"} {
		r := preflight(p)
		if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Errorf("preflight %s: HTTP %d %v", p, r.StatusCode, r.Header)
		}
	}
	// What a page has no business changing stays closed to other origins.
	for _, p := range []string{"/sim/faults", "/sim/oauth/code", "/v3/pay/transactions/jsapi"} {
		if r := preflight(p); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %s allows other origins: %v", p, r.Header)
		}
	}
	resp, err = w.http.Post(w.url+"/sim/login", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("POST /sim/login answers without CORS: %v", resp.Header)
	}
}

// FuzzJSBridgeInvoke feeds arbitrary bodies to POST /sim/jsbridge/invoke,
// the simulator's one parser of a browser page's input. The simulator holds
// a live jsapi_ticket and an unpaid v3 prepay. Every answer is a 400 with an
// error or a 200 with a result; and nothing the fuzzer writes passes a check
// it should fail: a config "ok" carries the SHA-1 of the live ticket for
// its url, and a payment "ok" or a pay sheet carries the merchant's RSA
// signature over its appId, timeStamp, nonceStr and package.
func FuzzJSBridgeInvoke(f *testing.F) {
	w := newWorld(f, sim.Config{})
	m := w.sim.Keys().Merchant
	tk := w.ticket(f)
	id, err := w.v3.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "tea", OutTradeNo: "FUZZ-1", TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
	if err != nil {
		f.Fatal(err)
	}
	pp, _ := v3.PayParams(m.PrivateKey, m.AppID, id, "N", 1700000000)
	const page = "http://127.0.0.1/demo/"
	for _, body := range []any{
		map[string]any{"name": "preVerifyJSAPI", "params": configParams(m.AppID, tk, page, 1414587457), "url": page + "#x"},
		map[string]any{"name": "getBrandWCPayRequest", "params": pp},
		map[string]any{"name": "getBrandWCPayRequest", "params": pp, "choice": "cancel"},
	} {
		b, _ := json.Marshal(body)
		f.Add(b)
	}
	h := w.sim
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/sim/jsbridge/invoke", bytes.NewReader(body)))
		var in struct {
			Name   string         `json:"name"`
			URL    string         `json:"url"`
			Params map[string]any `json:"params"`
			Choice string         `json:"choice"`
		}
		switch rec.Code {
		case http.StatusBadRequest:
			if !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("400 without an error: %s", rec.Body)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
		var a sim.BridgeAnswer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || (a.ErrMsg == "") == (a.Sheet == nil) {
			t.Fatalf("answer %s: %v", rec.Body, err)
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("a 200 for a body that is not one call: %q", body)
		}
		str := func(k string) string {
			switch v := in.Params[k].(type) {
			case string:
				return v
			case float64:
				b, _ := json.Marshal(v)
				return string(b)
			}
			return ""
		}
		switch {
		case a.ErrMsg == "preVerifyJSAPI:ok":
			u, _, _ := strings.Cut(in.URL, "#")
			var ts int64
			_ = json.Unmarshal([]byte(str("verifyTimestamp")), &ts)
			if str("verifyAppId") != m.AppID || mp.JSSDKSignature(tk, str("verifyNonceStr"), ts, u) != str("verifySignature") {
				t.Fatalf("config ok for a signature that is not the ticket's: %q", body)
			}
		case a.ErrMsg == "get_brand_wcpay_request:ok" || a.Sheet != nil:
			msg := str("appId") + "\n" + str("timeStamp") + "\n" + str("nonceStr") + "\n" + str("package") + "\n"
			sig, _ := base64.StdEncoding.DecodeString(str("paySign"))
			sum := sha256.Sum256([]byte(msg))
			if str("appId") != m.AppID || str("signType") != "RSA" || rsa.VerifyPKCS1v15(&m.PrivateKey.PublicKey, crypto.SHA256, sum[:], sig) != nil {
				t.Fatalf("pay went ahead without the merchant's signature: %q", body)
			}
		}
	})
}
