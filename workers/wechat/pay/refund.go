package pay

import (
	"context"

	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// RefundRequest is a refund; OutRefundNo is the same on every retry.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	TotalFen    int64
	RefundFen   int64
	Reason      string
}

// RefundStatus is a refund as WeChat reports it, in an answer or a refund
// notification, the same words in both generations.
type RefundStatus struct {
	OutRefundNo string
	RefundID    string
	State       RefundState
	// RawState is WeChat's own word for State, in its generation's spelling
	// (v2 REFUNDCLOSE, v3 CLOSED), for logs and errors; empty where WeChat
	// gave none (v2's answer to a refund, which means PROCESSING).
	RawState string
}

// Refund asks WeChat for a refund; the answer is usually PROCESSING.
func (p *Payments) Refund(ctx context.Context, api API, r RefundRequest) (RefundStatus, error) {
	switch api {
	case "v2":
		res, err := p.cfg.V2.Refund(ctx, v2.RefundRequest{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo,
			TotalFen: r.TotalFen, RefundFen: r.RefundFen, Reason: r.Reason, NotifyURL: p.NotifyURL("v2", "refund")})
		// v2 answers no status: an accepted refund is being processed.
		return RefundStatus{OutRefundNo: res.OutRefundNo, RefundID: res.RefundID, State: RefundProcessing}, err
	case "v3":
		res, err := p.cfg.V3.Refund(ctx, v3.RefundRequest{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo,
			TotalFen: r.TotalFen, RefundFen: r.RefundFen, Reason: r.Reason, NotifyURL: p.NotifyURL("v3", "refund")})
		return fromV3Refund(res), err
	}
	return RefundStatus{}, ErrUnknownAPI
}

// QueryRefund asks WeChat for a refund's state.
func (p *Payments) QueryRefund(ctx context.Context, api API, outRefundNo string) (RefundStatus, error) {
	switch api {
	case "v2":
		st, err := p.cfg.V2.RefundQuery(ctx, outRefundNo)
		return RefundStatus{OutRefundNo: st.OutRefundNo, RefundID: st.RefundID, State: refundStateOf("v2", st.Status), RawState: st.Status}, err
	case "v3":
		r, err := p.cfg.V3.QueryRefund(ctx, outRefundNo)
		return fromV3Refund(r), err
	}
	return RefundStatus{}, ErrUnknownAPI
}

// fromV3Refund reads v3's answer to a refund or a refund query.
func fromV3Refund(r v3.Refund) RefundStatus {
	return RefundStatus{OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, State: refundStateOf("v3", r.Status), RawState: r.Status}
}
