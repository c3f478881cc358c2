package v3_test

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// notification is what the tests make WeChat send to notify_url.
type notification struct {
	EventType    string
	OriginalType string
	Plain        string // the resource before encryption
	APIv3Key     string // the merchant's when empty
	SignedAt     time.Time
	SignKey      *rsa.PrivateKey // WeChat's when nil
	Serial       string          // the PUB_KEY_ID when empty
	RawBody      string          // replaces the envelope when set (still signed)
	TamperAfter  bool            // change one byte of the body after signing
}

// build encrypts and signs a notification as WeChat does.
func (n notification) build(t *testing.T, vs wechattest.Vectors, m *wechat.Merchant) (http.Header, []byte) {
	t.Helper()
	key, at, serial, apiKey := n.SignKey, n.SignedAt, n.Serial, n.APIv3Key
	if key == nil {
		var err error
		if key, err = wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.WechatpayPrivateKeyPEM)); err != nil {
			t.Fatal(err)
		}
	}
	if at.IsZero() {
		at = time.Now()
	}
	if serial == "" {
		serial = m.WechatPayPublicKeyID
	}
	if apiKey == "" {
		apiKey = string(m.APIv3Key)
	}
	body := []byte(n.RawBody)
	if n.RawBody == "" {
		res, err := v3.EncryptResource(apiKey, "fGZ0HWHk2ZhM", n.OriginalType, n.OriginalType, []byte(n.Plain))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = json.Marshal(v3.Notification{ID: "EV-2023-0001", CreateTime: "2023-11-15T06:40:05+08:00",
			EventType: n.EventType, ResourceType: "encrypt-resource", Summary: "支付成功", Resource: res}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := v3.SignResponseHeaders(key, serial, body, at)
	if err != nil {
		t.Fatal(err)
	}
	if n.TamperAfter {
		body = append(body[:len(body)-1:len(body)-1], ' ', '}')
	}
	return h, body
}

const (
	paidPlain = `{"appid":"wxd678efh567hg6787","mchid":"1900000109","out_trade_no":"wx-0001","transaction_id":"4200000001",
		"trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","success_time":"2023-11-15T06:40:00+08:00",
		"attach":"a1","payer":{"openid":"o1"},"amount":{"total":1250,"payer_total":1250,"currency":"CNY"}}`
	refundPlain = `{"mchid":"1900000109","out_trade_no":"wx-0001","transaction_id":"4200000001","out_refund_no":"rf-0001",
		"refund_id":"5030000001","refund_status":"SUCCESS","success_time":"2023-11-15T07:00:00+08:00",
		"amount":{"total":1250,"refund":250,"payer_total":1250,"payer_refund":250}}`
)

func TestParsePaymentNotify(t *testing.T) {
	vs := wechattest.Load(t)
	m := testMerchant(t, vs)
	c, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	paid := notification{EventType: "TRANSACTION.SUCCESS", OriginalType: "transaction", Plain: paidPlain}
	with := func(f func(*notification)) notification { n := paid; f(&n); return n }
	tests := []struct {
		name    string
		given   notification
		want    v3.Transaction
		wantErr error
	}{
		{name: "genuine", given: paid, want: v3.Transaction{AppID: "wxd678efh567hg6787", MchID: "1900000109", OutTradeNo: "wx-0001",
			TransactionID: "4200000001", TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功",
			SuccessTime: "2023-11-15T06:40:00+08:00", Attach: "a1", Payer: v3.Payer{OpenID: "o1"},
			Amount: v3.Amount{Total: 1250, PayerTotal: 1250, Currency: "CNY"}}},
		{name: "tampered after signing", given: with(func(n *notification) { n.TamperAfter = true }), wantErr: wechat.ErrSignature},
		{name: "stale", given: with(func(n *notification) { n.SignedAt = time.Now().Add(-301 * time.Second) }), wantErr: wechat.ErrStale},
		{name: "unknown serial", given: with(func(n *notification) { n.Serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1" }), wantErr: wechat.ErrSignature},
		{name: "signed by the merchant key", given: with(func(n *notification) { n.SignKey = m.PrivateKey }), wantErr: wechat.ErrSignature},
		{name: "another APIv3 key", given: with(func(n *notification) { n.APIv3Key = "AnotherAPIv3Key0123456789abcdefg" }), wantErr: wechat.ErrDecrypt},
		{name: "signed but not JSON", given: with(func(n *notification) { n.RawBody = "<xml/>" }), wantErr: wechat.ErrMalformed},
		{name: "a refund resource", given: with(func(n *notification) { n.OriginalType, n.Plain = "refund", refundPlain }), wantErr: wechat.ErrMalformed},
		{name: "another merchant", given: with(func(n *notification) {
			n.Plain = `{"appid":"wxd678efh567hg6787","mchid":"1900000999","out_trade_no":"wx-0001","transaction_id":"4200000001"}`
		}), wantErr: wechat.ErrForeign},
		{name: "another app", given: with(func(n *notification) {
			n.Plain = `{"appid":"wx0000000000000000","mchid":"1900000109","out_trade_no":"wx-0001","transaction_id":"4200000001"}`
		}), wantErr: wechat.ErrForeign},
		{name: "no transaction_id", given: with(func(n *notification) {
			n.Plain = `{"appid":"wxd678efh567hg6787","mchid":"1900000109","out_trade_no":"wx-0001"}`
		}), wantErr: wechat.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, body := tc.given.build(t, vs, m)
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
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseRefundNotify(t *testing.T) {
	vs := wechattest.Load(t)
	m := testMerchant(t, vs)
	c, err := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	refunded := notification{EventType: "REFUND.SUCCESS", OriginalType: "refund", Plain: refundPlain}
	with := func(f func(*notification)) notification { n := refunded; f(&n); return n }
	tests := []struct {
		name    string
		given   notification
		want    v3.RefundNotification
		wantErr error
	}{
		{name: "genuine", given: refunded, want: v3.RefundNotification{MchID: "1900000109", OutTradeNo: "wx-0001",
			TransactionID: "4200000001", OutRefundNo: "rf-0001", RefundID: "5030000001", RefundStatus: "SUCCESS",
			SuccessTime: "2023-11-15T07:00:00+08:00", Amount: v3.Amount{Total: 1250, Refund: 250, PayerTotal: 1250, PayerRefund: 250}}},
		{name: "tampered after signing", given: with(func(n *notification) { n.TamperAfter = true }), wantErr: wechat.ErrSignature},
		{name: "a payment resource", given: with(func(n *notification) { n.OriginalType, n.Plain = "transaction", paidPlain }), wantErr: wechat.ErrMalformed},
		{name: "another merchant", given: with(func(n *notification) {
			n.Plain = `{"mchid":"1900000999","out_refund_no":"rf-0001","refund_status":"SUCCESS"}`
		}), wantErr: wechat.ErrForeign},
		{name: "no refund_status", given: with(func(n *notification) {
			n.Plain = `{"mchid":"1900000109","out_refund_no":"rf-0001"}`
		}), wantErr: wechat.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, body := tc.given.build(t, vs, m)
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
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
