package engine

import (
	"database/sql/driver"
	"fmt"
	"time"
)

// OrderID is wxflow's own id of an order. It is safe as a NATS subject token
// (letters, digits, '_' and '-' only), since events are published on
// wxflow.evt.<merchant>.<type>.<order_id>.
type OrderID string

// State is where an order is in its lifecycle (lifecycle.go is its table).
type State string

// The order states (docs/ARCHITECTURE.md, the lifecycle).
const (
	Created    State = "created"
	Authorized State = "authorized"
	Prepaid    State = "prepaid"
	Signed     State = "signed"
	Notified   State = "notified" // paid: a verified notification or an order query said so
	Refunding  State = "refunding"
	Refunded   State = "refunded" // at least one refund settled; more may follow while money remains
	Closed     State = "closed"
	Failed     State = "failed"
)

// PayAPI selects the WeChat Pay API generation used for one order.
type PayAPI string

// The two WeChat Pay API generations.
const (
	PayV2 PayAPI = "v2" // XML, MD5 / HMAC-SHA256
	PayV3 PayAPI = "v3" // JSON, RSA
)

// Client is the front end that will ask the payer to pay; it decides the
// shape of the pay parameters (the front-end pay parameters of WeChat's JSAPI /
// mini-program payment, 调起支付).
type Client string

// The front ends wxflow signs for.
const (
	ClientJSAPI       Client = "jsapi"       // Official Account page: WeixinJSBridge or wx.chooseWXPay
	ClientMiniProgram Client = "miniprogram" // wx.requestPayment
)

// Order is one payment order as the store keeps it and as events carry it.
// It holds no secret: it is published on NATS with every event.
type Order struct {
	ID       OrderID `json:"id" db:"id"`
	Merchant string  `json:"merchant" db:"merchant"`
	// Shop is the shop that created the order through the shop API; only it
	// sees and acts on the order there ("" for orders made before shops).
	Shop        string `json:"shop,omitempty" db:"shop"`
	OutTradeNo  string `json:"out_trade_no" db:"out_trade_no"`
	Description string `json:"description" db:"description"`
	// AmountFen is the amount to pay, in fen (1/100 CNY).
	AmountFen int64  `json:"amount_fen" db:"amount_fen"`
	PayAPI    PayAPI `json:"pay_api" db:"pay_api"`
	Client    Client `json:"client" db:"client"`
	// AppID is the app the payer pays in (an Official Account or a
	// mini-program of the merchant, or of its service provider): the openid
	// is under it, the front-end paySign is made over it. Empty: the
	// merchant's app for Client (orders of before, and orders whose creator
	// named none).
	AppID string `json:"appid,omitempty" db:"appid"`
	// OpenID is the payer under AppID, once known.
	OpenID string `json:"openid,omitempty" db:"openid"`
	// OAuthCode or LoginCode is what the shop gave instead of an openid: a
	// single-use code the authorize worker exchanges once.
	OAuthCode string `json:"oauth_code,omitempty" db:"oauth_code"`
	LoginCode string `json:"login_code,omitempty" db:"login_code"`
	// ClientIP is the payer's IP (spbill_create_ip / payer_client_ip).
	ClientIP string `json:"client_ip,omitempty" db:"client_ip"`
	State    State  `json:"state" db:"state"`
	PrepayID string `json:"prepay_id,omitempty" db:"prepay_id"`
	// PayParams is the signed front-end parameter object (JSON), once signed.
	PayParams     RawJSON `json:"pay_params,omitempty" db:"pay_params"`
	TransactionID string  `json:"transaction_id,omitempty" db:"transaction_id"`
	PaidFen       int64   `json:"paid_fen" db:"paid_fen"`
	RefundedFen   int64   `json:"refunded_fen" db:"refunded_fen"`
	// ExpiresAt is when an unpaid order is closed.
	ExpiresAt time.Time `json:"expires_at" db:"expires_at"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
	UpdatedAt time.Time `json:"updated_at" db:"updated_at"`
	// Version counts applied transitions; it is the per-order event sequence.
	Version int64 `json:"version" db:"version"`
	// Flags are what the order needs a person or a replay for (flags.go:
	// amount mismatch, payment after close, a dead-lettered event …), in the
	// order raised; empty when all is well.
	Flags Flags `json:"flags,omitempty" db:"flags"`
	// Flag is Flags' primary flag (the first alert, else the first flag), as
	// one-line views (the admin page's lists, the stuck list) show it; it was
	// the only flag before orders kept a set, and its JSON stays.
	Flag       string `json:"flag,omitempty" db:"flag"`
	FailCode   string `json:"fail_code,omitempty" db:"fail_code"`
	FailReason string `json:"fail_reason,omitempty" db:"fail_reason"`
}

// RefundState is where one refund is.
type RefundState string

// The refund states. A refund is queued when asked, pending once the engine
// has sent it to the refund worker (one of an order's refunds at a time, a
// gap after the one before: refundqueue.go), and settled by WeChat's word.
const (
	RefundQueued    RefundState = "queued"    // accepted; not sent to WeChat yet
	RefundPending   RefundState = "pending"   // sent to WeChat; its result awaited
	RefundSucceeded RefundState = "succeeded" // WeChat says SUCCESS
	RefundFailed    RefundState = "failed"    // WeChat refused it for good or closed it (CLOSED / REFUNDCLOSE)
)

// Commits reports whether a refund in this state holds part of the payment:
// queued, pending and succeeded refunds together never exceed what was paid.
func (s RefundState) Commits() bool { return s != RefundFailed }

// MaxRefundsPerOrder is how many refunds WeChat takes of one order (at most
// 50 partial refunds); the engine refuses the next one (too_many_refunds).
const MaxRefundsPerOrder = 50

// Refund is one refund of an order, identified by its out_refund_no, which is
// reused on every retry so WeChat never refunds twice.
type Refund struct {
	OutRefundNo string      `json:"out_refund_no" db:"out_refund_no"`
	OrderID     OrderID     `json:"order_id" db:"order_id"`
	AmountFen   int64       `json:"amount_fen" db:"amount_fen"`
	Reason      string      `json:"reason,omitempty" db:"reason"`
	State       RefundState `json:"state" db:"state"`
	RefundID    string      `json:"refund_id,omitempty" db:"refund_id"`
	// Seq is the refund's place among its order's refunds (1, 2 …): the
	// order they were asked in, and are sent to WeChat in.
	Seq int `json:"seq" db:"seq"`
	// SentAt is when the engine handed the refund to the refund worker
	// (nil while queued); SettledAt when WeChat's final word was recorded.
	SentAt    *time.Time `json:"sent_at,omitempty" db:"sent_at"`
	SettledAt *time.Time `json:"settled_at,omitempty" db:"settled_at"`
	// ErrorCode and ErrorMessage are WeChat's, for a failed refund: the code
	// and message of its refusal (USER_ACCOUNT_ABNORMAL …), or the status
	// word of a refund it closed (CLOSED, REFUNDCLOSE).
	ErrorCode    string    `json:"error_code,omitempty" db:"error_code"`
	ErrorMessage string    `json:"error_message,omitempty" db:"error_message"`
	CreatedAt    time.Time `json:"created_at" db:"created_at"`
	UpdatedAt    time.Time `json:"updated_at" db:"updated_at"`
}

// fixRefund gives a refund read from the store UTC times.
func fixRefund(r *Refund) {
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	for _, t := range []**time.Time{&r.SentAt, &r.SettledAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
}

// RawJSON is a JSON value kept as it came (the signed pay parameters): it is
// stored as text and written back into events and API answers unchanged.
type RawJSON []byte

// MarshalJSON writes the value as is (null when empty).
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the raw value.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], b...)
	return nil
}

// Scan reads the stored text.
func (r *RawJSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*r = nil
	case string:
		*r = RawJSON(v)
	case []byte:
		*r = append(RawJSON(nil), v...)
	default:
		return fmt.Errorf("RawJSON: cannot scan %T", src)
	}
	if len(*r) == 0 {
		*r = nil
	}
	return nil
}

// Value stores the text ("" when empty).
func (r RawJSON) Value() (driver.Value, error) { return string(r), nil }
