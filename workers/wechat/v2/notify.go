package v2

import (
	"fmt"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// PaymentNotification is a verified v2 payment result notification (支付结果通知).
type PaymentNotification struct {
	AppID         string
	MchID         string
	OutTradeNo    string
	TransactionID string
	TotalFen      int64
	OpenID        string
	TimeEnd       time.Time
	Paid          bool              // result_code=SUCCESS
	Fields        map[string]string // every field received, verified
}

// ParseNotify parses and verifies a payment notification: the signature over
// every field, then appid and mch_id against the merchant. The caller must
// still check the amount against its order.
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
	if p["appid"] != m.AppID || p["mch_id"] != m.MchID {
		return PaymentNotification{}, fmt.Errorf("%w: notification for appid %q mch_id %q", wechat.ErrForeign, p["appid"], p["mch_id"])
	}
	n := PaymentNotification{AppID: p["appid"], MchID: p["mch_id"], OutTradeNo: p["out_trade_no"],
		TransactionID: p["transaction_id"], OpenID: p["openid"], Paid: p["result_code"] == "SUCCESS", Fields: p}
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
	OutTradeNo    string
	TransactionID string
	OutRefundNo   string
	RefundID      string
	TotalFen      int64
	RefundFen     int64
	Status        string // SUCCESS, CHANGE, REFUNDCLOSE
	Fields        map[string]string
}

// ParseRefundNotify checks the outer appid and mch_id and decrypts req_info:
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
	if outer["appid"] != m.AppID || outer["mch_id"] != m.MchID {
		return RefundNotification{}, fmt.Errorf("%w: notification for appid %q mch_id %q", wechat.ErrForeign, outer["appid"], outer["mch_id"])
	}
	plain, err := DecryptReqInfo(outer["req_info"], string(m.APIKey))
	if err != nil {
		return RefundNotification{}, err
	}
	p, err := ParseXML(plain)
	if err != nil {
		return RefundNotification{}, fmt.Errorf("%w: req_info: %w", wechat.ErrDecrypt, err)
	}
	n := RefundNotification{OutTradeNo: p["out_trade_no"], TransactionID: p["transaction_id"],
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
