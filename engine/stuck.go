package engine

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// StuckOrder is an order that stopped moving, and why.
type StuckOrder struct {
	Order
	Why string `json:"why"`
}

// StuckFilter selects stuck orders.
type StuckFilter struct {
	// Deadlines per waiting state; DefaultDeadlines when nil.
	Deadlines map[State]time.Duration
	// State keeps only one state when set.
	State State
	// Merchant keeps only one merchant's orders when set.
	Merchant string
	// OlderThan, when set, replaces every deadline.
	OlderThan time.Duration
	Now       time.Time
	Limit     int // 1000 when 0
}

// Stuck lists the orders that stayed in a waiting state past its deadline,
// and the flagged ones (dead-lettered message, amount mismatch, payment after
// close, closed refund …), oldest first.
func (s *Store) Stuck(ctx context.Context, f StuckFilter) ([]StuckOrder, error) {
	if f.Deadlines == nil {
		f.Deadlines = DefaultDeadlines
	}
	if f.Now.IsZero() {
		f.Now = time.Now()
	}
	if f.Limit == 0 {
		f.Limit = 1000
	}
	var out []StuckOrder
	flagged, err := s.Orders(ctx, OrderFilter{Merchant: f.Merchant, Flagged: true, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	seen := map[OrderID]bool{}
	for _, o := range flagged {
		if f.State == "" || o.State == f.State {
			out = append(out, StuckOrder{Order: o, Why: "flagged: " + strings.Join(o.Flags, ", ")})
			seen[o.ID] = true
		}
	}
	for _, st := range waitingStates() {
		if f.State != "" && st != f.State {
			continue
		}
		d := f.Deadlines[st]
		if f.OlderThan > 0 {
			d = f.OlderThan
		}
		orders, err := s.Orders(ctx, OrderFilter{Merchant: f.Merchant, States: []State{st}, UpdatedBefore: f.Now.Add(-d), Limit: f.Limit})
		if err != nil {
			return nil, err
		}
		for _, o := range orders {
			if seen[o.ID] {
				continue
			}
			why := fmt.Sprintf("%s for %s (deadline %s)", st, f.Now.Sub(o.UpdatedAt).Round(time.Second), d)
			if rule(st).onPayer && f.OlderThan == 0 {
				if f.Now.Before(o.ExpiresAt.Add(time.Minute)) {
					continue // the payer may still pay
				}
				why = fmt.Sprintf("%s and %s past its expiry", st, f.Now.Sub(o.ExpiresAt).Round(time.Second))
			}
			out = append(out, StuckOrder{Order: o, Why: why})
		}
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}
