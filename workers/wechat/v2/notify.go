package v2

import (
	"fmt"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// PaymentNotification is a verified v2 payment result notification (支付结果通知).
type PaymentNotification struct {
	// AppID and MchID are appid and mch_id (a sub-merchant's provider's);
	// SubAppID and SubMchID are set in partner mode.
	AppID         string
	MchID         string
	SubAppID      string
	SubMchID      string
	OutTradeNo    string
	TransactionID string
	TotalFen      int64
	// OpenID is the payer under the app the order was paid in: sub_openid
	// when there is a sub_appid, else openid.
	OpenID  string
	TimeEnd time.Time
	Paid    bool              // result_code=SUCCESS
	Fields  map[string]string // every field received, verified
}

// ParseNotify parses and verifies a payment notification: the signature over
// every field, then appid, mch_id, sub_appid and sub_mch_id against the
// merchant. The caller must still check the order's app and amount.
func (c *Client) ParseNotify(body []byte) (PaymentNotification, error) {
	p, err := ParseXML(body)
	if err != nil {
		return PaymentNotification{}, err
	}
	if p["return_code"] != "SUCCESS" {
		return PaymentNotification{}, fmt.Errorf("%w: return_code %q", wechat.ErrMalformed, p["return_code"])
	}
	m := c.cfg.Merchant
	if err := Verify(p, string(m.APIKey)); err != nil {
		return PaymentNotification{}, err
	}
	if err := owns(m, p["appid"], p["mch_id"], p["sub_appid"], p["sub_mch_id"], false); err != nil {
		return PaymentNotification{}, err
	}
	n := PaymentNotification{AppID: p["appid"], MchID: p["mch_id"], SubAppID: p["sub_appid"], SubMchID: p["sub_mch_id"],
		OutTradeNo: p["out_trade_no"], TransactionID: p["transaction_id"], OpenID: payerOpenID(p),
		Paid: p["result_code"] == "SUCCESS", Fields: p}
	if n.TotalFen, err = parseFen("total_fee", p["total_fee"]); err != nil {
		return PaymentNotification{}, err
	}
	if n.OutTradeNo == "" || n.Paid && n.TransactionID == "" {
		return PaymentNotification{}, fmt.Errorf("%w: out_trade_no or transaction_id missing", wechat.ErrMalformed)
	}
	n.TimeEnd, _ = ParseTime(p["time_end"])
	return n, nil
}

// RefundNotification is a decrypted v2 refund result notification (退款结果通知).
type RefundNotification struct {
	// AppID, MchID, SubAppID and SubMchID are the outer XML's appid, mch_id,
	// sub_appid and sub_mch_id (the last two in partner mode).
	AppID, MchID, SubAppID, SubMchID string
	OutTradeNo                       string
	TransactionID                    string
	OutRefundNo                      string
	RefundID                         string
	TotalFen                         int64
	RefundFen                        int64
	Status                           string // SUCCESS, CHANGE, REFUNDCLOSE
	Fields                           map[string]string
}

// ParseRefundNotify checks the outer appid, mch_id, sub_appid and
// sub_mch_id and decrypts req_info:
// the outer XML is not signed, so only a req_info made with the API key is
// proof that WeChat sent it.
func (c *Client) ParseRefundNotify(body []byte) (RefundNotification, error) {
	outer, err := ParseXML(body)
	if err != nil {
		return RefundNotification{}, err
	}
	if outer["return_code"] != "SUCCESS" {
		return RefundNotification{}, fmt.Errorf("%w: return_code %q", wechat.ErrMalformed, outer["return_code"])
	}
	m := c.cfg.Merchant
	if err := owns(m, outer["appid"], outer["mch_id"], outer["sub_appid"], outer["sub_mch_id"], false); err != nil {
		return RefundNotification{}, err
	}
	plain, err := DecryptReqInfo(outer["req_info"], string(m.APIKey))
	if err != nil {
		return RefundNotification{}, err
	}
	p, err := ParseXML(plain)
	if err != nil {
		return RefundNotification{}, fmt.Errorf("%w: req_info: %w", wechat.ErrDecrypt, err)
	}
	n := RefundNotification{AppID: outer["appid"], MchID: outer["mch_id"], SubAppID: outer["sub_appid"], SubMchID: outer["sub_mch_id"],
		OutTradeNo: p["out_trade_no"], TransactionID: p["transaction_id"],
		OutRefundNo: p["out_refund_no"], RefundID: p["refund_id"], Status: p["refund_status"], Fields: p}
	if n.TotalFen, err = parseFen("total_fee", p["total_fee"]); err != nil {
		return RefundNotification{}, err
	}
	if n.RefundFen, err = parseFen("refund_fee", p["refund_fee"]); err != nil {
		return RefundNotification{}, err
	}
	if n.OutRefundNo == "" || n.Status == "" {
		return RefundNotification{}, fmt.Errorf("%w: out_refund_no or refund_status missing", wechat.ErrMalformed)
	}
	return n, nil
}
