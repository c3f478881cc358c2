package pay

import (
	"context"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// Transaction is a payment as WeChat reports it, in an order query's answer
// or a payment notification, the same words in both generations.
type Transaction struct {
	OutTradeNo string
	State      TradeState
	// RawState is WeChat's own word for State, for logs and errors: what an
	// unknown state was, or v2 notification's result_code.
	RawState      string
	TransactionID string
	AmountFen     int64
	// MchID is the merchant number WeChat names (mchid, or sp_mchid in
	// partner mode); SubMchID the sub-merchant's (sub_mchid), else empty.
	MchID, SubMchID string
	// AppID is appid (sp_appid in partner mode); SubAppID is sub_appid, set
	// when the payer paid in a sub-merchant's own app.
	AppID, SubAppID string
	// OpenID is the payer under the app the order was paid in: sub_openid
	// when there is a sub_appid, else openid (v3 partner: sp_openid).
	OpenID string
	PaidAt time.Time
}

// Query asks WeChat for a payment's state.
func (p *Payments) Query(ctx context.Context, api API, outTradeNo string) (Transaction, error) {
	switch api {
	case "v2":
		q, err := p.cfg.V2.OrderQuery(ctx, outTradeNo)
		return fromV2Query(q), err
	case "v3":
		t, err := p.cfg.V3.QueryByOutTradeNo(ctx, outTradeNo)
		return fromV3Transaction(t), err
	}
	return Transaction{}, ErrUnknownAPI
}

// fromV2Query reads v2's order query answer.
func fromV2Query(q v2.OrderQueryResponse) Transaction {
	return Transaction{OutTradeNo: q.OutTradeNo, State: tradeStateOf(q.TradeState), RawState: q.TradeState,
		TransactionID: q.TransactionID, AmountFen: q.TotalFen, OpenID: q.OpenID, PaidAt: q.TimeEnd,
		MchID: q.MchID, SubMchID: q.SubMchID, AppID: q.AppID, SubAppID: q.SubAppID}
}

// fromV3Transaction reads v3's transaction, the same in a query's answer and
// a payment notification.
func fromV3Transaction(t v3.Transaction) Transaction {
	paid, _ := time.Parse(time.RFC3339, t.SuccessTime)
	id := t.Identity()
	return Transaction{OutTradeNo: t.OutTradeNo, State: tradeStateOf(t.TradeState), RawState: t.TradeState,
		TransactionID: t.TransactionID, AmountFen: t.Amount.Total, OpenID: id.OpenID, PaidAt: paid,
		MchID: id.MchID, SubMchID: id.SubMchID, AppID: id.AppID, SubAppID: id.SubAppID}
}

// Close closes an unpaid order; a paid one answers an error matching wechat.ErrOrderPaid.
func (p *Payments) Close(ctx context.Context, api API, outTradeNo string) error {
	switch api {
	case "v2":
		return p.cfg.V2.CloseOrder(ctx, outTradeNo)
	case "v3":
		return p.cfg.V3.Close(ctx, outTradeNo)
	}
	return ErrUnknownAPI
}
