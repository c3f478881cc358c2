package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// Ledger is the money check of a demo run, WeChat's books (the simulator's)
// against wxflow's. Every count must be 0.
type Ledger struct {
	Lost           int `json:"lost"`            // paid or refunded at WeChat, not in wxflow; or an order not in its right state
	Doubled        int `json:"doubled"`         // counted more in wxflow than at WeChat; or a payment at WeChat for no order
	OverRefunded   int `json:"over_refunded"`   // refunds above the payment, on either side
	ForgedSent     int `json:"forged_sent"`     // forged payment notifications posted to wxflow
	ForgedAccepted int `json:"forged_accepted"` // forged notifications answered as accepted, or orders paid in wxflow and not at WeChat
}

func (l Ledger) String() string {
	return fmt.Sprintf("ledger: lost %d, doubled %d, over-refunded %d, forged accepted %d (of %d forged notifications)",
		l.Lost, l.Doubled, l.OverRefunded, l.ForgedAccepted, l.ForgedSent)
}

// OK says whether the books agree.
func (l Ledger) OK() bool { return l.Lost+l.Doubled+l.OverRefunded+l.ForgedAccepted == 0 }

// simState is the part of GET /sim/state the ledger and the crossings read:
// WeChat's record of each order, refund and notification.
type simState struct {
	Orders []struct {
		OutTradeNo string    `json:"out_trade_no"`
		TotalFen   int64     `json:"total_fen"`
		PaidAt     time.Time `json:"paid_at"`
		MchID      string    `json:"mchid"`
		SubMchID   string    `json:"sub_mchid"`
		AppID      string    `json:"appid"`
		SubAppID   string    `json:"sub_appid"`
	} `json:"orders"`
	Refunds []struct {
		OutTradeNo  string `json:"out_trade_no"`
		OutRefundNo string `json:"out_refund_no"`
		RefundFen   int64  `json:"refund_fen"`
		Status      string `json:"status"`
		MchID       string `json:"mchid"`
		SubMchID    string `json:"sub_mchid"`
		AppID       string `json:"appid"`
		SubAppID    string `json:"sub_appid"`
	} `json:"refunds"`
	Notifications []struct {
		Kind  string `json:"kind"`
		URL   string `json:"url"`
		Key   string `json:"key"`
		MchID string `json:"mchid"`
	} `json:"notifications"`
}

// readSimState reads WeChat's records from the simulator.
func readSimState(ctx context.Context, cfg Config) (simState, error) {
	var st simState
	err := (&Client{Base: cfg.SimURL, HTTP: cfg.SimClient}).Do(ctx, http.MethodGet, "/sim/state", nil, &st)
	return st, err
}

// AuditLedger compares the run's orders in wxflow with WeChat's books.
func AuditLedger(ctx context.Context, cfg Config, results []Result) (Ledger, error) {
	var l Ledger
	for _, r := range results {
		l.ForgedSent += r.Forged
		l.ForgedAccepted += r.ForgedAccepted
	}
	st, err := readSimState(ctx, cfg)
	if err != nil {
		return l, fmt.Errorf("WeChat's books: %w", err)
	}
	paid, refunded := map[string]int64{}, map[string]int64{}
	for _, o := range st.Orders {
		if !o.PaidAt.IsZero() {
			paid[o.OutTradeNo] = o.TotalFen
		}
	}
	for _, r := range st.Refunds {
		if r.Status == "SUCCESS" {
			refunded[r.OutTradeNo] += r.RefundFen
		}
	}
	api := &Client{Base: cfg.APIURL, HTTP: http.DefaultClient, Key: cfg.ShopKey}
	for _, r := range results {
		if !r.OK() {
			l.Lost++
		}
		if r.OrderID == "" {
			continue
		}
		var v OrderView
		if err := api.Do(ctx, http.MethodGet, "/v1/orders/"+string(r.OrderID), nil, &v); err != nil {
			return l, err
		}
		o := v.Order
		switch wechatPaid := paid[o.OutTradeNo]; {
		case wechatPaid > o.PaidFen:
			l.Lost++
		case o.PaidFen > 0 && wechatPaid == 0:
			l.ForgedAccepted++
		case o.PaidFen > wechatPaid:
			l.Doubled++
		}
		switch wechatRefunded := refunded[o.OutTradeNo]; {
		case wechatRefunded > o.RefundedFen && o.State != engine.Refunding:
			l.Lost++
		case wechatRefunded < o.RefundedFen:
			l.Doubled++
		}
		if o.RefundedFen > o.PaidFen || refunded[o.OutTradeNo] > paid[o.OutTradeNo] {
			l.OverRefunded++
		}
	}
	return l, nil
}

// forge posts payment notifications no one at WeChat signed for
// an order the payer has not paid: v2 with a made-up signature and signed
// with a wrong key, v3 with a made-up signature. It returns how many it sent
// and how many wxflow answered as accepted (it must be none).
func forge(ctx context.Context, apiURL, merchant string, o engine.Order) (sent, accepted int) {
	base := strings.TrimRight(apiURL, "/") + "/wechat/notify/" + merchant
	fields := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "out_trade_no": o.OutTradeNo,
		"total_fee": strconv.FormatInt(o.AmountFen, 10), "cash_fee": strconv.FormatInt(o.AmountFen, 10),
		"transaction_id": "4200000000" + strconv.FormatInt(time.Now().UnixNano(), 10)[:18], "openid": o.OpenID,
		"trade_type": "JSAPI", "bank_type": "OTHERS", "fee_type": "CNY", "time_end": v2.FormatTime(time.Now()),
		"nonce_str": v2.NonceStr(),
	}
	madeUp := map[string]string{"sign": "0123456789ABCDEF0123456789ABCDEF"}
	wrongKey := map[string]string{"sign": v2.Sign(fields, "0123456789abcdef0123456789abcdef", v2.SignMD5)}
	for _, extra := range []map[string]string{madeUp, wrongKey} {
		p := map[string]string{}
		for k, v := range fields {
			p[k] = v
		}
		for k, v := range extra {
			p[k] = v
		}
		status, body := post(ctx, base+"/v2/pay", "text/xml", v2.EncodeXML(p), nil)
		sent++
		if status == http.StatusOK && bytes.Contains(body, []byte("<return_code><![CDATA[SUCCESS]]>")) {
			accepted++
		}
	}
	v3body := fmt.Sprintf(`{"id":"forged-%s","create_time":%q,"event_type":"TRANSACTION.SUCCESS","resource_type":"encrypt-resource","resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":%q,"nonce":"0123456789ab","associated_data":"transaction"}}`,
		o.ID, time.Now().Format(time.RFC3339), base64.StdEncoding.EncodeToString([]byte(`{"out_trade_no":"`+o.OutTradeNo+`","trade_state":"SUCCESS"}`)))
	header := map[string]string{"Wechatpay-Timestamp": strconv.FormatInt(time.Now().Unix(), 10), "Wechatpay-Nonce": v2.NonceStr(),
		"Wechatpay-Serial": "PUB_KEY_ID_FORGED", "Wechatpay-Signature": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 256))}
	status, _ := post(ctx, base+"/v3/pay", "application/json", []byte(v3body), header)
	sent++
	if status >= 200 && status < 300 {
		accepted++
	}
	return sent, accepted
}

// post sends one notification and returns the status and body (0 when it
// could not be sent).
func post(ctx context.Context, url, contentType string, body []byte, header map[string]string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, out
}

// forgeCross posts genuine-looking payment notifications of the lane's
// unpaid order that cross merchants: signed with each other merchant's keys
// (another mchid) to the order's merchant's URL, and signed with the order's
// own merchant's keys (a valid signature, which a sibling sub-merchant of
// the same provider verifies too) to every other merchant's URL. v2 always;
// v3 when cfg.WechatPayKeys can sign for the signer. It returns how many it
// sent and how many wxflow answered as accepted (it must be none).
func forgeCross(ctx context.Context, cfg Config, notifyURL string, lane Lane, o engine.Order) (sent, accepted int) {
	own, err := cfg.Registry.Merchant(lane.Merchant)
	if err != nil {
		return 0, 0
	}
	send := func(signer *wechat.Merchant, to string) {
		base := strings.TrimRight(notifyURL, "/") + "/wechat/notify/" + to
		status, body := post(ctx, base+"/v2/pay", "text/xml", v2.EncodeXML(crossV2(lane, o, signer)), nil)
		sent++
		if status == http.StatusOK && bytes.Contains(body, []byte("<return_code><![CDATA[SUCCESS]]>")) {
			accepted++
		}
		body, header, ok := crossV3(cfg, lane, o, signer)
		if !ok {
			return
		}
		status, _ = post(ctx, base+"/v3/pay", "application/json", body, header)
		sent++
		if status >= 200 && status < 300 {
			accepted++
		}
	}
	for _, other := range cfg.Registry.Merchants() {
		if other.Name == own.Name {
			continue
		}
		if other.MchID != own.MchID {
			send(other, own.Name) // another merchant's keys, to the order's merchant's URL
		}
		send(own, other.Name) // the order's merchant's keys, to another merchant's URL
	}
	return sent, accepted
}

// forgedTransactionID is a transaction_id in WeChat's form that WeChat never gave.
func forgedTransactionID() string {
	return "4200000000" + strconv.FormatInt(time.Now().UnixNano(), 10)[:18]
}

// crossV2 is a v2 payment notification naming the lane's order, as WeChat
// would send it for the lane's merchant and app, signed with signer's key.
func crossV2(lane Lane, o engine.Order, signer *wechat.Merchant) map[string]string {
	p := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": lane.WantAppID, "mch_id": lane.MchID,
		"out_trade_no": o.OutTradeNo, "total_fee": strconv.FormatInt(o.AmountFen, 10), "cash_fee": strconv.FormatInt(o.AmountFen, 10),
		"transaction_id": forgedTransactionID(), "openid": o.OpenID, "is_subscribe": "N", "trade_type": "JSAPI", "bank_type": "OTHERS",
		"fee_type": "CNY", "time_end": v2.FormatTime(time.Now()), "nonce_str": v2.NonceStr(),
	}
	if lane.SubMchID != "" {
		p["sub_mch_id"] = lane.SubMchID
		if lane.WantSubAppID != "" {
			p["sub_appid"], p["sub_openid"], p["sub_is_subscribe"] = lane.WantSubAppID, o.OpenID, "N"
		}
	}
	p["sign"] = v2.Sign(p, string(signer.APIKey), v2.SignMD5)
	return p
}

// crossV3 is a v3 payment notification naming the lane's order, encrypted
// with signer's APIv3 key and signed with WeChat Pay's key for signer; false
// when that key is not at hand.
func crossV3(cfg Config, lane Lane, o engine.Order, signer *wechat.Merchant) ([]byte, map[string]string, bool) {
	key := cfg.WechatPayKeys[signer.MchID]
	if key == nil {
		return nil, nil, false
	}
	now := time.Now()
	t := v3.Transaction{OutTradeNo: o.OutTradeNo, TransactionID: forgedTransactionID(), TradeType: "JSAPI", TradeState: "SUCCESS",
		TradeStateDesc: "支付成功", SuccessTime: now.Format(time.RFC3339), Amount: v3.Amount{Total: o.AmountFen, PayerTotal: o.AmountFen, Currency: "CNY"}}
	switch {
	case lane.SubMchID == "":
		t.AppID, t.MchID, t.Payer.OpenID = lane.WantAppID, lane.MchID, o.OpenID
	case lane.WantSubAppID != "":
		t.SpAppID, t.SpMchID, t.SubAppID, t.SubMchID, t.Payer.SubOpenID = lane.WantAppID, lane.MchID, lane.WantSubAppID, lane.SubMchID, o.OpenID
	default:
		t.SpAppID, t.SpMchID, t.SubMchID, t.Payer.SpOpenID = lane.WantAppID, lane.MchID, lane.SubMchID, o.OpenID
	}
	plain, err := json.Marshal(t)
	if err != nil {
		return nil, nil, false
	}
	res, err := v3.EncryptResource(string(signer.APIv3Key), v2.NonceStr()[:12], "transaction", "transaction", plain)
	if err != nil {
		return nil, nil, false
	}
	body, err := json.Marshal(v3.Notification{ID: "EV-forged-" + string(o.ID), CreateTime: now.Format(time.RFC3339),
		EventType: "TRANSACTION.SUCCESS", ResourceType: "encrypt-resource", Summary: "支付成功", Resource: res})
	if err != nil {
		return nil, nil, false
	}
	h, err := v3.SignResponseHeaders(key, signer.WechatPayPublicKeyID, body, now)
	if err != nil {
		return nil, nil, false
	}
	header := map[string]string{}
	for k := range h {
		header[k] = h.Get(k)
	}
	return body, header, true
}
