package pay_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// signer makes genuine notifications of both generations for one merchant.
type signer struct {
	keys    *sim.Keys
	notices pay.Notices
}

func newSigner(t *testing.T) signer {
	t.Helper()
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := keys.Merchant
	c2, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	c3, _ := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: m})
	return signer{keys: keys, notices: pay.Notices{V2: c2, V3: c3}}
}

// v2Payment is a v2 payment notification with result_code word.
func (s signer) v2Payment(word string) []byte {
	m := s.keys.Merchant
	p := map[string]string{"return_code": "SUCCESS", "result_code": word, "appid": m.AppID, "mch_id": m.MchID,
		"nonce_str": "n1", "openid": "o1", "total_fee": "1250", "transaction_id": "4200", "out_trade_no": "wx-1",
		"time_end": "20261124120000"}
	p["sign"] = v2.Sign(p, string(m.APIKey), v2.SignMD5)
	return v2.EncodeXML(p)
}

// v2Refund is a v2 refund notification with refund_status word.
func (s signer) v2Refund(t *testing.T, word string) []byte {
	m := s.keys.Merchant
	inner := v2.EncodeXMLRoot("root", map[string]string{"out_trade_no": "wx-1", "transaction_id": "4200",
		"out_refund_no": "rf-1", "refund_id": "5030", "total_fee": "1250", "refund_fee": "250", "refund_status": word})
	reqInfo, err := v2.EncryptReqInfo(inner, string(m.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	return v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID, "req_info": reqInfo})
}

// v3Notification is a signed v3 notification of plain as originalType.
func (s signer) v3Notification(t *testing.T, originalType string, plain any) (http.Header, []byte) {
	m := s.keys.Merchant
	b, _ := json.Marshal(plain)
	res, err := v3.EncryptResource(string(m.APIv3Key), "abcdefghijkl", originalType, originalType, b)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(v3.Notification{ID: "EV-1", EventType: "X", ResourceType: "encrypt-resource", Resource: res})
	hdr, err := v3.SignResponseHeaders(s.keys.WechatPayKey, m.WechatPayPublicKeyID, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return hdr, body
}

func (s signer) v3Payment(t *testing.T, word string) (http.Header, []byte) {
	m := s.keys.Merchant
	return s.v3Notification(t, "transaction", v3.Transaction{AppID: m.AppID, MchID: m.MchID, OutTradeNo: "wx-1",
		TransactionID: "4200", TradeState: word, SuccessTime: "2026-11-24T12:00:00+08:00",
		Amount: v3.Amount{Total: 1250}, Payer: v3.Payer{OpenID: "o1"}})
}

func (s signer) v3Refund(t *testing.T, word string) (http.Header, []byte) {
	return s.v3Notification(t, "refund", v3.RefundNotification{MchID: s.keys.Merchant.MchID, OutTradeNo: "wx-1",
		TransactionID: "4200", OutRefundNo: "rf-1", RefundID: "5030", RefundStatus: word})
}

// TestPaymentNotices: a payment notification of either generation becomes
// the Transaction a query would give, its state typed and its word kept.
func TestPaymentNotices(t *testing.T) {
	s := newSigner(t)
	paidAt := time.Date(2026, 11, 24, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	tests := []struct {
		api  pay.API
		word string
		want pay.TradeState
	}{
		{"v2", "SUCCESS", pay.TradeSuccess},
		{"v2", "FAIL", pay.TradePayError},
		{"v3", "SUCCESS", pay.TradeSuccess},
		{"v3", "REFUND", pay.TradeRefunded},
		{"v3", "NOTPAY", pay.TradeNotPaid},
		{"v3", "CLOSED", pay.TradeClosed},
		{"v3", "REVOKED", pay.TradeRevoked},
		{"v3", "USERPAYING", pay.TradeUserPaying},
		{"v3", "PAYERROR", pay.TradePayError},
		{"v3", "ACCEPT", pay.TradeUnknown},
		{"v3", "", pay.TradeUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.api+" "+tc.word, func(t *testing.T) {
			var hdr http.Header
			var body []byte
			if tc.api == "v2" {
				body = s.v2Payment(tc.word)
			} else {
				hdr, body = s.v3Payment(t, tc.word)
			}
			got, err := s.notices.Payment(tc.api, hdr, body)
			if err != nil {
				t.Fatal(err)
			}
			m := s.keys.Merchant
			want := pay.Transaction{OutTradeNo: "wx-1", State: tc.want, RawState: tc.word, TransactionID: "4200",
				AmountFen: 1250, OpenID: "o1", PaidAt: got.PaidAt, MchID: m.MchID, AppID: m.AppID}
			if got != want || !got.PaidAt.Equal(paidAt) {
				t.Errorf("\n got %+v\nwant %+v (paid at %v)", got, want, paidAt)
			}
		})
	}
}

// TestRefundNotices: a refund notification of either generation, in its
// own spelling, becomes the same RefundState; the other generation's
// spelling is unknown.
func TestRefundNotices(t *testing.T) {
	s := newSigner(t)
	tests := []struct {
		api  pay.API
		word string
		want pay.RefundState
	}{
		{"v2", "SUCCESS", pay.RefundSuccess},
		{"v2", "REFUNDCLOSE", pay.RefundClosed},
		{"v2", "CHANGE", pay.RefundAbnormal},
		{"v2", "CLOSED", pay.RefundUnknown},
		{"v3", "SUCCESS", pay.RefundSuccess},
		{"v3", "CLOSED", pay.RefundClosed},
		{"v3", "ABNORMAL", pay.RefundAbnormal},
		{"v3", "REFUNDCLOSE", pay.RefundUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.api+" "+tc.word, func(t *testing.T) {
			var hdr http.Header
			var body []byte
			if tc.api == "v2" {
				body = s.v2Refund(t, tc.word)
			} else {
				hdr, body = s.v3Refund(t, tc.word)
			}
			got, err := s.notices.Refund(tc.api, hdr, body)
			if err != nil {
				t.Fatal(err)
			}
			want := pay.RefundNotice{OutTradeNo: "wx-1", MchID: s.keys.Merchant.MchID, RefundStatus: pay.RefundStatus{OutRefundNo: "rf-1", RefundID: "5030",
				State: tc.want, RawState: tc.word}}
			if got != want {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestNoticesRefused: what the clients refuse, Notices refuses with the
// same sentinel, so the API can still count refusals by reason.
func TestNoticesRefused(t *testing.T) {
	s := newSigner(t)
	hdr, body := s.v3Payment(t, "SUCCESS")
	tampered := append([]byte(" "), body...)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"v3 tampered", func() error { _, err := s.notices.Payment("v3", hdr, tampered); return err }, wechat.ErrSignature},
		{"v2 unsigned", func() error {
			_, err := s.notices.Payment("v2", nil, v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "sign": "00"}))
			return err
		}, wechat.ErrSignature},
		{"v2 refund of another merchant", func() error {
			_, err := s.notices.Refund("v2", nil, v2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": "wxother"}))
			return err
		}, wechat.ErrForeign},
		{"v4 payment", func() error { _, err := s.notices.Payment("v4", hdr, body); return err }, pay.ErrUnknownAPI},
		{"v4 refund", func() error { _, err := s.notices.Refund("v4", hdr, body); return err }, pay.ErrUnknownAPI},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
