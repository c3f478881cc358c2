package sim

import "time"

// Trade states, as WeChat names them.
const (
	stateNotPay   = "NOTPAY"
	stateSuccess  = "SUCCESS"
	stateRefund   = "REFUND"
	stateClosed   = "CLOSED"
	statePayError = "PAYERROR"
)

// order is one payment WeChat knows, keyed by (mchid, out_trade_no). A
// partner order (SubMchID set) has the provider's sp_appid and sp_mchid in
// AppID and MchID, its payer's sp_openid in OpenID or sub_openid in SubOpenID.
type order struct {
	API           string    `json:"api"` // "v2" or "v3": who created it decides the notification's shape
	AppID         string    `json:"appid"`
	MchID         string    `json:"mchid"`
	SubMchID      string    `json:"sub_mchid,omitempty"`
	SubAppID      string    `json:"sub_appid,omitempty"`
	SubOpenID     string    `json:"sub_openid,omitempty"`
	OutTradeNo    string    `json:"out_trade_no"`
	Fingerprint   string    `json:"-"` // the order parameters; another set with the same number is OUT_TRADE_NO_USED
	PrepayID      string    `json:"prepay_id"`
	TotalFen      int64     `json:"total_fen"`
	OpenID        string    `json:"openid"`
	NotifyURL     string    `json:"notify_url"`
	SignType      string    `json:"sign_type,omitempty"`
	TradeType     string    `json:"trade_type"`
	State         string    `json:"trade_state"`
	TransactionID string    `json:"transaction_id,omitempty"`
	PaidAt        time.Time `json:"paid_at,omitzero"`
	RefundedFen   int64     `json:"refunded_fen"`
	CreatedAt     time.Time `json:"created_at"`
	Description   string    `json:"description,omitempty"` // body / description: the bill's 商品名称
	refunding     int       // refunds of it still PROCESSING
}

// refund is one refund, keyed by (mchid, out_refund_no); it names its
// order's merchant and apps.
type refund struct {
	API         string    `json:"api"`
	MchID       string    `json:"mchid"`
	SubMchID    string    `json:"sub_mchid,omitempty"`
	AppID       string    `json:"appid"`
	SubAppID    string    `json:"sub_appid,omitempty"`
	OutRefundNo string    `json:"out_refund_no"`
	OutTradeNo  string    `json:"out_trade_no"`
	RefundID    string    `json:"refund_id"`
	RefundFen   int64     `json:"refund_fen"`
	Status      string    `json:"status"` // PROCESSING, SUCCESS
	NotifyURL   string    `json:"notify_url,omitempty"`
	SignType    string    `json:"-"`
	CreatedAt   time.Time `json:"created_at"`
	SettledAt   time.Time `json:"settled_at,omitzero"` // when it became SUCCESS: the REFUND bill's 退款成功时间
}

// delivery is one notification and its attempts.
type delivery struct {
	ID        string      `json:"id"`
	Kind      string      `json:"kind"` // v2-pay, v2-refund, v3-pay, v3-refund
	URL       string      `json:"url"`
	Key       string      `json:"key"`   // out_trade_no or out_refund_no
	MchID     string      `json:"mchid"` // the merchant notified (a provider for its sub-merchants)
	Attempts  int         `json:"attempts"`
	Delivered bool        `json:"delivered"`
	Dropped   bool        `json:"dropped,omitempty"`
	LastError string      `json:"last_error,omitempty"`
	body      []byte      // immutable once queued
	header    httpHeaders // immutable once queued
}

type httpHeaders = map[string]string

// code is a single-use OAuth or wx.login code, for one app.
type code struct {
	AppID   string
	OpenID  string
	Used    bool
	Expires time.Time
}

// token is an access_token or jsapi_ticket WeChat issued.
type token struct {
	AppID   string
	Expires time.Time
}
