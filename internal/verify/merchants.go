package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// The merchant rules: WeChat and wxflow agree on whose each payment and
// refund is. Many merchants share one deployment; a payment recorded under
// the wrong one is money in the wrong merchant's books.
const (
	// RulePaymentOtherMerchant: a paid order's payment is at WeChat under
	// another merchant, sub-merchant or app than wxflow records for it.
	RulePaymentOtherMerchant = "payment_under_other_merchant"
	// RulePaymentNotAtWechat: wxflow records a payment WeChat has no paid
	// order of, at any merchant.
	RulePaymentNotAtWechat = "payment_not_at_wechat"
	// RuleRefundOtherMerchant: a refund of an order is at WeChat under
	// another merchant, sub-merchant or app than the order's.
	RuleRefundOtherMerchant = "refund_under_other_merchant"
	// RuleRefundNotAtWechat: a refund wxflow records as succeeded that WeChat
	// has no record of.
	RuleRefundNotAtWechat = "refund_not_at_wechat"
	// RuleOrderMerchantUnknown: a paid order of a merchant (or an app) the
	// merchant folder does not have: its identity at WeChat cannot be told.
	RuleOrderMerchantUnknown = "order_merchant_unknown"
)

// WechatRecord is one order or refund as WeChat recorded it: under which
// merchant (a sub-merchant's provider's mchid and its own sub_mchid) and app
// (appid, or a sub-merchant's sp_appid and sub_appid).
type WechatRecord struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no,omitempty"`
	MchID       string `json:"mchid"`
	SubMchID    string `json:"sub_mchid,omitempty"`
	AppID       string `json:"appid"`
	SubAppID    string `json:"sub_appid,omitempty"`
	// PaidAt is when an order was paid (zero: not paid).
	PaidAt time.Time `json:"paid_at,omitzero"`
}

func (r WechatRecord) identity() string {
	return fmt.Sprintf("mchid %s sub_mchid %q appid %s sub_appid %q", r.MchID, r.SubMchID, r.AppID, r.SubAppID)
}

// WechatRecords is what WeChat knows of orders and refunds.
type WechatRecords struct {
	Orders  []WechatRecord `json:"orders"`
	Refunds []WechatRecord `json:"refunds"`
}

// SimRecords reads WeChat's records from a simulator's GET /sim/state (a
// dev deployment's WeChat); client must trust its CA.
func SimRecords(ctx context.Context, client *http.Client, simURL string) (WechatRecords, error) {
	var recs WechatRecords
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(simURL, "/")+"/sim/state", nil)
	if err != nil {
		return recs, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return recs, fmt.Errorf("verify: WeChat's records: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return recs, fmt.Errorf("verify: WeChat's records: %s: %s", resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return recs, fmt.Errorf("verify: WeChat's records: %w", err)
	}
	return recs, nil
}

// Want is the identity WeChat must record an order of merchant m paid in
// app appid under (m.AppID when appid is empty, as for an order of before
// apps were recorded): a direct merchant's mchid and the app; a
// sub-merchant's provider mchid, its sub_mchid, and either its provider's
// sp_appid with its own app as sub_appid, or (a payer in the provider's app)
// that app alone. False when the app is not one of the merchant's.
func Want(m *wechat.Merchant, appid string) (WechatRecord, bool) {
	if appid == "" {
		appid = m.AppID
	}
	if _, ok := m.App(appid); !ok {
		return WechatRecord{}, false
	}
	switch {
	case !m.Partner():
		return WechatRecord{MchID: m.MchID, AppID: appid}, true
	case m.IsSpApp(appid):
		return WechatRecord{MchID: m.MchID, SubMchID: m.SubMchID, AppID: appid}, true
	}
	return WechatRecord{MchID: m.MchID, SubMchID: m.SubMchID, AppID: m.SpAppID(), SubAppID: appid}, true
}

// Merchants checks every paid or refunded order of the store against
// WeChat's records: WeChat has its payment under the order's merchant,
// sub-merchant and app, and nowhere else; every refund of it WeChat has is
// under the same; every refund wxflow records as succeeded is at WeChat.
func Merchants(ctx context.Context, store *engine.Store, reg *wechat.Registry, recs WechatRecords) ([]engine.Breach, error) {
	orders, err := store.Orders(ctx, engine.OrderFilter{Limit: math.MaxInt32})
	if err != nil {
		return nil, fmt.Errorf("verify: merchants: %w", err)
	}
	byTrade, byRefund := map[string][]WechatRecord{}, map[string][]WechatRecord{}
	for _, r := range recs.Orders {
		byTrade[r.OutTradeNo] = append(byTrade[r.OutTradeNo], r)
	}
	for _, r := range recs.Refunds {
		byRefund[r.OutRefundNo] = append(byRefund[r.OutRefundNo], r)
	}
	var out []engine.Breach
	for _, o := range orders {
		if o.PaidFen == 0 && o.RefundedFen == 0 {
			continue
		}
		breach := func(rule, format string, args ...any) {
			out = append(out, engine.Breach{OrderID: o.ID, Rule: rule, Detail: fmt.Sprintf(format, args...)})
		}
		m, err := reg.Merchant(o.Merchant)
		var want WechatRecord
		ok := err == nil
		if ok {
			want, ok = Want(m, o.AppID)
		}
		if !ok {
			why := "the app is not the merchant's"
			if err != nil {
				why = err.Error()
			}
			breach(RuleOrderMerchantUnknown, "merchant %s, app %s: not in the merchant folder (%s)", o.Merchant, o.AppID, why)
			continue
		}
		// The payment: a paid record under the order's identity, none under another.
		found, elsewhere := false, []string(nil)
		for _, r := range byTrade[o.OutTradeNo] {
			if r.PaidAt.IsZero() {
				continue
			}
			if r.identity() == want.identity() {
				found = true
			} else {
				elsewhere = append(elsewhere, r.identity())
			}
		}
		if len(elsewhere) > 0 {
			breach(RulePaymentOtherMerchant, "out_trade_no %s of merchant %s: WeChat has it paid as %s; the order's is %s",
				o.OutTradeNo, o.Merchant, strings.Join(elsewhere, "; "), want.identity())
		}
		if !found && len(elsewhere) == 0 && o.PaidFen > 0 {
			breach(RulePaymentNotAtWechat, "out_trade_no %s of merchant %s (%s): wxflow has %d fen paid, WeChat no paid order",
				o.OutTradeNo, o.Merchant, want.identity(), o.PaidFen)
		}
		// The refunds: each of the order's at WeChat under its identity.
		refunds, err := store.Refunds(ctx, o.ID)
		if err != nil {
			return nil, fmt.Errorf("verify: refunds of %s: %w", o.ID, err)
		}
		for _, rf := range refunds {
			// WeChat keys a refund by (mchid, out_refund_no): the one of this
			// order is under its out_trade_no and identity; any other of the
			// number, and none of the order's, is the refund elsewhere.
			atWechat, elsewhere := false, []string(nil)
			for _, r := range byRefund[rf.OutRefundNo] {
				if r.OutTradeNo == o.OutTradeNo && r.identity() == want.identity() {
					atWechat = true
				} else {
					elsewhere = append(elsewhere, "out_trade_no "+r.OutTradeNo+" "+r.identity())
				}
			}
			if !atWechat && len(elsewhere) > 0 {
				breach(RuleRefundOtherMerchant, "refund %s of merchant %s: WeChat has it as %s; the order's is out_trade_no %s %s",
					rf.OutRefundNo, o.Merchant, strings.Join(elsewhere, "; "), o.OutTradeNo, want.identity())
			}
			if !atWechat && rf.State == engine.RefundSucceeded {
				breach(RuleRefundNotAtWechat, "refund %s of merchant %s: wxflow says succeeded, WeChat has no such refund", rf.OutRefundNo, o.Merchant)
			}
		}
	}
	return out, nil
}
