package client

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// RefundStatus is where one refund is.
type RefundStatus string

// The refund statuses.
const (
	RefundQueued    RefundStatus = "queued"    // accepted; waits for the order's refund before it
	RefundPending   RefundStatus = "pending"   // at WeChat
	RefundSucceeded RefundStatus = "succeeded" // WeChat paid it back
	RefundFailed    RefundStatus = "failed"    // WeChat refused or closed it (ErrorCode, ErrorMessage)
)

// Refund is one refund of an order, named by its out_refund_no.
type Refund struct {
	OrderID     string       `json:"order_id"`
	OutRefundNo string       `json:"out_refund_no"`
	AmountFen   int64        `json:"amount_fen"`
	Reason      string       `json:"reason,omitempty"`
	Status      RefundStatus `json:"status"`
	// RefundID is WeChat's number for the refund, once it has one.
	RefundID string `json:"refund_id,omitempty"`
	// ErrorCode and ErrorMessage say why a refund failed.
	ErrorCode    string    `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Settled says whether the refund will not change any more.
func (r Refund) Settled() bool { return r.Status == RefundSucceeded || r.Status == RefundFailed }

// RefundResult is wxflow's answer to a refund request.
type RefundResult struct {
	// Refund is the refund as it is now. When Pending, it holds only what
	// the request said.
	Refund Refund
	// Pending: wxflow has the request durably but the engine has not
	// answered in time; it will be applied. Read the refund later
	// ([Client.GetRefund]) or send the same request again.
	Pending bool
	// Replayed: the same refund was asked before (same out_refund_no and
	// amount): nothing more was refunded.
	Replayed bool
}

// Refund asks to refund part or all of a paid order (POST
// /v1/orders/{id}/refunds). wxflow queues it and answers at once with the
// refund (queued or pending); it settles later: read it with
// [Client.GetRefund], or hear the order's refunded event.
//
// Give r an OutRefundNo (or an IdempotencyKey): the same number and amount
// again refund nothing more (Replayed), and the client retries a refund
// that met a network error or a 5xx. The same number with another amount is
// [ErrConflict]; more than remains is [ErrOverRefund]; an unpaid order is
// [ErrInvalidState].
func (c *Client) Refund(ctx context.Context, orderID string, r RefundRequest) (RefundResult, error) {
	if err := checkOrderID(orderID); err != nil {
		return RefundResult{}, err
	}
	if r.IdempotencyKey != "" {
		var ps problems
		checkToken(&ps, "Idempotency-Key", r.IdempotencyKey, maxIdempotencyKey)
		if err := ps.err(); err != nil {
			return RefundResult{}, err
		}
	}
	k := call{method: http.MethodPost, path: "/v1/orders/" + orderID + "/refunds",
		body:    refundBody{AmountFen: r.AmountFen, Reason: r.Reason, OutRefundNo: r.OutRefundNo},
		idemKey: r.IdempotencyKey, safe: r.OutRefundNo != "" || r.IdempotencyKey != ""}
	a, err := c.do(ctx, k)
	if err != nil {
		return RefundResult{}, err
	}
	var v struct {
		Refund
		Pending bool `json:"pending"`
	}
	if err := decode(k, a, &v); err != nil {
		return RefundResult{}, err
	}
	res := RefundResult{Refund: v.Refund, Pending: v.Pending, Replayed: a.header.Get("Idempotent-Replayed") == "true"}
	if res.Pending {
		res.Refund = Refund{OrderID: orderID, OutRefundNo: r.OutRefundNo, AmountFen: r.AmountFen, Reason: r.Reason}
	}
	return res, nil
}

// Refunds lists an order's refunds, oldest first (GET /v1/orders/{id}/refunds).
func (c *Client) Refunds(ctx context.Context, orderID string) ([]Refund, error) {
	if err := checkOrderID(orderID); err != nil {
		return nil, err
	}
	k := call{method: http.MethodGet, path: "/v1/orders/" + orderID + "/refunds", safe: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	var v struct {
		Refunds []Refund `json:"refunds"`
	}
	return v.Refunds, decode(k, a, &v)
}

// GetRefund reads one refund of an order by its out_refund_no (GET
// /v1/orders/{id}/refunds/{out_refund_no}); [ErrNotFound] when the order has
// no such refund.
func (c *Client) GetRefund(ctx context.Context, orderID, outRefundNo string) (Refund, error) {
	if err := checkOrderID(orderID); err != nil {
		return Refund{}, err
	}
	if !validMerchantNo(outRefundNo) {
		return Refund{}, &Error{Code: CodeNotFound, Reason: fmt.Sprintf("no such refund: %q is not an out_refund_no", outRefundNo)}
	}
	k := call{method: http.MethodGet, path: "/v1/orders/" + orderID + "/refunds/" + outRefundNo, safe: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return Refund{}, err
	}
	var r Refund
	return r, decode(k, a, &r)
}
