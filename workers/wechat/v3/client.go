package v3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// Config configures a v3 [Client].
type Config struct {
	// BaseURL stands for https://api.mch.weixin.qq.com (or the simulator).
	BaseURL string
	// Merchant holds the private key, its serial, the APIv3 key and the WeChat Pay public key.
	Merchant *wechat.Merchant
	// HTTPClient makes the calls; one with a 10 s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock for signatures and freshness checks; time.Now when nil.
	Now func() time.Time
	// Failover, when set, sends a call to WeChat Pay's backup host when the
	// primary fails to answer (package failover); its primary must be
	// BaseURL. A 5xx answer whose signature verifies is WeChat's and stays an
	// answer. None when nil.
	Failover *failover.Hosts
}

// Client calls WeChat Pay API v3 for one merchant. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// NewClient checks cfg.
func NewClient(cfg Config) (*Client, error) {
	m := cfg.Merchant
	if cfg.BaseURL == "" || m == nil || m.PrivateKey == nil || m.WechatPayPublicKey == nil || m.SerialNo == "" {
		return nil, errors.New("v3: BaseURL and a Merchant with private key, serial and WeChat Pay public key are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c := &Client{cfg: cfg, http: hc}
	if cfg.Failover != nil {
		if !cfg.Failover.Serves(cfg.BaseURL) {
			return nil, fmt.Errorf("v3: the failover's primary is not BaseURL %s", cfg.BaseURL)
		}
		wrapped := *hc
		wrapped.Transport = cfg.Failover.Transport(hc.Transport, func(h http.Header, body []byte) bool { return c.verify(h, body) == nil })
		c.http = &wrapped
	}
	return c, nil
}

// errorBody is WeChat's v3 error answer.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// do signs and sends a request, verifies the response's signature, and
// decodes a 2xx body into out (when not nil).
func (c *Client) do(ctx context.Context, method, pathAndQuery string, in, out any) error {
	api := strings.TrimPrefix(strings.SplitN(pathAndQuery, "?", 2)[0], "/")
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	m := c.cfg.Merchant
	nonce := NonceStr()
	ts := c.cfg.Now().Unix()
	sig, err := SignMessage(m.Signer(), RequestMessage(method, pathAndQuery, ts, nonce, body))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+pathAndQuery, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", AuthorizationHeader(m.MchID, m.SerialNo, nonce, ts, sig))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wxflow")
	req.Header.Set("Wechatpay-Serial", m.WechatPayPublicKeyID)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &wechat.Error{API: api, Retryable: ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true, Err: err}
	}
	if resp.StatusCode >= 300 {
		return c.errorAnswer(api, resp, raw)
	}
	if err := c.verify(resp.Header, raw); err != nil {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Code: "SIGN_ERROR", Message: "response signature", Err: err}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("%w: %w", wechat.ErrMalformed, err)}
		}
	}
	return nil
}

// errorAnswer reads a non-2xx answer. An error that is retried changes
// nothing, so it may come unsigned (a gateway's bare 502, a 429). Every other
// error is acted on: ORDERPAID turns into an order query and a payment,
// ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS and ORDER_CLOSED confirm a close,
// NOT_ENOUGH and any other final code fail a step or close a refund. So it
// must be WeChat's word, verified like a success answer (Wechatpay-Signature
// over the timestamp, the nonce and the body, with the WeChat Pay key):
// unsigned or not verifying, it is not WeChat's, carries no code, and the
// call is tried again (Retryable), never acted on.
func (c *Client) errorAnswer(api string, resp *http.Response, raw []byte) error {
	var eb errorBody
	_ = json.Unmarshal(raw, &eb)
	if retryableAnswer(resp.StatusCode, eb.Code) {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Code: eb.Code, Message: eb.Message, Retryable: true}
	}
	if err := c.verify(resp.Header, raw); err != nil {
		return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true,
			Err: fmt.Errorf("error answer that does not verify, not acted on: %w", err)}
	}
	return &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Code: eb.Code, Message: eb.Message}
}

// retryableAnswer reports whether an error answer is worth the same call
// again: a server error, a rate limit, or a code WeChat gives for a passing
// trouble (whatever the status it comes with).
func retryableAnswer(status int, code string) bool {
	return status >= 500 || status == http.StatusTooManyRequests ||
		code == "SYSTEM_ERROR" || code == "FREQUENCY_LIMITED" || code == "BANK_ERROR"
}

// verify checks WeChat's signature headers with the key Wechatpay-Serial
// names: the WeChat Pay public key, or a platform certificate while a
// merchant migrates. An unknown serial is refused.
func (c *Client) verify(h http.Header, body []byte) error {
	serial := h.Get("Wechatpay-Serial")
	key, ok := c.cfg.Merchant.VerificationKey(serial)
	if !ok {
		return fmt.Errorf("%w: unknown Wechatpay-Serial %q", wechat.ErrSignature, serial)
	}
	return VerifyResponse(key, h, body, c.cfg.Now())
}

// Amount is a v3 amount in fen.
type Amount struct {
	Total       int64  `json:"total"`
	PayerTotal  int64  `json:"payer_total,omitempty"`
	Currency    string `json:"currency,omitempty"`
	Refund      int64  `json:"refund,omitempty"`
	PayerRefund int64  `json:"payer_refund,omitempty"`
}

// Payer identifies who pays: openid in direct mode; in partner mode exactly
// one of sp_openid (under sp_appid) and sub_openid (under sub_appid).
type Payer struct {
	OpenID    string `json:"openid,omitempty"`
	SpOpenID  string `json:"sp_openid,omitempty"`
	SubOpenID string `json:"sub_openid,omitempty"`
}

// PrepayRequest is a JSAPI / mini-program prepay (v3 pay/transactions/jsapi,
// or pay/partner/transactions/jsapi for a sub-merchant).
type PrepayRequest struct {
	// AppID is the app the payer pays in, which OpenID belongs to; empty
	// means the merchant's AppID. See [wechat.Merchant.OrderApps].
	AppID       string
	Description string
	OutTradeNo  string
	TotalFen    int64
	OpenID      string
	NotifyURL   string
	ClientIP    string
	Attach      string
	TimeExpire  time.Time
}

// orderFields are the prepay fields direct and partner mode share.
type orderFields struct {
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire,omitempty"`
	Attach      string `json:"attach,omitempty"`
	NotifyURL   string `json:"notify_url"`
	Amount      Amount `json:"amount"`
	Payer       *Payer `json:"payer,omitempty"`
	SceneInfo   *struct {
		PayerClientIP string `json:"payer_client_ip"`
	} `json:"scene_info,omitempty"`
}

// prepayBody is a direct merchant's prepay.
type prepayBody struct {
	AppID string `json:"appid"`
	MchID string `json:"mchid"`
	orderFields
}

// partnerPrepayBody is a sub-merchant's prepay: no appid, mchid or
// payer.openid (WeChat refuses them on the partner path).
type partnerPrepayBody struct {
	SpAppID  string `json:"sp_appid"`
	SpMchID  string `json:"sp_mchid"`
	SubAppID string `json:"sub_appid,omitempty"`
	SubMchID string `json:"sub_mchid"`
	orderFields
}

// prepayBody builds the body of r for the merchant's mode, and the path
// prefix it goes to ("/v3/pay/transactions/" or "/v3/pay/partner/transactions/").
func (c *Client) prepayBody(r PrepayRequest, withPayer bool) (string, any, error) {
	m := c.cfg.Merchant
	appID, subAppID, err := m.OrderApps(r.AppID)
	if err != nil {
		return "", nil, err
	}
	f := orderFields{Description: r.Description, OutTradeNo: r.OutTradeNo, Attach: r.Attach, NotifyURL: r.NotifyURL,
		Amount: Amount{Total: r.TotalFen, Currency: "CNY"}}
	if !r.TimeExpire.IsZero() {
		f.TimeExpire = r.TimeExpire.Format(time.RFC3339)
	}
	if r.ClientIP != "" {
		f.SceneInfo = &struct {
			PayerClientIP string `json:"payer_client_ip"`
		}{r.ClientIP}
	}
	if !m.Partner() {
		if withPayer {
			f.Payer = &Payer{OpenID: r.OpenID}
		}
		return "/v3/pay/transactions/", prepayBody{AppID: appID, MchID: m.MchID, orderFields: f}, nil
	}
	if withPayer {
		if subAppID != "" {
			f.Payer = &Payer{SubOpenID: r.OpenID}
		} else {
			f.Payer = &Payer{SpOpenID: r.OpenID}
		}
	}
	return "/v3/pay/partner/transactions/", partnerPrepayBody{SpAppID: appID, SpMchID: m.MchID, SubAppID: subAppID,
		SubMchID: m.SubMchID, orderFields: f}, nil
}

// PrepayJSAPI asks for a prepay_id for JSAPI and mini-program payments;
// repeating it with the same parameters returns the same prepay_id.
func (c *Client) PrepayJSAPI(ctx context.Context, r PrepayRequest) (string, error) {
	var out struct {
		PrepayID string `json:"prepay_id"`
	}
	prefix, body, err := c.prepayBody(r, true)
	if err != nil {
		return "", err
	}
	if err := c.do(ctx, http.MethodPost, prefix+"jsapi", body, &out); err != nil {
		return "", err
	}
	return out.PrepayID, nil
}

// PrepayNative asks for a code_url to show as a QR code.
func (c *Client) PrepayNative(ctx context.Context, r PrepayRequest) (string, error) {
	var out struct {
		CodeURL string `json:"code_url"`
	}
	prefix, body, err := c.prepayBody(r, false)
	if err != nil {
		return "", err
	}
	if err := c.do(ctx, http.MethodPost, prefix+"native", body, &out); err != nil {
		return "", err
	}
	return out.CodeURL, nil
}

// Transaction is a payment as WeChat reports it (query and notification),
// in WeChat's direct shape (appid, mchid) or partner shape (sp_appid,
// sp_mchid, sub_appid, sub_mchid); [Transaction.Identity] reads either.
type Transaction struct {
	AppID          string `json:"appid,omitempty"`
	MchID          string `json:"mchid,omitempty"`
	SpAppID        string `json:"sp_appid,omitempty"`
	SpMchID        string `json:"sp_mchid,omitempty"`
	SubAppID       string `json:"sub_appid,omitempty"`
	SubMchID       string `json:"sub_mchid,omitempty"`
	OutTradeNo     string `json:"out_trade_no"`
	TransactionID  string `json:"transaction_id"`
	TradeType      string `json:"trade_type"`
	TradeState     string `json:"trade_state"`
	TradeStateDesc string `json:"trade_state_desc"`
	SuccessTime    string `json:"success_time"`
	Attach         string `json:"attach"`
	Payer          Payer  `json:"payer"`
	Amount         Amount `json:"amount"`
}

// QueryByOutTradeNo asks for a payment's state; a sub-merchant's on the
// partner path, naming sp_mchid then sub_mchid.
func (c *Client) QueryByOutTradeNo(ctx context.Context, outTradeNo string) (Transaction, error) {
	var t Transaction
	m := c.cfg.Merchant
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(outTradeNo) + "?mchid=" + url.QueryEscape(m.MchID)
	if m.Partner() {
		path = "/v3/pay/partner/transactions/out-trade-no/" + url.PathEscape(outTradeNo) +
			"?sp_mchid=" + url.QueryEscape(m.MchID) + "&sub_mchid=" + url.QueryEscape(m.SubMchID)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &t)
	return t, err
}

// Close closes an unpaid order (204); a sub-merchant's on the partner path.
func (c *Client) Close(ctx context.Context, outTradeNo string) error {
	m := c.cfg.Merchant
	if m.Partner() {
		return c.do(ctx, http.MethodPost, "/v3/pay/partner/transactions/out-trade-no/"+url.PathEscape(outTradeNo)+"/close",
			map[string]string{"sp_mchid": m.MchID, "sub_mchid": m.SubMchID}, nil)
	}
	return c.do(ctx, http.MethodPost, "/v3/pay/transactions/out-trade-no/"+url.PathEscape(outTradeNo)+"/close",
		map[string]string{"mchid": m.MchID}, nil)
}

// RefundRequest is a domestic refund (v3 refund/domestic/refunds); OutRefundNo is reused
// on every retry.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	TotalFen    int64
	RefundFen   int64
	Reason      string
	NotifyURL   string
}

// Refund is a refund as WeChat reports it.
type Refund struct {
	RefundID      string `json:"refund_id"`
	OutRefundNo   string `json:"out_refund_no"`
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	Status        string `json:"status"` // SUCCESS, CLOSED, PROCESSING, ABNORMAL
	Amount        Amount `json:"amount"`
}

// Refund asks for a refund; the answer is usually PROCESSING. A
// sub-merchant's names its sub_mchid on the same path.
func (c *Client) Refund(ctx context.Context, r RefundRequest) (Refund, error) {
	body := map[string]any{
		"out_trade_no": r.OutTradeNo, "out_refund_no": r.OutRefundNo, "reason": r.Reason, "notify_url": r.NotifyURL,
		"amount": Amount{Refund: r.RefundFen, Total: r.TotalFen, Currency: "CNY"},
	}
	if m := c.cfg.Merchant; m.Partner() {
		body["sub_mchid"] = m.SubMchID // the provider is the Authorization's mchid
	}
	var out Refund
	err := c.do(ctx, http.MethodPost, "/v3/refund/domestic/refunds", body, &out)
	return out, err
}

// QueryRefund asks for a refund's state by out_refund_no; a sub-merchant's
// names its sub_mchid in the query string.
func (c *Client) QueryRefund(ctx context.Context, outRefundNo string) (Refund, error) {
	var out Refund
	path := "/v3/refund/domestic/refunds/" + url.PathEscape(outRefundNo)
	if m := c.cfg.Merchant; m.Partner() {
		path += "?sub_mchid=" + url.QueryEscape(m.SubMchID)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
