package v2

import (
	"context"
	"fmt"
	"strconv"

	"github.com/wxflow/wxflow/workers/wechat"
)

// RefundRequest is a refund (申请退款, secapi/pay/refund). OutRefundNo must be
// the same on every retry: a new number is a second refund.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	TotalFen    int64
	RefundFen   int64
	Reason      string
	NotifyURL   string
}

// RefundResponse says WeChat accepted a refund; the result comes later by
// notification or RefundQuery.
type RefundResponse struct {
	RefundID    string
	OutRefundNo string
	RefundFen   int64
}

// Refund asks for a refund over mutual TLS with the merchant certificate.
func (c *Client) Refund(ctx context.Context, r RefundRequest) (RefundResponse, error) {
	out, err := c.call(ctx, "/secapi/pay/refund", map[string]string{
		"out_trade_no": r.OutTradeNo, "out_refund_no": r.OutRefundNo,
		"total_fee": strconv.FormatInt(r.TotalFen, 10), "refund_fee": strconv.FormatInt(r.RefundFen, 10),
		"refund_desc": r.Reason, "notify_url": r.NotifyURL,
	}, true)
	if err != nil {
		return RefundResponse{}, err
	}
	fen, _ := parseFen("refund_fee", out["refund_fee"])
	return RefundResponse{RefundID: out["refund_id"], OutRefundNo: out["out_refund_no"], RefundFen: fen}, nil
}

// RefundStatus is one refund's state: SUCCESS, REFUNDCLOSE, PROCESSING or CHANGE.
type RefundStatus struct {
	OutRefundNo string
	RefundID    string
	RefundFen   int64
	Status      string
}

// RefundQuery asks for the state of one refund by out_refund_no.
func (c *Client) RefundQuery(ctx context.Context, outRefundNo string) (RefundStatus, error) {
	out, err := c.call(ctx, "/pay/refundquery", map[string]string{"out_refund_no": outRefundNo}, false)
	if err != nil {
		return RefundStatus{}, err
	}
	for i := 0; ; i++ {
		n := strconv.Itoa(i)
		no, ok := out["out_refund_no_"+n]
		if !ok {
			return RefundStatus{}, &wechat.Error{API: "pay/refundquery", Code: "REFUNDNOTEXIST", Err: fmt.Errorf("%w: %s not in the answer", wechat.ErrMalformed, outRefundNo)}
		}
		if no == outRefundNo {
			fen, _ := parseFen("refund_fee", out["refund_fee_"+n])
			return RefundStatus{OutRefundNo: no, RefundID: out["refund_id_"+n], RefundFen: fen, Status: out["refund_status_"+n]}, nil
		}
	}
}
