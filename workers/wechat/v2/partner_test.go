package v2_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// The identities of the partner tests: the provider's merchant number and
// apps, and its sub-merchant's number and own mini-program.
const (
	spMchID  = "1230000109"
	spOA     = "wx8888888888888888"
	spMP     = "wx8888888888888889"
	subMchID = "1900000109"
	subMP    = "wxd678efh567hg6787" // the official mini-program example's appId
	otherApp = "wx0000000000000000"
)

// subMerchant is a sub-merchant holding its provider's mch_id and API key;
// with ownApp false it has no app of its own.
func subMerchant(t testing.TB, ownApp bool) *wechat.Merchant {
	m := &wechat.Merchant{Name: "sub", Kind: wechat.MerchantSub, Provider: "sp", MchID: spMchID, SubMchID: subMchID,
		APIKey: wechat.Secret(wechattest.Load(t).Keys.V2APIKey), AppID: spOA,
		SpApps: []wechat.App{{AppID: spOA, Kind: wechat.AppOfficialAccount}, {AppID: spMP, Kind: wechat.AppMiniProgram}}}
	if ownApp {
		m.Apps, m.AppID = []wechat.App{{AppID: subMP, Kind: wechat.AppMiniProgram}}, subMP
	}
	return m
}

func directMerchant(t testing.TB) *wechat.Merchant {
	return &wechat.Merchant{Name: "direct", AppID: subMP, MchID: subMchID, APIKey: wechat.Secret(wechattest.Load(t).Keys.V2APIKey)}
}

// fakeV2 plays WeChat Pay v2: it verifies each request's sign with the API
// key, keeps its fields, and answers SUCCESS, signed, echoing the request's
// identities plus extra (which may override them).
type fakeV2 struct {
	srv   *httptest.Server
	key   string
	extra map[string]string
	mu    sync.Mutex
	got   []map[string]string
	paths []string
}

func newFakeV2(t *testing.T, key string, tlsServer bool, extra map[string]string) *fakeV2 {
	f := &fakeV2{key: key, extra: extra}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p, err := v2.ParseXML(body)
		if err != nil || v2.Verify(p, key) != nil {
			t.Errorf("fake v2: %s: bad request %s (%v)", r.URL.Path, body, err)
			return
		}
		f.mu.Lock()
		f.got, f.paths = append(f.got, p), append(f.paths, r.URL.Path)
		f.mu.Unlock()
		out := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "nonce_str": "N", "prepay_id": "wx-prepay",
			"trade_type": "JSAPI", "trade_state": "SUCCESS", "out_trade_no": "wx-1", "transaction_id": "4200", "total_fee": "1250",
			"out_refund_no": "rf-1", "refund_id": "5030", "refund_fee": "250", "out_refund_no_0": "rf-1", "refund_id_0": "5030",
			"refund_fee_0": "250", "refund_status_0": "SUCCESS"}
		for _, k := range []string{"appid", "mch_id", "sub_appid", "sub_mch_id"} {
			if p[k] != "" {
				out[k] = p[k]
			}
		}
		maps.Copy(out, f.extra)
		for k, v := range out {
			if v == "" {
				delete(out, k)
			}
		}
		out["sign"] = v2.Sign(out, key, v2.SignMD5)
		_, _ = w.Write(v2.EncodeXML(out))
	}))
	if tlsServer {
		f.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

// client is a v2 client of m pointed at the fake; over TLS it presents a
// client certificate made for the test, as a refund must.
func (f *fakeV2) client(t *testing.T, m *wechat.Merchant) *v2.Client {
	t.Helper()
	cfg := v2.Config{BaseURL: f.srv.URL, Merchant: m, HTTPClient: f.srv.Client()}
	if f.srv.TLS != nil {
		mm := *m
		mm.Certificate = clientCert(t)
		cfg.Merchant = &mm
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(f.srv.Certificate())
	}
	c, err := v2.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clientCert(t *testing.T) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "merchant"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// identities are the identity fields of a request, those present only.
func identities(p map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"appid", "mch_id", "sub_appid", "sub_mch_id", "openid", "sub_openid"} {
		if v, ok := p[k]; ok {
			out[k] = v
		}
	}
	return out
}

// TestPartnerUnifiedOrder: a sub-merchant's unified order names the
// provider's appid and mch_id and the sub_mch_id, and the payer as openid
// (a provider's app, then the appid) or sub_appid + sub_openid (its own
// app); exactly one openid. A direct merchant's has no sub_ field.
func TestPartnerUnifiedOrder(t *testing.T) {
	tests := []struct {
		name     string
		merchant *wechat.Merchant
		appID    string
		want     map[string]string
		wantErr  error
	}{
		{"sub-merchant's own mini-program (default)", subMerchant(t, true), "",
			map[string]string{"appid": spOA, "mch_id": spMchID, "sub_mch_id": subMchID, "sub_appid": subMP, "sub_openid": "o-payer"}, nil},
		{"payer in the provider's Official Account", subMerchant(t, true), spOA,
			map[string]string{"appid": spOA, "mch_id": spMchID, "sub_mch_id": subMchID, "openid": "o-payer"}, nil},
		{"payer in the provider's other app", subMerchant(t, true), spMP,
			map[string]string{"appid": spMP, "mch_id": spMchID, "sub_mch_id": subMchID, "openid": "o-payer"}, nil},
		{"sub-merchant without an app of its own", subMerchant(t, false), "",
			map[string]string{"appid": spOA, "mch_id": spMchID, "sub_mch_id": subMchID, "openid": "o-payer"}, nil},
		{"an app of nobody's", subMerchant(t, true), otherApp, nil, v2.ErrUnknownApp},
		{"direct merchant", directMerchant(t), "", map[string]string{"appid": subMP, "mch_id": subMchID, "openid": "o-payer"}, nil},
		{"direct merchant, a provider's app", directMerchant(t), spOA, nil, v2.ErrUnknownApp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeV2(t, string(tc.merchant.APIKey), false, nil)
			res, err := f.client(t, tc.merchant).UnifiedOrder(context.Background(), v2.UnifiedOrderRequest{AppID: tc.appID,
				Body: "b", OutTradeNo: "wx-1", TotalFen: 1250, ClientIP: "127.0.0.1", NotifyURL: "https://shop.example/n", OpenID: "o-payer"})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || len(f.got) != 0 {
					t.Fatalf("err = %v (%d sent), want %v and nothing sent", err, len(f.got), tc.wantErr)
				}
				return
			}
			if err != nil || res.PrepayID != "wx-prepay" {
				t.Fatalf("%+v, %v", res, err)
			}
			if got := identities(f.got[0]); !maps.Equal(got, tc.want) {
				t.Errorf("identities %v\nwant exactly %v", got, tc.want)
			}
		})
	}
}

// TestPartnerCalls: order query, close, refund (mutual TLS) and refund
// query of a sub-merchant all carry sub_mch_id, with the provider's appid
// and mch_id; the direct merchant's carry none.
func TestPartnerCalls(t *testing.T) {
	calls := []struct {
		name string
		path string
		tls  bool
		do   func(*v2.Client) error
	}{
		{"orderquery", "/pay/orderquery", false, func(c *v2.Client) error { _, err := c.OrderQuery(context.Background(), "wx-1"); return err }},
		{"closeorder", "/pay/closeorder", false, func(c *v2.Client) error { return c.CloseOrder(context.Background(), "wx-1") }},
		{"refund", "/secapi/pay/refund", true, func(c *v2.Client) error {
			_, err := c.Refund(context.Background(), v2.RefundRequest{OutTradeNo: "wx-1", OutRefundNo: "rf-1", TotalFen: 1250, RefundFen: 250})
			return err
		}},
		{"refundquery", "/pay/refundquery", false, func(c *v2.Client) error { _, err := c.RefundQuery(context.Background(), "rf-1"); return err }},
	}
	merchants := []struct {
		m    *wechat.Merchant
		want map[string]string
	}{
		{subMerchant(t, true), map[string]string{"appid": spOA, "mch_id": spMchID, "sub_mch_id": subMchID}},
		{subMerchant(t, false), map[string]string{"appid": spOA, "mch_id": spMchID, "sub_mch_id": subMchID}},
		{directMerchant(t), map[string]string{"appid": subMP, "mch_id": subMchID}},
	}
	for _, mc := range merchants {
		for _, cl := range calls {
			t.Run(mc.m.Name+" "+cl.name, func(t *testing.T) {
				f := newFakeV2(t, string(mc.m.APIKey), cl.tls, nil)
				if err := cl.do(f.client(t, mc.m)); err != nil {
					t.Fatal(err)
				}
				if f.paths[0] != cl.path {
					t.Errorf("path %s, want %s", f.paths[0], cl.path)
				}
				if got := identities(f.got[0]); !maps.Equal(got, mc.want) {
					t.Errorf("identities %v\nwant exactly %v", got, mc.want)
				}
			})
		}
	}
}

// TestPartnerOrderQueryAnswer: the answer's identities are read, the payer
// under the order's app; an answer for another sub-merchant or with a
// sub_appid that is not the sub-merchant's is refused.
func TestPartnerOrderQueryAnswer(t *testing.T) {
	tests := []struct {
		name    string
		extra   map[string]string
		want    v2.OrderQueryResponse
		wantErr error
	}{
		{"in the sub-merchant's app", map[string]string{"sub_appid": subMP, "openid": "o-sp", "sub_openid": "o-sub"},
			v2.OrderQueryResponse{AppID: spOA, MchID: spMchID, SubAppID: subMP, SubMchID: subMchID, OpenID: "o-sub"}, nil},
		{"in the provider's app", map[string]string{"openid": "o-sp"},
			v2.OrderQueryResponse{AppID: spOA, MchID: spMchID, SubMchID: subMchID, OpenID: "o-sp"}, nil},
		{"another sub-merchant", map[string]string{"sub_mch_id": "1900000999"}, v2.OrderQueryResponse{}, wechat.ErrSignature},
		{"a sub_appid of nobody", map[string]string{"sub_appid": otherApp}, v2.OrderQueryResponse{}, wechat.ErrSignature},
		{"another provider's appid", map[string]string{"appid": otherApp}, v2.OrderQueryResponse{}, wechat.ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := subMerchant(t, true)
			f := newFakeV2(t, string(m.APIKey), false, tc.extra)
			got, err := f.client(t, m).OrderQuery(context.Background(), "wx-1")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.AppID != tc.want.AppID || got.MchID != tc.want.MchID || got.SubAppID != tc.want.SubAppID ||
				got.SubMchID != tc.want.SubMchID || got.OpenID != tc.want.OpenID || got.TradeState != "SUCCESS" {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParsePartnerNotify: a partner payment notification (signed with the
// provider's API key) is read with sub_appid, sub_mch_id and the payer
// under the order's app; another sub-merchant's, or one whose apps are out
// of their places, is foreign.
func TestParsePartnerNotify(t *testing.T) {
	m := subMerchant(t, true)
	c, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	notify := func(change map[string]string) []byte {
		p := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": spOA, "mch_id": spMchID,
			"sub_appid": subMP, "sub_mch_id": subMchID, "nonce_str": "n1", "openid": "o-sp", "is_subscribe": "N",
			"sub_openid": "o-sub", "sub_is_subscribe": "N", "trade_type": "JSAPI", "bank_type": "CMC", "total_fee": "1250",
			"cash_fee": "1250", "transaction_id": "4200", "out_trade_no": "wx-1", "time_end": "20231115064000"}
		maps.Copy(p, change)
		for k, v := range p {
			if v == "" {
				delete(p, k)
			}
		}
		p["sign"] = v2.Sign(p, string(m.APIKey), v2.SignMD5)
		return v2.EncodeXML(p)
	}
	tests := []struct {
		name    string
		body    []byte
		want    [5]string // appid, mch_id, sub_appid, sub_mch_id, openid
		wantErr error
	}{
		{"in the sub-merchant's app", notify(nil), [5]string{spOA, spMchID, subMP, subMchID, "o-sub"}, nil},
		{"in the provider's app", notify(map[string]string{"sub_appid": "", "sub_openid": ""}), [5]string{spOA, spMchID, "", subMchID, "o-sp"}, nil},
		{"another sub-merchant", notify(map[string]string{"sub_mch_id": "1900000999"}), [5]string{}, wechat.ErrForeign},
		{"no sub_mch_id", notify(map[string]string{"sub_mch_id": ""}), [5]string{}, wechat.ErrForeign},
		{"another provider", notify(map[string]string{"mch_id": "1900000999"}), [5]string{}, wechat.ErrForeign},
		{"appid not the provider's", notify(map[string]string{"appid": subMP}), [5]string{}, wechat.ErrForeign},
		{"sub_appid of the provider", notify(map[string]string{"sub_appid": spMP}), [5]string{}, wechat.ErrForeign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := c.ParseNotify(tc.body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := [5]string{n.AppID, n.MchID, n.SubAppID, n.SubMchID, n.OpenID}; got != tc.want || !n.Paid || n.TotalFen != 1250 {
				t.Errorf("got %v (%+v), want %v", got, n, tc.want)
			}
		})
	}
	// The same notification to the direct merchant with the same key is foreign.
	d, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: directMerchant(t)})
	if _, err := d.ParseNotify(notify(map[string]string{"appid": subMP, "mch_id": subMchID, "sub_appid": "", "sub_mch_id": ""})); err != nil {
		t.Errorf("a direct notification to the direct merchant: %v", err)
	}
	if _, err := d.ParseNotify(notify(map[string]string{"appid": subMP, "mch_id": subMchID})); !errors.Is(err, wechat.ErrForeign) {
		t.Errorf("a partner notification to a direct merchant: %v, want ErrForeign", err)
	}
}

// TestParsePartnerRefundNotify: the outer XML of a partner refund
// notification names sub_mch_id (and sub_appid); another sub-merchant's is
// refused before req_info is opened.
func TestParsePartnerRefundNotify(t *testing.T) {
	m := subMerchant(t, true)
	c, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	reqInfo, err := v2.EncryptReqInfo(v2.EncodeXMLRoot("root", map[string]string{"out_trade_no": "wx-1", "transaction_id": "4200",
		"out_refund_no": "rf-1", "refund_id": "5030", "total_fee": "1250", "refund_fee": "250", "refund_status": "SUCCESS"}), string(m.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	outer := func(sub string) []byte {
		return v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": spOA, "mch_id": spMchID,
			"sub_appid": subMP, "sub_mch_id": sub, "nonce_str": "n", "req_info": reqInfo})
	}
	n, err := c.ParseRefundNotify(outer(subMchID))
	if err != nil {
		t.Fatal(err)
	}
	if n.AppID != spOA || n.MchID != spMchID || n.SubAppID != subMP || n.SubMchID != subMchID || n.Status != "SUCCESS" {
		t.Errorf("got %+v", n)
	}
	if _, err := c.ParseRefundNotify(outer("1900000999")); !errors.Is(err, wechat.ErrForeign) {
		t.Errorf("another sub-merchant's refund: %v, want ErrForeign", err)
	}
}
