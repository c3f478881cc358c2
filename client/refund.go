package client

import (
	"context"
	"encoding/json"
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

// Refund is one refund of an order, named by its out_refund_no, as the
// refund routes answer it. Events and GET /v1/orders/{id} carry refunds in
// the engine's words ("state" for "status", with Seq, SentAt and
// SettledAt): Refund reads both.
type Refund struct {
	OrderID     string       `json:"order_id"`
	OutRefundNo string       `json:"out_refund_no"`
	AmountFen   int64        `json:"amount_fen"`
	Reason      string       `json:"reason"`
	Status      RefundStatus `json:"status"`
	// RefundID is WeChat's number for the refund, once it has one.
	RefundID string `json:"refund_id,omitempty"`
	// ErrorCode and ErrorMessage are WeChat's, for a failed refund (its
	// refusal, or the status word of a refund it closed).
	ErrorCode    string    `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Seq is the refund's place among its order's refunds (1, 2 …), the
	// order they go to WeChat in; SentAt is when it went, SettledAt when
	// WeChat's last word came. Only in events and the order's view.
	Seq       int        `json:"seq,omitempty"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
	SettledAt *time.Time `json:"settled_at,omitempty"`
}

// UnmarshalJSON reads a refund in either words: "status", or the engine's "state".
func (r *Refund) UnmarshalJSON(b []byte) error {
	type plain Refund
	var v struct {
		plain
		State RefundStatus `json:"state"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Refund(v.plain)
	if r.Status == "" {
		r.Status = v.State
	}
	return nil
}

// Settled says whether the refund will not change any more.
func (r Refund) Settled() bool { return r.Status == RefundSucceeded || r.Status == RefundFailed }

// RefundResult is wxflow's answer to a refund request.
type RefundResult struct {
	// Refund is the refund as it is now. When Pending, it holds only what
	// the request said.
	Refund Refund
	// Pending: wxflow has the request durably but the engine has not
	// decided in time; it will be. Send the same request again for the
	// verdict (the refund, or the refusal).
	Pending bool
	// Replayed: the same refund was asked before (same out_refund_no and
	// amount): nothing more was refunded.
	Replayed bool
}

// Refund asks to refund part or all of a paid order (POST
// /v1/orders/{id}/refunds). wxflow queues it and answers at once with the
// refund: pending when it went to WeChat at once, queued behind the order's
// other refunds otherwise (WeChat wants them one at a time, a minute
// apart: ask back to back, wxflow paces them). It settles later: read it
// with [Client.GetRefund], or hear the order's refunded or refund_failed
// event.
//
// Give r an OutRefundNo (or an IdempotencyKey): the same number and amount
// again refund nothing more (Replayed), and the client retries a refund
// that met a network error or a 5xx. The same number with another amount is
// [ErrConflict]; more than remains (counting the refunds queued and at
// WeChat) is [ErrOverRefund]; a 51st refund of an order is
// [ErrTooManyRefunds]; an unpaid order is [ErrInvalidState]. Pending: the
// engine has not decided in time; send the same request again for the
// verdict.
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
	// The refund itself, or {"pending":true, "order_id", "out_refund_no", …}.
	var res RefundResult
	var p struct {
		Pending bool `json:"pending"`
	}
	if err := decode(k, a, &res.Refund); err != nil {
		return RefundResult{}, err
	}
	if err := decode(k, a, &p); err != nil {
		return RefundResult{}, err
	}
	res.Pending, res.Replayed = p.Pending, a.header.Get("Idempotent-Replayed") == "true"
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
