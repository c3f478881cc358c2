package v3

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wxflow/wxflow/workers/wechat"
)

// Notification is the envelope of a WeChat Pay v3 notification (支付通知, 退款结果通知).
type Notification struct {
	ID           string   `json:"id"`
	CreateTime   string   `json:"create_time"`
	EventType    string   `json:"event_type"`
	ResourceType string   `json:"resource_type"`
	Summary      string   `json:"summary"`
	Resource     Resource `json:"resource"`
}

// ParseNotify verifies a notification over its raw body (serial, timestamp,
// signature), then decrypts its resource.
func (c *Client) ParseNotify(header http.Header, body []byte) (Notification, []byte, error) {
	if err := c.verify(header, body); err != nil {
		return Notification{}, nil, err
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return Notification{}, nil, fmt.Errorf("%w: %w", wechat.ErrMalformed, err)
	}
	plain, err := DecryptResource(string(c.cfg.Merchant.APIv3Key), n.Resource)
	if err != nil {
		return Notification{}, nil, err
	}
	return n, plain, nil
}

// ParsePaymentNotify parses a TRANSACTION.SUCCESS notification, direct or
// partner, and checks that it is for this merchant: mchid (sp_mchid),
// sub_mchid, and apps that are the merchant's in their places. The caller
// checks the order's app and amount ([Transaction.Identity]).
func (c *Client) ParsePaymentNotify(header http.Header, body []byte) (Transaction, error) {
	n, plain, err := c.ParseNotify(header, body)
	if err != nil {
		return Transaction{}, err
	}
	if n.Resource.OriginalType != "transaction" {
		return Transaction{}, fmt.Errorf("%w: original_type %q", wechat.ErrMalformed, n.Resource.OriginalType)
	}
	var t Transaction
	if err := json.Unmarshal(plain, &t); err != nil {
		return Transaction{}, fmt.Errorf("%w: %w", wechat.ErrMalformed, err)
	}
	if t.partnerShape() && t.directShape() {
		return Transaction{}, fmt.Errorf("%w: transaction with both direct and partner fields", wechat.ErrMalformed)
	}
	if err := ownsMerchant(c.cfg.Merchant, t.Identity(), true); err != nil {
		return Transaction{}, err
	}
	if t.OutTradeNo == "" || t.TransactionID == "" {
		return Transaction{}, fmt.Errorf("%w: out_trade_no or transaction_id missing", wechat.ErrMalformed)
	}
	return t, nil
}

// RefundNotification is the decrypted resource of a REFUND.* notification.
// In partner mode it names sp_mchid and sub_mchid instead of mchid
// ([RefundNotification.Identity] reads either).
type RefundNotification struct {
	MchID         string `json:"mchid,omitempty"`
	SpMchID       string `json:"sp_mchid,omitempty"`
	SubMchID      string `json:"sub_mchid,omitempty"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	RefundID      string `json:"refund_id"`
	RefundStatus  string `json:"refund_status"` // SUCCESS, CLOSED, ABNORMAL
	SuccessTime   string `json:"success_time"`
	Amount        Amount `json:"amount"`
}

// ParseRefundNotify parses a REFUND.* notification for this merchant
// (mchid, or sp_mchid and sub_mchid).
func (c *Client) ParseRefundNotify(header http.Header, body []byte) (RefundNotification, error) {
	n, plain, err := c.ParseNotify(header, body)
	if err != nil {
		return RefundNotification{}, err
	}
	if n.Resource.OriginalType != "refund" {
		return RefundNotification{}, fmt.Errorf("%w: original_type %q", wechat.ErrMalformed, n.Resource.OriginalType)
	}
	var r RefundNotification
	if err := json.Unmarshal(plain, &r); err != nil {
		return RefundNotification{}, fmt.Errorf("%w: %w", wechat.ErrMalformed, err)
	}
	if r.MchID != "" && (r.SpMchID != "" || r.SubMchID != "") {
		return RefundNotification{}, fmt.Errorf("%w: refund with both mchid and sp_mchid/sub_mchid", wechat.ErrMalformed)
	}
	if err := ownsMerchant(c.cfg.Merchant, r.Identity(), false); err != nil {
		return RefundNotification{}, err
	}
	if r.OutRefundNo == "" || r.RefundStatus == "" {
		return RefundNotification{}, fmt.Errorf("%w: out_refund_no or refund_status missing", wechat.ErrMalformed)
	}
	return r, nil
}
