package v2

import (
	"context"
	"strconv"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// UnifiedOrderRequest is a WeChat Pay v2 unified order (统一下单, pay/unifiedorder).
// For a sub-merchant it names the provider's appid and mch_id, the
// sub_mch_id, and sub_appid with sub_openid when the payer is in the
// sub-merchant's own app.
type UnifiedOrderRequest struct {
	// AppID is the app the payer pays in, which OpenID belongs to; empty
	// means the merchant's AppID.
	AppID      string
	Body       string
	OutTradeNo string
	TotalFen   int64
	ClientIP   string
	NotifyURL  string
	TradeType  string // JSAPI (default), NATIVE, APP, MWEB
	OpenID     string // JSAPI
	ProductID  string // NATIVE
	Attach     string
	TimeExpire time.Time // zero: WeChat's default
}

// UnifiedOrderResponse is what WeChat returns for a unified order.
type UnifiedOrderResponse struct {
	PrepayID  string
	TradeType string
	CodeURL   string // NATIVE
	MWebURL   string // MWEB
}

// UnifiedOrder asks WeChat for a prepay_id. Repeating it with the same
// out_trade_no and identical parameters returns the same prepay_id, which
// makes the prepay worker's retries safe.
func (c *Client) UnifiedOrder(ctx context.Context, r UnifiedOrderRequest) (UnifiedOrderResponse, error) {
	if r.TradeType == "" {
		r.TradeType = "JSAPI"
	}
	p := map[string]string{
		"body": r.Body, "out_trade_no": r.OutTradeNo, "total_fee": strconv.FormatInt(r.TotalFen, 10),
		"spbill_create_ip": r.ClientIP, "notify_url": r.NotifyURL, "trade_type": r.TradeType,
		"openid": r.OpenID, "product_id": r.ProductID, "attach": r.Attach,
	}
	if !r.TimeExpire.IsZero() {
		p["time_expire"] = FormatTime(r.TimeExpire)
	}
	appID, subAppID, err := c.cfg.Merchant.OrderApps(r.AppID)
	if err != nil {
		return UnifiedOrderResponse{}, err
	}
	p["appid"] = appID
	if subAppID != "" {
		p["sub_appid"], p["sub_openid"], p["openid"] = subAppID, r.OpenID, ""
	}
	out, err := c.call(ctx, "/pay/unifiedorder", p, false)
	if err != nil {
		return UnifiedOrderResponse{}, err
	}
	return UnifiedOrderResponse{PrepayID: out["prepay_id"], TradeType: out["trade_type"], CodeURL: out["code_url"], MWebURL: out["mweb_url"]}, nil
}

// OrderQueryResponse is the state of a payment (v2 order query, pay/orderquery).
type OrderQueryResponse struct {
	TradeState    string // SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR
	OutTradeNo    string
	TransactionID string
	TotalFen      int64
	// AppID and MchID are appid and mch_id (a sub-merchant's provider's);
	// SubAppID and SubMchID are set in partner mode.
	AppID, MchID, SubAppID, SubMchID string
	// OpenID is the payer under the app the order was paid in: sub_openid
	// when there is a sub_appid, else openid.
	OpenID  string
	TimeEnd time.Time
	Fields  map[string]string // every field received, verified
}

// OrderQuery asks WeChat for the state of a payment by out_trade_no.
func (c *Client) OrderQuery(ctx context.Context, outTradeNo string) (OrderQueryResponse, error) {
	out, err := c.call(ctx, "/pay/orderquery", map[string]string{"out_trade_no": outTradeNo}, false)
	if err != nil {
		return OrderQueryResponse{}, err
	}
	r := OrderQueryResponse{TradeState: out["trade_state"], OutTradeNo: out["out_trade_no"], TransactionID: out["transaction_id"], OpenID: payerOpenID(out), Fields: out,
		AppID: out["appid"], MchID: out["mch_id"], SubAppID: out["sub_appid"], SubMchID: out["sub_mch_id"]}
	if out["total_fee"] != "" {
		if r.TotalFen, err = parseFen("total_fee", out["total_fee"]); err != nil {
			return r, &wechat.Error{API: "pay/orderquery", Err: err}
		}
	}
	if out["time_end"] != "" {
		r.TimeEnd, _ = ParseTime(out["time_end"])
	}
	return r, nil
}

// CloseOrder closes an unpaid order at WeChat so it can no longer be paid.
// ORDERPAID comes back as an error matching wechat.ErrOrderPaid.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	_, err := c.call(ctx, "/pay/closeorder", map[string]string{"out_trade_no": outTradeNo}, false)
	return err
}
