package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
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

// Rules Verify and VerifyRefundPacing check of refunds queued and sent.
const (
	// RuleRefundCommitted: queued, pending and succeeded refunds together
	// above the paid amount (the intake refuses such a refund: over_refund).
	RuleRefundCommitted = "refunds_committed_above_paid"
	// RuleRefundCount: more refunds of one order than WeChat takes.
	RuleRefundCount = "refunds_above_limit"
	// RuleRefundTurn: a refund sent while another of the order was at
	// WeChat, or before one asked earlier.
	RuleRefundTurn = "refund_sent_out_of_turn"
	// RuleRefundGap: two refunds of one order sent to WeChat less than the
	// gap apart (VerifyRefundPacing).
	RuleRefundGap = "refunds_sent_too_close"
)

// Verify scans the store for breaches of the money rules: an order paid
// without a verified notification or query, refunds above the paid amount
// (settled, or queued and at WeChat too), more refunds than WeChat takes, a
// refund sent out of turn, a transition the lifecycle does not allow, a
// broken event sequence, an outbox row left unsent for longer than
// unsentAfter. The refunds' pacing is VerifyRefundPacing's.
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
	refundsOf, err := s.allRefunds(ctx)
	if err != nil {
		return nil, err
	}
	settled := map[OrderID]int64{}
	for id, refunds := range refundsOf {
		for _, r := range refunds {
			if r.State == RefundSucceeded {
				settled[id] += r.AmountFen
			}
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
		refunds := refundsOf[o.ID]
		if committed := committedFen(refunds); committed > o.PaidFen {
			out = append(out, Breach{o.ID, RuleRefundCommitted, fmt.Sprintf("%d fen refunded, at WeChat or queued of %d paid", committed, o.PaidFen)})
		}
		if len(refunds) > MaxRefundsPerOrder {
			out = append(out, Breach{o.ID, RuleRefundCount, fmt.Sprintf("%d refunds, WeChat takes %d", len(refunds), MaxRefundsPerOrder)})
		}
		out = append(out, refundTurns(o.ID, refunds)...)
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

// allRefunds reads every refund, by order, each order's in queue order.
func (s *Store) allRefunds(ctx context.Context) (map[OrderID][]Refund, error) {
	var refunds []Refund
	if err := s.db.SelectContext(ctx, &refunds, "SELECT "+refundColumns+" FROM refunds ORDER BY order_id, seq"); err != nil {
		return nil, err
	}
	out := map[OrderID][]Refund{}
	for _, r := range refunds {
		fixRefund(&r)
		out[r.OrderID] = append(out[r.OrderID], r)
	}
	return out, nil
}

// refundTurns finds the refunds of one order (in queue order) sent out of
// turn: while the refund sent before was not settled yet, or while one
// asked earlier was still queued.
func refundTurns(id OrderID, refunds []Refund) []Breach {
	var out []Breach
	var prev *Refund // the refund sent last before r
	for i, r := range refunds {
		if r.SentAt == nil {
			continue
		}
		for _, earlier := range refunds[:i] {
			if earlier.SentAt == nil {
				out = append(out, Breach{id, RuleRefundTurn, fmt.Sprintf("refund %s sent while %s, asked before it, was queued", r.OutRefundNo, earlier.OutRefundNo)})
			}
		}
		if prev != nil && (prev.SettledAt == nil || r.SentAt.Before(*prev.SettledAt)) {
			out = append(out, Breach{id, RuleRefundTurn, fmt.Sprintf("refund %s sent while %s was at WeChat", r.OutRefundNo, prev.OutRefundNo)})
		}
		prev = &refunds[i]
	}
	return out
}

// VerifyRefundPacing finds two refunds of one order sent to WeChat less than
// gap apart (WeChat wants a minute between two refunds of an order; the
// engine's RefundConfig.Gap). A deployment that runs on scaled time (`wxflow
// dev`, tests) passes its own gap.
func (s *Store) VerifyRefundPacing(ctx context.Context, gap time.Duration) ([]Breach, error) {
	refundsOf, err := s.allRefunds(ctx)
	if err != nil {
		return nil, err
	}
	var out []Breach
	for _, id := range slices.Sorted(maps.Keys(refundsOf)) {
		refunds := refundsOf[id]
		var prev *Refund
		for i, r := range refunds {
			if r.SentAt == nil {
				continue
			}
			if prev != nil && r.SentAt.Sub(*prev.SentAt) < gap {
				out = append(out, Breach{id, RuleRefundGap, fmt.Sprintf("refunds %s and %s sent %s apart, less than %s",
					prev.OutRefundNo, r.OutRefundNo, r.SentAt.Sub(*prev.SentAt), gap)})
			}
			prev = &refunds[i]
		}
	}
	return out, nil
}
