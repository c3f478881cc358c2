// Package pay is one version-agnostic facade over WeChat Pay API v2 and v3,
// so that the workers say "prepay this" and not "build this XML". It knows
// nothing of wxflow's orders: its words are out_trade_no and fen.
package pay

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// API names a WeChat Pay API generation: "v2" or "v3".
type API = string

// Config configures [Payments].
type Config struct {
	Merchant *wechat.Merchant
	V2       *v2.Client
	V3       *v3.Client
	// NotifyBaseURL is how WeChat reaches wxflow's API; notifications go to
	// <NotifyBaseURL>/wechat/notify/<merchant name>/{v2,v3}/{pay,refund}.
	NotifyBaseURL string
	// Nonce makes the nonceStr of front-end pay parameters; each
	// generation's NonceStr when nil. Tests pin it to reproduce WeChat's published examples.
	Nonce func() string
}

// Payments makes the calls of one merchant in either API generation.
type Payments struct{ cfg Config }

// ErrUnknownAPI: an API other than "v2" and "v3".
var ErrUnknownAPI = errors.New("pay: unknown API (want v2 or v3)")

// ErrUnknownApp: an order's app is neither the merchant's own nor, for a
// sub-merchant, its provider's (wechat.ErrUnknownApp).
var ErrUnknownApp = wechat.ErrUnknownApp

// New checks cfg.
func New(cfg Config) (*Payments, error) {
	if cfg.Merchant == nil || cfg.V2 == nil || cfg.V3 == nil || cfg.NotifyBaseURL == "" {
		return nil, errors.New("pay: Merchant, V2, V3 and NotifyBaseURL are required")
	}
	cfg.NotifyBaseURL = strings.TrimRight(cfg.NotifyBaseURL, "/")
	return &Payments{cfg: cfg}, nil
}

// NotifyURL is where WeChat sends notifications of kind "pay" or "refund".
func (p *Payments) NotifyURL(api API, kind string) string {
	return p.cfg.NotifyBaseURL + "/wechat/notify/" + p.cfg.Merchant.Name + "/" + api + "/" + kind
}

// PrepayRequest is a JSAPI prepay (the Official Account page and the mini-program alike).
type PrepayRequest struct {
	API API
	// AppID is the app the payer pays in (an Official Account or a
	// mini-program), which OpenID belongs to; empty means the merchant's
	// AppID. For a sub-merchant it decides sp_openid (a provider's app) or
	// sub_appid and sub_openid (its own app).
	AppID       string
	OutTradeNo  string
	Description string
	AmountFen   int64
	OpenID      string
	ClientIP    string
	ExpiresAt   time.Time
}

// Prepay returns a prepay_id; WeChat answers the same one for the same
// out_trade_no and parameters, so retries are safe.
func (p *Payments) Prepay(ctx context.Context, r PrepayRequest) (string, error) {
	if r.API == "v2" || r.API == "v3" {
		if _, _, err := p.cfg.Merchant.OrderApps(r.AppID); err != nil {
			return "", err
		}
	}
	switch r.API {
	case "v2":
		res, err := p.cfg.V2.UnifiedOrder(ctx, v2.UnifiedOrderRequest{AppID: r.AppID, Body: r.Description, OutTradeNo: r.OutTradeNo,
			TotalFen: r.AmountFen, ClientIP: clientIP(r.ClientIP), NotifyURL: p.NotifyURL("v2", "pay"), TradeType: "JSAPI",
			OpenID: r.OpenID, TimeExpire: r.ExpiresAt})
		return res.PrepayID, err
	case "v3":
		return p.cfg.V3.PrepayJSAPI(ctx, v3.PrepayRequest{AppID: r.AppID, Description: r.Description, OutTradeNo: r.OutTradeNo,
			TotalFen: r.AmountFen, OpenID: r.OpenID, NotifyURL: p.NotifyURL("v3", "pay"), ClientIP: r.ClientIP, TimeExpire: r.ExpiresAt})
	}
	return "", ErrUnknownAPI
}

func clientIP(ip string) string {
	if ip == "" {
		return "127.0.0.1"
	}
	return ip
}

// FrontEnd holds the signed pay parameters in the exact shape each front end
// wants (WeChat's JSAPI / mini-program payment, 调起支付): the key casing
// differs, the signature does not.
type FrontEnd struct {
	// Bridge is for WeixinJSBridge.invoke('getBrandWCPayRequest', …): appId, timeStamp, nonceStr, package, signType, paySign.
	Bridge map[string]string `json:"bridge"`
	// ChooseWXPay is for wx.chooseWXPay after wx.config: timestamp (lower-case s), nonceStr, package, signType, paySign.
	ChooseWXPay map[string]string `json:"choose_wx_pay"`
	// RequestPayment is for the mini-program's wx.requestPayment: timeStamp, nonceStr, package, signType, paySign.
	RequestPayment map[string]string `json:"request_payment"`
}

// PayParams signs the front-end parameters of a prepay_id for a payer in
// app appid, the order's app (empty = the merchant's AppID). They are
// deterministic in their inputs: regenerate freely, never re-prepay to re-sign.
//
// appId is always the app the payer pays in, never a sub-merchant's
// sp_appid in its stead: WeChat checks the signature against the running
// app, and a sub-merchant's mini-program signed over its provider's app
// fails to pay ("支付验证签名失败"). The key is the merchant's, which for a
// sub-merchant is its provider's (v2 API key, v3 private key).
func (p *Payments) PayParams(api API, appid, prepayID string, now time.Time) (FrontEnd, error) {
	m := p.cfg.Merchant
	if appid == "" {
		appid = m.AppID
	}
	if _, _, err := m.OrderApps(appid); err != nil {
		return FrontEnd{}, err
	}
	var base map[string]string
	switch api {
	case "v2":
		base = v2.PayParams(appid, prepayID, p.nonce(v2.NonceStr), now.Unix(), string(m.APIKey), v2.SignMD5)
	case "v3":
		var err error
		if base, err = v3.PayParams(m.Signer(), appid, prepayID, p.nonce(v3.NonceStr), now.Unix()); err != nil {
			return FrontEnd{}, err
		}
	default:
		return FrontEnd{}, ErrUnknownAPI
	}
	f := FrontEnd{Bridge: base, ChooseWXPay: map[string]string{}, RequestPayment: map[string]string{}}
	for k, v := range base {
		if k != "appId" {
			f.RequestPayment[k] = v
			if k == "timeStamp" {
				k = "timestamp"
			}
			f.ChooseWXPay[k] = v
		}
	}
	return f, nil
}

// nonce is a nonceStr from Config.Nonce, else from def.
func (p *Payments) nonce(def func() string) string {
	if p.cfg.Nonce != nil {
		return p.cfg.Nonce()
	}
	return def()
}

// JSON renders f for storage and the API.
func (f FrontEnd) JSON() json.RawMessage {
	b, _ := json.Marshal(f)
	return b
}
