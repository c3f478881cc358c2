package pay

import (
	"net/http"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// Notices reads WeChat's notifications of either generation into the words
// of [Payments.Query] and [Payments.QueryRefund], so that whoever receives
// them decides on a [TradeState] or a [RefundState] and never on WeChat's
// strings. Each is verified by its generation's client first (signature or
// req_info, appid and mch_id), and a failure is that client's error, which
// matches the sentinels of package wechat (ErrSignature, ErrForeign, …).
type Notices struct {
	// V2 and V3 are the merchant's clients; both are required.
	V2 *v2.Client
	V3 *v3.Client
}

// Payment verifies and reads a payment notification of api. header carries
// v3's signature; v2 signs inside body.
func (n Notices) Payment(api API, header http.Header, body []byte) (Transaction, error) {
	switch api {
	case "v2":
		p, err := n.V2.ParseNotify(body)
		if err != nil {
			return Transaction{}, err
		}
		return fromV2Notification(p), nil
	case "v3":
		t, err := n.V3.ParsePaymentNotify(header, body)
		if err != nil {
			return Transaction{}, err
		}
		return fromV3Transaction(t), nil
	}
	return Transaction{}, ErrUnknownAPI
}

// fromV2Notification reads v2's payment notification, which has no
// trade_state: its result_code SUCCESS is a payment, anything else a
// payment that failed.
func fromV2Notification(p v2.PaymentNotification) Transaction {
	state := TradePayError
	if p.Paid {
		state = TradeSuccess
	}
	return Transaction{OutTradeNo: p.OutTradeNo, State: state, RawState: p.Fields["result_code"],
		TransactionID: p.TransactionID, AmountFen: p.TotalFen, OpenID: p.OpenID, PaidAt: p.TimeEnd,
		MchID: p.MchID, SubMchID: p.SubMchID, AppID: p.AppID, SubAppID: p.SubAppID}
}

// RefundNotice is a verified refund notification: the refund's state and
// the payment it belongs to.
type RefundNotice struct {
	OutTradeNo string
	// MchID is mch_id / mchid, or sp_mchid in v3 partner mode; SubMchID is
	// the sub-merchant's, else empty ([Payments.OwnsRefund] checks both).
	MchID, SubMchID string
	RefundStatus
}

// Refund verifies and reads a refund notification of api. header carries
// v3's signature; v2 proves itself by its req_info, encrypted with the API key.
func (n Notices) Refund(api API, header http.Header, body []byte) (RefundNotice, error) {
	switch api {
	case "v2":
		r, err := n.V2.ParseRefundNotify(body)
		if err != nil {
			return RefundNotice{}, err
		}
		return RefundNotice{OutTradeNo: r.OutTradeNo, MchID: r.MchID, SubMchID: r.SubMchID, RefundStatus: RefundStatus{
			OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, State: refundStateOf("v2", r.Status), RawState: r.Status}}, nil
	case "v3":
		r, err := n.V3.ParseRefundNotify(header, body)
		if err != nil {
			return RefundNotice{}, err
		}
		id := r.Identity()
		return RefundNotice{OutTradeNo: r.OutTradeNo, MchID: id.MchID, SubMchID: id.SubMchID, RefundStatus: RefundStatus{
			OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, State: refundStateOf("v3", r.RefundStatus), RawState: r.RefundStatus}}, nil
	}
	return RefundNotice{}, ErrUnknownAPI
}
