package pay_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// The apps of the partner tests: the provider's two (sp_appid) and the
// sub-merchant's own mini-program (the official example's appId).
const (
	spOA     = "wx8888888888888888"
	spMP     = "wx8888888888888889"
	subMP    = "wxd678efh567hg6787"
	subMchID = "1900000109"
	otherApp = "wx0000000000000000"
)

// merchants are the sim's keys as a direct merchant, a sub-merchant with its
// own mini-program, and one with no app of its own (MchID and keys are
// then the provider's).
func merchants(t *testing.T) (keys *sim.Keys, direct, sub, subNoApp *wechat.Merchant) {
	t.Helper()
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(own bool) *wechat.Merchant {
		m := *keys.Merchant
		m.Name, m.Kind, m.Provider, m.SubMchID = "sub", wechat.MerchantSub, "sp", subMchID
		m.SpApps = []wechat.App{{AppID: spOA, Kind: wechat.AppOfficialAccount}, {AppID: spMP, Kind: wechat.AppMiniProgram}}
		m.Apps, m.AppID = nil, spOA
		if own {
			m.Apps, m.AppID = []wechat.App{{AppID: subMP, Kind: wechat.AppMiniProgram}}, subMP
		}
		return &m
	}
	return keys, keys.Merchant, mk(true), mk(false)
}

func payments(t *testing.T, m *wechat.Merchant, nonce func() string) (*pay.Payments, pay.Notices) {
	t.Helper()
	c2, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	c3, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pay.New(pay.Config{Merchant: m, V2: c2, V3: c3, NotifyBaseURL: "https://shop.example", Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	return p, pay.Notices{V2: c2, V3: c3}
}

// paySignOver reports whether f's paySign is the merchant's signature over
// appID (v2: API key; v3: private key).
func paySignOver(t *testing.T, api pay.API, m *wechat.Merchant, b map[string]string, appID string) bool {
	t.Helper()
	if api == "v2" {
		return v2.Verify(map[string]string{"appId": appID, "timeStamp": b["timeStamp"], "nonceStr": b["nonceStr"],
			"package": b["package"], "signType": b["signType"], "sign": b["paySign"]}, string(m.APIKey)) == nil
	}
	sig, err := base64.StdEncoding.DecodeString(b["paySign"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(appID + "\n" + b["timeStamp"] + "\n" + b["nonceStr"] + "\n" + b["package"] + "\n"))
	return rsa.VerifyPKCS1v15(&m.PrivateKey.PublicKey, crypto.SHA256, sum[:], sig) == nil
}

// TestPayParamsApp: the front-end parameters are signed over the app the
// payer is in, with the merchant's (for a sub-merchant: the provider's)
// key. A sub-merchant's mini-program order is never signed over sp_appid
// (the classic partner bug: "支付验证签名失败"), whether the app is named or
// left to the default; an app of nobody's is refused.
func TestPayParamsApp(t *testing.T) {
	_, direct, sub, subNoApp := merchants(t)
	tests := []struct {
		name     string
		merchant *wechat.Merchant
		appid    string
		want     string // the appId signed; "" = refused
	}{
		{"sub-merchant, default app: its own mini-program", sub, "", subMP},
		{"sub-merchant, its own mini-program", sub, subMP, subMP},
		{"sub-merchant, payer in the provider's Official Account", sub, spOA, spOA},
		{"sub-merchant, payer in the provider's mini-program", sub, spMP, spMP},
		{"sub-merchant without own app, default", subNoApp, "", spOA},
		{"sub-merchant without own app, a mini-program not its own", subNoApp, subMP, ""},
		{"sub-merchant, nobody's app", sub, otherApp, ""},
		{"direct, default", direct, "", direct.AppID},
		{"direct, a provider's app", direct, spOA, ""},
	}
	for _, tc := range tests {
		for _, api := range []pay.API{"v2", "v3"} {
			t.Run(api+" "+tc.name, func(t *testing.T) {
				p, _ := payments(t, tc.merchant, nil)
				f, err := p.PayParams(api, tc.appid, "wx123", time.Unix(1700000000, 0))
				if tc.want == "" {
					if !errors.Is(err, pay.ErrUnknownApp) {
						t.Fatalf("err = %v, want ErrUnknownApp", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if f.Bridge["appId"] != tc.want || !paySignOver(t, api, tc.merchant, f.Bridge, tc.want) {
					t.Errorf("appId %q (want %q), paySign over it: %v", f.Bridge["appId"], tc.want, paySignOver(t, api, tc.merchant, f.Bridge, tc.want))
				}
				if sp := tc.merchant.SpAppID(); sp != "" && sp != tc.want && paySignOver(t, api, tc.merchant, f.Bridge, sp) {
					t.Errorf("paySign for a payer in %s verifies over sp_appid %s", tc.want, sp)
				}
			})
		}
	}
}

// TestPartnerPaySignOfficialExample: WeChat's partner mini-program example
// (D2-MP) is the official mini-program paySign vector unchanged: the
// sub-merchant's mini-program as appId, the provider's API key.
func TestPartnerPaySignOfficialExample(t *testing.T) {
	v := wechattest.Load(t).ByID(t, "v2_paysign_miniprogram_md5_official")
	_, _, sub, _ := merchants(t)
	sub.APIKey = wechat.Secret(v.String("key"))
	p, _ := payments(t, sub, func() string { return "5K8264ILTKCH16CQ2502SI8ZNMTM67VS" })
	f, err := p.PayParams("v2", subMP, "wx2017033010242291fcfe0db70013231072", time.Unix(1490840662, 0))
	if err != nil {
		t.Fatal(err)
	}
	if f.Bridge["paySign"] != v.String("expected") || f.RequestPayment["paySign"] != v.String("expected") || f.Bridge["appId"] != subMP {
		t.Errorf("paySign %s over appId %s, want %s over %s", f.Bridge["paySign"], f.Bridge["appId"], v.String("expected"), subMP)
	}
}

// TestPrepayUnknownApp: a prepay for a payer in an app that is not the
// merchant's is refused before WeChat is called (BaseURL is unusable).
func TestPrepayUnknownApp(t *testing.T) {
	_, _, sub, _ := merchants(t)
	p, _ := payments(t, sub, nil)
	for _, api := range []pay.API{"v2", "v3"} {
		_, err := p.Prepay(context.Background(), pay.PrepayRequest{API: api, AppID: otherApp, OutTradeNo: "wx-1", AmountFen: 1, OpenID: "o"})
		if !errors.Is(err, pay.ErrUnknownApp) {
			t.Errorf("%s: err = %v, want ErrUnknownApp", api, err)
		}
	}
}

// TestOwns: a reported payment is this merchant's order in app appid only
// with exactly the identities the order was placed with.
func TestOwns(t *testing.T) {
	_, direct, sub, _ := merchants(t)
	paid := func(mch, subMch, app, subApp string) pay.Transaction {
		return pay.Transaction{OutTradeNo: "wx-1", State: pay.TradeSuccess, MchID: mch, SubMchID: subMch, AppID: app, SubAppID: subApp, OpenID: "o"}
	}
	sp := sub.MchID
	tests := []struct {
		name     string
		merchant *wechat.Merchant
		t        pay.Transaction
		appid    string
		wantErr  error
	}{
		{"sub app order", sub, paid(sp, subMchID, spOA, subMP), subMP, nil},
		{"sub app order, default app", sub, paid(sp, subMchID, spOA, subMP), "", nil},
		{"sp app order", sub, paid(sp, subMchID, spOA, ""), spOA, nil},
		{"other sp app order", sub, paid(sp, subMchID, spMP, ""), spMP, nil},
		{"sp app order reported in the sub app", sub, paid(sp, subMchID, spOA, subMP), spOA, wechat.ErrForeign},
		{"sub app order reported without sub_appid", sub, paid(sp, subMchID, spOA, ""), subMP, wechat.ErrForeign},
		{"another sp app than the order's", sub, paid(sp, subMchID, spMP, ""), spOA, wechat.ErrForeign},
		{"another sub-merchant", sub, paid(sp, "1900000999", spOA, subMP), subMP, wechat.ErrForeign},
		{"another provider", sub, paid("1900000999", subMchID, spOA, subMP), subMP, wechat.ErrForeign},
		{"direct shape to a sub-merchant", sub, paid(sp, "", subMP, ""), subMP, wechat.ErrForeign},
		{"an app of nobody's", sub, paid(sp, subMchID, spOA, otherApp), otherApp, wechat.ErrForeign},
		{"paid with no openid", sub, pay.Transaction{State: pay.TradeSuccess, MchID: sp, SubMchID: subMchID, AppID: spOA, SubAppID: subMP}, subMP, wechat.ErrMalformed},
		{"direct", direct, paid(direct.MchID, "", direct.AppID, ""), "", nil},
		{"direct with a sub_mchid", direct, paid(direct.MchID, subMchID, direct.AppID, ""), "", wechat.ErrForeign},
		{"direct, another app", direct, paid(direct.MchID, "", otherApp, ""), "", wechat.ErrForeign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := payments(t, tc.merchant, nil)
			err := p.Owns(tc.t, tc.appid)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Owns = %v, want %v", err, tc.wantErr)
			}
		})
	}
	p, _ := payments(t, sub, nil)
	if err := p.OwnsRefund(pay.RefundNotice{MchID: sp, SubMchID: subMchID}); err != nil {
		t.Errorf("OwnsRefund of its own refund: %v", err)
	}
	if err := p.OwnsRefund(pay.RefundNotice{MchID: sp, SubMchID: "1900000999"}); !errors.Is(err, wechat.ErrForeign) {
		t.Errorf("OwnsRefund of another sub-merchant's refund: %v, want ErrForeign", err)
	}
}

// TestPartnerNotices: partner notifications of both generations become
// Transactions and RefundNotices carrying the identities, which Owns then
// matches to the order's app.
func TestPartnerNotices(t *testing.T) {
	keys, _, sub, _ := merchants(t)
	p, notices := payments(t, sub, nil)
	s := signer{keys: keys}
	sp := sub.MchID

	v3Body := map[string]any{"sp_appid": spOA, "sp_mchid": sp, "sub_appid": subMP, "sub_mchid": subMchID, "out_trade_no": "wx-1",
		"transaction_id": "4200", "trade_type": "JSAPI", "trade_state": "SUCCESS", "success_time": "2026-11-24T12:00:00+08:00",
		"payer": map[string]string{"sp_openid": "o-sp", "sub_openid": "o-sub"}, "amount": map[string]any{"total": 1250}}
	hdr, body := s.v3Notification(t, "transaction", v3Body)
	v2Fields := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": spOA, "mch_id": sp,
		"sub_appid": subMP, "sub_mch_id": subMchID, "nonce_str": "n1", "openid": "o-sp", "sub_openid": "o-sub",
		"total_fee": "1250", "transaction_id": "4200", "out_trade_no": "wx-1", "time_end": "20261124120000"}
	v2Fields["sign"] = v2.Sign(v2Fields, string(sub.APIKey), v2.SignMD5)

	for _, tc := range []struct {
		api  pay.API
		hdr  http.Header
		body []byte
	}{{"v3", hdr, body}, {"v2", nil, v2.EncodeXML(v2Fields)}} {
		got, err := notices.Payment(tc.api, tc.hdr, tc.body)
		if err != nil {
			t.Fatalf("%s: %v", tc.api, err)
		}
		if got.MchID != sp || got.SubMchID != subMchID || got.AppID != spOA || got.SubAppID != subMP || got.OpenID != "o-sub" {
			t.Errorf("%s: %+v", tc.api, got)
		}
		if err := p.Owns(got, subMP); err != nil {
			t.Errorf("%s: Owns for the sub app: %v", tc.api, err)
		}
		if err := p.Owns(got, spOA); !errors.Is(err, wechat.ErrForeign) {
			t.Errorf("%s: Owns for the sp app: %v, want ErrForeign", tc.api, err)
		}
	}

	hdr, body = s.v3Notification(t, "refund", map[string]any{"sp_mchid": sp, "sub_mchid": subMchID, "out_trade_no": "wx-1",
		"out_refund_no": "rf-1", "refund_id": "5030", "refund_status": "SUCCESS"})
	r, err := notices.Refund("v3", hdr, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.MchID != sp || r.SubMchID != subMchID || p.OwnsRefund(r) != nil {
		t.Errorf("v3 refund: %+v", r)
	}
}
