package v3_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// The apps of the partner tests: the provider's Official Account and
// mini-program (sp_appid), and the sub-merchant's own mini-program.
const (
	spOA     = "wx8888888888888888"
	spMP     = "wx8888888888888889"
	subMP    = "wxd678efh567hg6999"
	subMchID = "1900000109"
	otherApp = "wx0000000000000000"
)

// subMerchant is the vectors' merchant turned into a sub-merchant of a
// provider with the vectors' keys: MchID and keys are the provider's. With
// ownApp false it has no app of its own and its payers are the provider's.
func subMerchant(t testing.TB, vs wechattest.Vectors, ownApp bool) *wechat.Merchant {
	t.Helper()
	m := testMerchant(t, vs)
	m.Kind, m.Provider, m.SubMchID = wechat.MerchantSub, "sp", subMchID
	m.SpApps = []wechat.App{{AppID: spOA, Kind: wechat.AppOfficialAccount}, {AppID: spMP, Kind: wechat.AppMiniProgram}}
	m.Apps, m.AppID = nil, spOA
	if ownApp {
		m.Apps, m.AppID = []wechat.App{{AppID: subMP, Kind: wechat.AppMiniProgram}}, subMP
	}
	return m
}

// jsonKeys are the top-level keys of a JSON object.
func jsonKeys(t *testing.T, body []byte) (map[string]any, []string) {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return obj, slices.Sorted(maps.Keys(obj))
}

// TestPartnerPrepay: the prepay of a sub-merchant goes to the partner path
// with sp_appid, sp_mchid, sub_mchid, sub_appid only when the payer is in
// the sub-merchant's own app, and exactly one openid (sp_openid or
// sub_openid) under the app the payer is in; never appid, mchid or
// payer.openid. A direct merchant's goes to the direct path as before.
func TestPartnerPrepay(t *testing.T) {
	vs := wechattest.Load(t)
	base := []string{"amount", "description", "notify_url", "out_trade_no", "payer"}
	tests := []struct {
		name      string
		merchant  *wechat.Merchant
		appID     string
		wantPath  string
		wantIDs   map[string]string // every identity field of the body, exactly
		wantPayer map[string]any
		wantErr   error
	}{
		{name: "sub-merchant's own mini-program (the default app): sub_appid + sub_openid", merchant: subMerchant(t, vs, true),
			wantPath:  "/v3/pay/partner/transactions/jsapi",
			wantIDs:   map[string]string{"sp_appid": spOA, "sp_mchid": vs.Keys.V3.MchID, "sub_appid": subMP, "sub_mchid": subMchID},
			wantPayer: map[string]any{"sub_openid": "o-payer"}},
		{name: "sub-merchant's own app named", merchant: subMerchant(t, vs, true), appID: subMP,
			wantPath:  "/v3/pay/partner/transactions/jsapi",
			wantIDs:   map[string]string{"sp_appid": spOA, "sp_mchid": vs.Keys.V3.MchID, "sub_appid": subMP, "sub_mchid": subMchID},
			wantPayer: map[string]any{"sub_openid": "o-payer"}},
		{name: "payer in the provider's Official Account: sp_openid, no sub_appid", merchant: subMerchant(t, vs, true), appID: spOA,
			wantPath:  "/v3/pay/partner/transactions/jsapi",
			wantIDs:   map[string]string{"sp_appid": spOA, "sp_mchid": vs.Keys.V3.MchID, "sub_mchid": subMchID},
			wantPayer: map[string]any{"sp_openid": "o-payer"}},
		{name: "payer in the provider's other app: it is the sp_appid", merchant: subMerchant(t, vs, true), appID: spMP,
			wantPath:  "/v3/pay/partner/transactions/jsapi",
			wantIDs:   map[string]string{"sp_appid": spMP, "sp_mchid": vs.Keys.V3.MchID, "sub_mchid": subMchID},
			wantPayer: map[string]any{"sp_openid": "o-payer"}},
		{name: "sub-merchant without an app of its own", merchant: subMerchant(t, vs, false),
			wantPath:  "/v3/pay/partner/transactions/jsapi",
			wantIDs:   map[string]string{"sp_appid": spOA, "sp_mchid": vs.Keys.V3.MchID, "sub_mchid": subMchID},
			wantPayer: map[string]any{"sp_openid": "o-payer"}},
		{name: "sub-merchant, an app of nobody's", merchant: subMerchant(t, vs, true), appID: otherApp, wantErr: v3.ErrUnknownApp},
		{name: "sub-merchant without own app, a sub_appid of another", merchant: subMerchant(t, vs, false), appID: subMP, wantErr: v3.ErrUnknownApp},
		{name: "direct merchant", merchant: testMerchant(t, vs), wantPath: "/v3/pay/transactions/jsapi",
			wantIDs:   map[string]string{"appid": "wxd678efh567hg6787", "mchid": vs.Keys.V3.MchID},
			wantPayer: map[string]any{"openid": "o-payer"}},
		{name: "direct merchant, a provider's app", merchant: testMerchant(t, vs), appID: spOA, wantErr: v3.ErrUnknownApp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWeChat(t, func(*http.Request, []byte) answer {
				return answer{Status: 200, Body: `{"prepay_id":"wx201410272009395522657a690389285100"}`}
			})
			f.merchant = tc.merchant
			id, err := f.client(t).PrepayJSAPI(context.Background(), v3.PrepayRequest{AppID: tc.appID, Description: "d",
				OutTradeNo: "wx-0001", TotalFen: 1250, OpenID: "o-payer", NotifyURL: "https://shop.example/n"})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || len(f.requests()) != 0 {
					t.Fatalf("err = %v (%d requests sent), want %v and none sent", err, len(f.requests()), tc.wantErr)
				}
				return
			}
			if err != nil || id == "" {
				t.Fatalf("prepay: %q, %v", id, err)
			}
			r := f.requests()[0]
			if r.Method != http.MethodPost || r.RequestURI != tc.wantPath {
				t.Errorf("%s %s, want POST %s", r.Method, r.RequestURI, tc.wantPath)
			}
			obj, keys := jsonKeys(t, r.Body)
			want := slices.Sorted(maps.Keys(tc.wantIDs))
			want = slices.Sorted(slices.Values(append(want, base...)))
			if !slices.Equal(keys, want) {
				t.Errorf("body fields %v, want exactly %v: %s", keys, want, r.Body)
			}
			for k, v := range tc.wantIDs {
				if obj[k] != v {
					t.Errorf("%s = %v, want %s", k, obj[k], v)
				}
			}
			if payer, _ := obj["payer"].(map[string]any); !maps.Equal(payer, tc.wantPayer) {
				t.Errorf("payer %v, want exactly %v", obj["payer"], tc.wantPayer)
			}
		})
	}
}

// TestPartnerCalls: query, close, refund and refund query of a
// sub-merchant on the partner paths: sp_mchid then sub_mchid in the query
// string, {"sp_mchid","sub_mchid"} to close, sub_mchid in the refund body
// and the refund query string; the direct merchant's as before.
func TestPartnerCalls(t *testing.T) {
	vs := wechattest.Load(t)
	sp := vs.Keys.V3.MchID
	type call struct {
		name     string
		do       func(*v3.Client) error
		wantURI  string
		wantBody map[string]any // nil: no body
	}
	refund := func(c *v3.Client) error {
		_, err := c.Refund(context.Background(), v3.RefundRequest{OutTradeNo: "wx 1", OutRefundNo: "rf-1", TotalFen: 1250, RefundFen: 250})
		return err
	}
	query := func(c *v3.Client) error { _, err := c.QueryByOutTradeNo(context.Background(), "wx 1"); return err }
	closeOrder := func(c *v3.Client) error { return c.Close(context.Background(), "wx 1") }
	queryRefund := func(c *v3.Client) error { _, err := c.QueryRefund(context.Background(), "rf-1"); return err }
	amount := map[string]any{"refund": 250.0, "total": 1250.0, "currency": "CNY"}
	tests := []struct {
		merchant *wechat.Merchant
		calls    []call
	}{
		{subMerchant(t, vs, true), []call{
			{"query", query, "/v3/pay/partner/transactions/out-trade-no/wx%201?sp_mchid=" + sp + "&sub_mchid=" + subMchID, nil},
			{"close", closeOrder, "/v3/pay/partner/transactions/out-trade-no/wx%201/close", map[string]any{"sp_mchid": sp, "sub_mchid": subMchID}},
			{"refund", refund, "/v3/refund/domestic/refunds", map[string]any{"sub_mchid": subMchID, "out_trade_no": "wx 1",
				"out_refund_no": "rf-1", "reason": "", "notify_url": "", "amount": amount}},
			{"refund query", queryRefund, "/v3/refund/domestic/refunds/rf-1?sub_mchid=" + subMchID, nil},
		}},
		{testMerchant(t, vs), []call{
			{"query", query, "/v3/pay/transactions/out-trade-no/wx%201?mchid=" + sp, nil},
			{"close", closeOrder, "/v3/pay/transactions/out-trade-no/wx%201/close", map[string]any{"mchid": sp}},
			{"refund", refund, "/v3/refund/domestic/refunds", map[string]any{"out_trade_no": "wx 1",
				"out_refund_no": "rf-1", "reason": "", "notify_url": "", "amount": amount}},
			{"refund query", queryRefund, "/v3/refund/domestic/refunds/rf-1", nil},
		}},
	}
	for _, tc := range tests {
		for _, cl := range tc.calls {
			t.Run(string(tc.merchant.Kind)+" "+cl.name, func(t *testing.T) {
				f := newFakeWeChat(t, func(r *http.Request, _ []byte) answer {
					if r.URL.Path == "/v3/pay/transactions/out-trade-no/wx 1/close" || r.URL.Path == "/v3/pay/partner/transactions/out-trade-no/wx 1/close" {
						return answer{Status: 204}
					}
					return answer{Status: 200, Body: `{"out_trade_no":"wx 1","out_refund_no":"rf-1","status":"PROCESSING"}`}
				})
				f.merchant = tc.merchant
				if err := cl.do(f.client(t)); err != nil {
					t.Fatal(err)
				}
				r := f.requests()[0]
				if r.RequestURI != cl.wantURI {
					t.Errorf("URI %s\nwant %s", r.RequestURI, cl.wantURI)
				}
				if cl.wantBody == nil {
					if len(r.Body) != 0 {
						t.Errorf("body %s, want none", r.Body)
					}
					return
				}
				var got map[string]any
				if err := json.Unmarshal(r.Body, &got); err != nil {
					t.Fatal(err)
				}
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(cl.wantBody)
				if string(gotJSON) != string(wantJSON) {
					t.Errorf("body %s\nwant %s", gotJSON, wantJSON)
				}
			})
		}
	}
}

// partnerPaid is a partner payment resource as WeChat sends it (the shape
// of the SDKs' partner samples: both openids, the sub_appid sent at prepay).
const partnerPaid = `{"sp_appid":"` + spOA + `","sp_mchid":"%s","sub_appid":"` + subMP + `","sub_mchid":"` + subMchID + `",
	"out_trade_no":"wx-0001","transaction_id":"4200000001","trade_type":"JSAPI","trade_state":"SUCCESS",
	"trade_state_desc":"支付成功","bank_type":"CMC","attach":"","success_time":"2023-11-15T06:40:00+08:00",
	"payer":{"sp_openid":"o-sp","sub_openid":"o-sub"},"amount":{"total":1250,"payer_total":1250,"currency":"CNY","payer_currency":"CNY"}}`

// TestParsePartnerPaymentNotify: a partner payment notification (encrypted
// with the provider's APIv3 key, signed with the provider's WeChat Pay key)
// is read with its identities, the payer under the order's app; one for
// another sub-merchant, another provider, or apps out of their places is
// refused as foreign, and a resource mixing both shapes as malformed.
func TestParsePartnerPaymentNotify(t *testing.T) {
	vs := wechattest.Load(t)
	sp := vs.Keys.V3.MchID
	plain := func(replace map[string]any) string {
		var obj map[string]any
		if err := json.Unmarshal([]byte(fmt.Sprintf(partnerPaid, sp)), &obj); err != nil {
			t.Fatal(err)
		}
		for k, v := range replace {
			if v == nil {
				delete(obj, k)
			} else {
				obj[k] = v
			}
		}
		b, _ := json.Marshal(obj)
		return string(b)
	}
	tests := []struct {
		name     string
		merchant *wechat.Merchant
		plain    string
		want     v3.Identity
		wantErr  error
	}{
		{name: "in the sub-merchant's app: sub_openid", merchant: subMerchant(t, vs, true), plain: plain(nil),
			want: v3.Identity{MchID: sp, SubMchID: subMchID, AppID: spOA, SubAppID: subMP, OpenID: "o-sub"}},
		{name: "in the provider's app: sp_openid", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sub_appid": nil, "payer": map[string]any{"sp_openid": "o-sp"}}),
			want:  v3.Identity{MchID: sp, SubMchID: subMchID, AppID: spOA, OpenID: "o-sp"}},
		{name: "in the provider's other app", merchant: subMerchant(t, vs, false),
			plain: plain(map[string]any{"sp_appid": spMP, "sub_appid": nil, "payer": map[string]any{"sp_openid": "o-sp"}}),
			want:  v3.Identity{MchID: sp, SubMchID: subMchID, AppID: spMP, OpenID: "o-sp"}},
		{name: "another sub-merchant of the provider", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sub_mchid": "1900000999"}), wantErr: wechat.ErrForeign},
		{name: "another provider", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sp_mchid": "1900000999"}), wantErr: wechat.ErrForeign},
		{name: "no sub_mchid", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sub_mchid": nil}), wantErr: wechat.ErrForeign},
		{name: "sp_appid not the provider's", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sp_appid": otherApp}), wantErr: wechat.ErrForeign},
		{name: "sp_appid is the sub-merchant's app", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sp_appid": subMP, "sub_appid": nil}), wantErr: wechat.ErrForeign},
		{name: "sub_appid is a provider's app", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sub_appid": spMP}), wantErr: wechat.ErrForeign},
		{name: "sub_appid of nobody", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"sub_appid": otherApp}), wantErr: wechat.ErrForeign},
		{name: "both shapes", merchant: subMerchant(t, vs, true),
			plain: plain(map[string]any{"mchid": sp}), wantErr: wechat.ErrMalformed},
		{name: "a direct notification to a sub-merchant", merchant: subMerchant(t, vs, true), plain: paidPlain, wantErr: wechat.ErrForeign},
		{name: "a partner notification to a direct merchant", merchant: testMerchant(t, vs), plain: plain(nil), wantErr: wechat.ErrForeign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: tc.merchant})
			if err != nil {
				t.Fatal(err)
			}
			h, body := notification{EventType: "TRANSACTION.SUCCESS", OriginalType: "transaction", Plain: tc.plain}.build(t, vs, tc.merchant)
			got, err := c.ParsePaymentNotify(h, body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id := got.Identity(); id != tc.want {
				t.Errorf("identity %+v\nwant     %+v", id, tc.want)
			}
			if got.OutTradeNo != "wx-0001" || got.Amount.Total != 1250 || got.TradeState != "SUCCESS" {
				t.Errorf("transaction %+v", got)
			}
		})
	}
}

// TestParsePartnerRefundNotify: a partner refund resource names sp_mchid
// and sub_mchid; another sub-merchant's is foreign.
func TestParsePartnerRefundNotify(t *testing.T) {
	vs := wechattest.Load(t)
	m := subMerchant(t, vs, true)
	c, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	resource := func(sub string) string {
		return `{"sp_mchid":"` + m.MchID + `","sub_mchid":"` + sub + `","out_trade_no":"wx-0001","transaction_id":"4200000001",
			"out_refund_no":"rf-0001","refund_id":"5030000001","refund_status":"SUCCESS","success_time":"2023-11-15T07:00:00+08:00",
			"user_received_account":"招商银行信用卡0403","amount":{"total":1250,"refund":250,"payer_total":1250,"payer_refund":250}}`
	}
	tests := []struct {
		name, plain string
		wantErr     error
	}{
		{"ours", resource(subMchID), nil},
		{"another sub-merchant", resource("1900000999"), wechat.ErrForeign},
		{"direct shape", refundPlain, wechat.ErrForeign},
		{"both shapes", `{"mchid":"` + m.MchID + `",` + resource(subMchID)[1:], wechat.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, body := notification{EventType: "REFUND.SUCCESS", OriginalType: "refund", Plain: tc.plain}.build(t, vs, m)
			got, err := c.ParseRefundNotify(h, body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id := got.Identity(); id != (v3.Identity{MchID: m.MchID, SubMchID: subMchID}) || got.OutRefundNo != "rf-0001" {
				t.Errorf("got %+v (identity %+v)", got, id)
			}
		})
	}
}

// TestPartnerPaySign: the v3 paySign of a sub-merchant's order is the
// provider's key over the app the payer is in; signed over sp_appid it
// does not verify for the sub-merchant's mini-program.
func TestPartnerPaySign(t *testing.T) {
	vs := wechattest.Load(t)
	m := subMerchant(t, vs, true)
	p, err := v3.PayParams(m.Signer(), subMP, "wx2017", "N", 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(p["paySign"])
	if err != nil {
		t.Fatal(err)
	}
	verify := func(app string) error {
		sum := sha256.Sum256([]byte(app + "\n1700000000\nN\nprepay_id=wx2017\n"))
		return rsa.VerifyPKCS1v15(&m.PrivateKey.PublicKey, crypto.SHA256, sum[:], sig)
	}
	if p["appId"] != subMP || verify(subMP) != nil {
		t.Errorf("paySign over the sub-merchant's app does not verify: %v", p)
	}
	if verify(spOA) == nil {
		t.Error("paySign over the sub-merchant's app verifies over sp_appid too")
	}
}
