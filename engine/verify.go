package engine

import (
	"context"
	"fmt"
	"time"
)

// Breach is one broken invariant found by Verify.
type Breach struct {
	OrderID OrderID `json:"order_id,omitempty"`
	Rule    string  `json:"rule"`
	Detail  string  `json:"detail"`
}

// Rules Verify checks.
const (
	RulePaidUnverified = "paid_without_verified_source" // paid but no notified event from a notification or a query
	RuleOverRefund     = "refunds_above_paid"
	RuleRefundSum      = "refunded_amount_mismatch" // refunded_fen differs from the settled refunds
	RuleTransition     = "transition_not_allowed"
	RuleSequence       = "event_sequence_broken"
	RuleOutboxUnsent   = "outbox_row_never_sent"
)

// Verify scans the store for breaches of the money rules: an order paid
// without a verified notification or query, refunds above the paid amount, a
// transition the lifecycle does not allow, a broken event sequence, an outbox
// row left unsent for longer than unsentAfter.
func (s *Store) Verify(ctx context.Context, unsentAfter time.Duration) ([]Breach, error) {
	var out []Breach
	var orders []struct {
		ID          OrderID `db:"id"`
		State       State   `db:"state"`
		PaidFen     int64   `db:"paid_fen"`
		RefundedFen int64   `db:"refunded_fen"`
		Version     int64   `db:"version"`
	}
	if err := s.db.SelectContext(ctx, &orders, "SELECT id, state, paid_fen, refunded_fen, version FROM orders"); err != nil {
		return nil, err
	}
	type ev struct {
		OrderID OrderID `db:"order_id"`
		Seq     int64   `db:"seq"`
		Type    string  `db:"type"`
		From    State   `db:"from_state"`
		To      State   `db:"to_state"`
		Reason  string  `db:"reason"`
	}
	var events []ev
	if err := s.db.SelectContext(ctx, &events, "SELECT order_id, seq, type, from_state, to_state, reason FROM order_events ORDER BY order_id, seq"); err != nil {
		return nil, err
	}
	byOrder := map[OrderID][]ev{}
	for _, e := range events {
		byOrder[e.OrderID] = append(byOrder[e.OrderID], e)
	}
	var refunds []Refund
	if err := s.db.SelectContext(ctx, &refunds, "SELECT out_refund_no, order_id, amount_fen, reason, state, refund_id, created_at, updated_at FROM refunds"); err != nil {
		return nil, err
	}
	settled := map[OrderID]int64{}
	for _, r := range refunds {
		if r.State == RefundSucceeded {
			settled[r.OrderID] += r.AmountFen
		}
	}
	for _, o := range orders {
		evs := byOrder[o.ID]
		state := State("")
		verified := false
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				out = append(out, Breach{o.ID, RuleSequence, fmt.Sprintf("event %d has seq %d", i+1, e.Seq)})
				break
			}
			if i > 0 && e.From != state {
				out = append(out, Breach{o.ID, RuleSequence, fmt.Sprintf("seq %d starts from %s, the order was %s", e.Seq, e.From, state)})
			}
			if !allowedMove(EventType(e.Type), e.From, e.To) {
				out = append(out, Breach{o.ID, RuleTransition, fmt.Sprintf("seq %d: %s %s → %s", e.Seq, e.Type, e.From, e.To)})
			}
			if EventType(e.Type) == EventNotified && (e.Reason == paidReason(SourceNotification) || e.Reason == paidReason(SourceQuery)) {
				verified = true
			}
			state = e.To
		}
		if len(evs) > 0 && (state != o.State || int64(len(evs)) != o.Version) {
			out = append(out, Breach{o.ID, RuleSequence, fmt.Sprintf("%d events ending in %s; the order is %s at version %d", len(evs), state, o.State, o.Version)})
		}
		if o.PaidFen > 0 && !verified {
			out = append(out, Breach{o.ID, RulePaidUnverified, fmt.Sprintf("%d fen paid", o.PaidFen)})
		}
		if o.RefundedFen > o.PaidFen {
			out = append(out, Breach{o.ID, RuleOverRefund, fmt.Sprintf("%d fen refunded of %d", o.RefundedFen, o.PaidFen)})
		}
		if settled[o.ID] != o.RefundedFen {
			out = append(out, Breach{o.ID, RuleRefundSum, fmt.Sprintf("order says %d fen, settled refunds %d", o.RefundedFen, settled[o.ID])})
		}
	}
	var unsent []struct {
		EventID string    `db:"event_id"`
		At      time.Time `db:"created_at"`
	}
	if err := s.db.SelectContext(ctx, &unsent, s.db.Rebind("SELECT event_id, created_at FROM outbox WHERE sent_at IS NULL AND created_at < ?"),
		time.Now().UTC().Add(-unsentAfter)); err != nil {
		return nil, err
	}
	for _, u := range unsent {
		out = append(out, Breach{Rule: RuleOutboxUnsent, Detail: fmt.Sprintf("event %s, written %s", u.EventID, u.At.Format(time.RFC3339))})
	}
	return out, nil
}
