package client

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Payer is who pays an order: exactly one of an openid, an OAuth code or a
// mini-program login code. Make one with [PayerOpenID], [PayerOAuthCode] or
// [PayerLoginCode].
type Payer struct {
	field, value string
}

// PayerOpenID is a payer whose openid under the merchant's AppID the shop
// knows: the order is authorized at once.
func PayerOpenID(openid string) Payer { return Payer{"openid", openid} }

// PayerOAuthCode is the code WeChat's OAuth redirect gave the shop's
// Official Account page ([Client.OAuthURL]); wxflow exchanges it once.
func PayerOAuthCode(code string) Payer { return Payer{"oauth_code", code} }

// PayerLoginCode is the code of wx.login() in the shop's mini-program;
// wxflow exchanges it once. The order's front end is then a mini-program.
func PayerLoginCode(code string) Payer { return Payer{"login_code", code} }

// CreateOrderRequest asks for a new order ([Client.CreateOrder],
// [NATS.CreateOrder]).
type CreateOrderRequest struct {
	// Merchant names the merchant the order is for, by wxflow's name of it.
	// Over HTTP it is optional: the deployment's first merchant when the
	// shop acts for it, else the shop's only one. [NATS.CreateOrder] takes
	// the merchant as its own argument and ignores this field.
	Merchant string
	// AppID is the app the payer pays in (an Official Account or a
	// mini-program of the merchant); optional: the merchant's app of the
	// payer's kind. The openid is under it and paySign is made over it.
	AppID string
	// AmountFen is the amount in fen (1/100 CNY): 1990 is 19.90 CNY. 1 to 1 000 000 000.
	AmountFen int64
	// Description is shown to the payer; at most 127 bytes, no control characters.
	Description string
	// PayAPI is the WeChat Pay API wxflow uses for the order: PayV2 or PayV3.
	PayAPI PayAPI
	// Payer is who pays: required.
	Payer Payer
	// Frontend is optional: FrontendJSAPI by default, FrontendMiniProgram with a login code.
	Frontend Frontend
	// ClientIP is the payer's IP address; optional.
	ClientIP string
	// OutTradeNo is the shop's own number for the order (6-32 of
	// [0-9A-Za-z_-|*]); optional: wxflow makes one.
	OutTradeNo string
	// ExpiresIn is how long the order may stay unpaid, in whole seconds up to
	// 7 days; 0: 2 hours. An unpaid order is closed when it expires.
	ExpiresIn time.Duration
	// IdempotencyKey makes the request safe to send again (up to 200 bytes
	// of visible ASCII): the same key and request answer the same order,
	// never a second one. Send one with every create; with it, the client
	// retries a create that met a network error or a 5xx. Over NATS it
	// names the order (see [NATS.CreateOrder]).
	IdempotencyKey string
}

// createBody is the JSON body of POST /v1/orders.
type createBody struct {
	Merchant         string   `json:"merchant,omitempty"`
	AppID            string   `json:"appid,omitempty"`
	AmountFen        int64    `json:"amount_fen"`
	Description      string   `json:"description"`
	OutTradeNo       string   `json:"out_trade_no,omitempty"`
	OpenID           string   `json:"openid,omitempty"`
	OAuthCode        string   `json:"oauth_code,omitempty"`
	LoginCode        string   `json:"login_code,omitempty"`
	PayAPI           PayAPI   `json:"pay_api"`
	Frontend         Frontend `json:"client,omitempty"`
	ClientIP         string   `json:"client_ip,omitempty"`
	ExpiresInSeconds int64    `json:"expires_in_seconds,omitempty"`
}

func (r CreateOrderRequest) body() createBody {
	b := createBody{Merchant: r.Merchant, AppID: r.AppID, AmountFen: r.AmountFen, Description: r.Description, OutTradeNo: r.OutTradeNo, PayAPI: r.PayAPI,
		Frontend: r.Frontend, ClientIP: r.ClientIP, ExpiresInSeconds: int64(r.ExpiresIn / time.Second)}
	switch r.Payer.field {
	case "openid":
		b.OpenID = r.Payer.value
	case "oauth_code":
		b.OAuthCode = r.Payer.value
	case "login_code":
		b.LoginCode = r.Payer.value
	}
	return b
}

// MarshalJSON writes the request as the body of POST /v1/orders.
func (r CreateOrderRequest) MarshalJSON() ([]byte, error) { return json.Marshal(r.body()) }

// Limits of the shop API's fields (docs/API.md).
const (
	maxAmountFen      = 1_000_000_000
	maxDescription    = 127
	maxRefundReason   = 80
	maxPayerToken     = 128
	maxIdempotencyKey = 200
	maxExpiresIn      = 7 * 24 * time.Hour
)

// Validate reports every problem of the request at once, as wxflow's API
// would (an [Error] with Code "invalid_fields" and its Problems), or nil.
// The API checks every request itself; over NATS, where only the engine's
// few checks stand between a request and WeChat, [NATS.CreateOrder] sends
// only a request that passes.
func (r CreateOrderRequest) Validate() error {
	var ps problems
	if r.Merchant != "" && !validToken(r.Merchant) {
		ps.add("merchant", "invalid_format", "must be 1-32 of [a-z0-9_-]")
	}
	if r.AppID != "" {
		checkToken(&ps, "appid", r.AppID, 32)
	}
	switch {
	case r.AmountFen <= 0:
		ps.add("amount_fen", ProblemOutOfRange, "must be a positive integer (fen)")
	case r.AmountFen > maxAmountFen:
		ps.add("amount_fen", ProblemOutOfRange, fmt.Sprintf("must be at most %d fen", maxAmountFen))
	}
	if strings.TrimSpace(r.Description) == "" {
		ps.add("description", ProblemRequired, "is required")
	} else {
		checkText(&ps, "description", r.Description, maxDescription)
	}
	if r.OutTradeNo != "" && !validMerchantNo(r.OutTradeNo) {
		ps.add("out_trade_no", ProblemInvalidFormat, "must be 6-32 of [0-9A-Za-z_-|*]")
	}
	switch {
	case r.Payer.field == "":
		ps.add("openid", ProblemRequired, "one of openid, oauth_code and login_code is required")
	case r.Payer.value == "":
		ps.add(r.Payer.field, ProblemRequired, "is required")
	default:
		checkToken(&ps, r.Payer.field, r.Payer.value, maxPayerToken)
	}
	if r.PayAPI != PayV2 && r.PayAPI != PayV3 {
		ps.add("pay_api", ProblemInvalidValue, `must be "v2" or "v3"`)
	}
	switch {
	case r.Frontend != "" && r.Frontend != FrontendJSAPI && r.Frontend != FrontendMiniProgram:
		ps.add("client", ProblemInvalidValue, `must be "jsapi" or "miniprogram"`)
	case r.Payer.field == "login_code" && r.Frontend == FrontendJSAPI:
		ps.add("client", ProblemConflicting, "a login_code comes from a mini-program: client must be miniprogram")
	}
	if r.ClientIP != "" {
		if _, err := netip.ParseAddr(r.ClientIP); err != nil || len(r.ClientIP) > 45 {
			ps.add("client_ip", ProblemInvalidFormat, "must be an IPv4 or IPv6 address")
		}
	}
	if r.ExpiresIn < 0 || r.ExpiresIn > maxExpiresIn || r.ExpiresIn%time.Second != 0 {
		ps.add("expires_in_seconds", ProblemOutOfRange, fmt.Sprintf("must be whole seconds between 0 and %d", int(maxExpiresIn/time.Second)))
	}
	if r.IdempotencyKey != "" {
		checkToken(&ps, "Idempotency-Key", r.IdempotencyKey, maxIdempotencyKey)
	}
	return ps.err()
}

// RefundRequest asks to refund part or all of a paid order ([Client.Refund],
// [NATS.Refund]).
type RefundRequest struct {
	// AmountFen is how much to give back, in fen: at most what remains of
	// the payment.
	AmountFen int64
	// Reason is shown to the payer; at most 80 bytes. Optional.
	Reason string
	// OutRefundNo is the shop's number for the refund (6-32 of
	// [0-9A-Za-z_-|*]): the same number and amount again refund nothing more.
	// Give it, or an IdempotencyKey: a refund sent again with neither is a
	// new refund (and the client never retries it).
	OutRefundNo string
	// IdempotencyKey derives the refund's number when OutRefundNo is empty.
	IdempotencyKey string
}

// refundBody is the JSON body of POST /v1/orders/{id}/refunds.
type refundBody struct {
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason,omitempty"`
	OutRefundNo string `json:"out_refund_no,omitempty"`
}

// Validate reports every problem of the request at once, as wxflow's API
// would, or nil.
func (r RefundRequest) Validate() error {
	var ps problems
	if r.AmountFen <= 0 || r.AmountFen > maxAmountFen {
		ps.add("amount_fen", ProblemOutOfRange, fmt.Sprintf("must be a positive integer (fen) up to %d", maxAmountFen))
	}
	checkText(&ps, "reason", r.Reason, maxRefundReason)
	if r.OutRefundNo != "" && !validMerchantNo(r.OutRefundNo) {
		ps.add("out_refund_no", ProblemInvalidFormat, "must be 6-32 of [0-9A-Za-z_-|*]")
	}
	if r.IdempotencyKey != "" {
		checkToken(&ps, "Idempotency-Key", r.IdempotencyKey, maxIdempotencyKey)
	}
	return ps.err()
}

// validMerchantNo: 6-32 of digits, letters and _-|* (WeChat Pay's rule for
// out_trade_no and out_refund_no).
func validMerchantNo(s string) bool {
	if len(s) < 6 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("_-|*", c)) {
			return false
		}
	}
	return true
}

// checkText: at most max bytes of valid UTF-8 without control characters.
func checkText(ps *problems, field, v string, max int) {
	switch {
	case len(v) > max:
		ps.add(field, ProblemTooLong, fmt.Sprintf("must be at most %d bytes", max))
	case !cleanText(v):
		ps.add(field, ProblemControlCharacter, "must not hold control characters")
	}
}

// cleanText: valid UTF-8 without control characters (C0, DEL, C1) or the
// line and paragraph separators.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' || c == utf8.RuneError {
			return false
		}
	}
	return true
}

// checkToken: at most max bytes of visible ASCII (codes, openids, keys).
func checkToken(ps *problems, field, v string, max int) {
	if len(v) > max {
		ps.add(field, ProblemTooLong, fmt.Sprintf("must be at most %d bytes", max))
		return
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			ps.add(field, ProblemInvalidFormat, "must be visible ASCII characters only")
			return
		}
	}
}
