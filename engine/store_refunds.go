package engine

import (
	"context"
	"time"
)

// The refund queue's SQL (refundqueue.go): the orders whose next queued
// refund is due, and putting one off.

// dueRefund is an order whose next queued refund is due.
type dueRefund struct {
	OrderID     OrderID `db:"id"`
	OutRefundNo string  `db:"out_refund_no"`
}

// dueRefunds lists up to limit orders whose next queued refund is due at
// now, the longest due first (the partial index orders_refund_due), each
// with that refund's out_refund_no.
func (s *Store) dueRefunds(ctx context.Context, now time.Time, limit int) ([]dueRefund, error) {
	var out []dueRefund
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT o.id,
		COALESCE((SELECT r.out_refund_no FROM refunds r WHERE r.order_id = o.id AND r.state = ? ORDER BY r.seq LIMIT 1), '') AS out_refund_no
		FROM orders o WHERE o.refund_due_at IS NOT NULL AND o.refund_due_at <= ? ORDER BY o.refund_due_at LIMIT ?`),
		RefundQueued, now.UTC(), limit)
	return out, err
}

// deferRefund puts an order's due refund off until later, unless it is no
// longer due at that moment's now (sent, or put off by another engine).
func (s *Store) deferRefund(ctx context.Context, d dueRefund, later time.Time) error {
	return s.execWrite(ctx, s.db.Rebind(`UPDATE orders SET refund_due_at = ?
		WHERE id = ? AND refund_due_at IS NOT NULL AND refund_due_at < ?`), later.UTC(), d.OrderID, later.UTC())
}
