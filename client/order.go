package client

import (
	"encoding/json"
	"time"
)

// State is where an order is in its lifecycle.
type State string

// The order states (docs/API.md, "Poll the order").
const (
	StateCreated    State = "created"    // wxflow has the order; the payer's openid is not known yet
	StateAuthorized State = "authorized" // the openid is known
	StatePrepaid    State = "prepaid"    // WeChat gave a prepay_id
	StateSigned     State = "signed"     // the pay parameters are signed: show the pay sheet now
	StateNotified   State = "notified"   // paid: a verified notification or an order query said so
	StateRefunding  State = "refunding"  // a refund is at WeChat
	StateRefunded   State = "refunded"   // at least one refund settled; more may follow
	StateClosed     State = "closed"     // closed unpaid, by the shop or at expiry
	StateFailed     State = "failed"     // a step failed for good (FailCode, FailReason)
)

// PayAPI is the WeChat Pay API generation wxflow uses for an order.
type PayAPI string

// The WeChat Pay API generations.
const (
	PayV2 PayAPI = "v2" // XML, MD5
	PayV3 PayAPI = "v3" // JSON, RSA
)

// Frontend is what asks the payer to pay; it decides the pay parameters'
// shape. Its JSON field is "client".
type Frontend string

// The front ends wxflow signs for.
const (
	// FrontendJSAPI is an Official Account page (WeixinJSBridge or wx.chooseWXPay): the default.
	FrontendJSAPI Frontend = "jsapi"
	// FrontendMiniProgram is a mini-program (wx.requestPayment): the default with a login code.
	FrontendMiniProgram Frontend = "miniprogram"
)

// Order is one payment order as wxflow answers it. Amounts are integer fen
// (1/100 CNY).
type Order struct {
	ID       string `json:"id"`
	Merchant string `json:"merchant"`
	// Shop is the shop that created the order.
	Shop        string   `json:"shop,omitempty"`
	OutTradeNo  string   `json:"out_trade_no"`
	Description string   `json:"description"`
	AmountFen   int64    `json:"amount_fen"`
	PayAPI      PayAPI   `json:"pay_api"`
	Frontend    Frontend `json:"client"`
	// AppID is the app the payer pays in (absent on orders made before
	// wxflow served several apps).
	AppID string `json:"appid,omitempty"`
	// OpenID is the payer under AppID, once known.
	OpenID    string `json:"openid,omitempty"`
	OAuthCode string `json:"oauth_code,omitempty"`
	LoginCode string `json:"login_code,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	State     State  `json:"state"`
	PrepayID  string `json:"prepay_id,omitempty"`
	// PayParams are the signed pay parameters once the order was signed
	// (also after it is paid); prefer [Client.PayParams], which answers
	// only while the order can be paid.
	PayParams     json.RawMessage `json:"pay_params,omitempty"`
	TransactionID string          `json:"transaction_id,omitempty"`
	PaidFen       int64           `json:"paid_fen"`
	RefundedFen   int64           `json:"refunded_fen"`
	// ExpiresAt is when an unpaid order is closed.
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version counts the order's applied transitions: an event with a Seq
	// not above it is old news.
	Version int64 `json:"version"`
	// Flags are what the order needs a person for; empty when all is well.
	Flags      []string `json:"flags,omitempty"`
	Flag       string   `json:"flag,omitempty"`
	FailCode   string   `json:"fail_code,omitempty"`
	FailReason string   `json:"fail_reason,omitempty"`
}

// Paid says whether the order is paid: only wxflow decides that (a verified
// notification or an order query), never the page's pay callback. It is in
// a paid state and its whole amount was paid.
func (o Order) Paid() bool {
	switch o.State {
	case StateNotified, StateRefunding, StateRefunded:
		return o.PaidFen == o.AmountFen
	}
	return false
}

// Final says whether the order will not move again by itself: closed,
// failed, or paid and wholly refunded.
func (o Order) Final() bool {
	return o.State == StateClosed || o.State == StateFailed || o.State == StateRefunded && o.RefundedFen >= o.PaidFen
}

// OrderView is the answer of [Client.GetOrder]: the order, its history and
// its refunds.
type OrderView struct {
	Order   Order          `json:"order"`
	History []HistoryEntry `json:"history"`
	Refunds []Refund       `json:"refunds"`
}

// HistoryEntry is one line of an order's timeline: an applied event, or a
// request that was refused (Applied false, with its Code and Reason).
type HistoryEntry struct {
	At        time.Time `json:"at"`
	Applied   bool      `json:"applied"`
	Type      string    `json:"type"` // the event type, or the refused command's verb
	From      State     `json:"from,omitempty"`
	To        State     `json:"to,omitempty"`
	Seq       int64     `json:"seq,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	CommandID string    `json:"command_id"`
	Actor     string    `json:"actor,omitempty"`
	Code      string    `json:"code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// OrderResult is wxflow's answer to a command on an order (create, close).
type OrderResult struct {
	// Order is the order as it is now. When Pending, only its ID is set.
	Order Order
	// Pending: wxflow has the command durably but the engine has not
	// answered in time (HTTP 202 {"pending":true}); it will be applied.
	// Poll the order ([Client.GetOrder]) or send the same request again.
	Pending bool
	// Replayed: the same request was answered before (an Idempotency-Key,
	// out_refund_no or close seen again); nothing was done twice, and the
	// order is as it is now.
	Replayed bool
}
