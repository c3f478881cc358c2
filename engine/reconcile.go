package engine

import (
	"context"
	"errors"
	"time"
)

// ReconcileConfig tunes the reconciler; zero fields take the defaults.
type ReconcileConfig struct {
	// Interval between rounds (5 s).
	Interval time.Duration
	// PaymentDelay: a signed order quiet this long gets a payment query; the
	// next one comes twice as long after, and so on (3 s, 6 s, 12 s … from a
	// 3 s delay), never later than the order's expiry, when the expirer takes
	// over (1 min).
	PaymentDelay time.Duration
	// RefundDelay: a refunding order quiet this long gets its refund asked and
	// queried again, then after twice as long, and so on up to RefundMaxGap (2 min).
	RefundDelay time.Duration
	// RefundMaxGap is the longest the reconciler waits between two asks
	// about a refund that stays pending (30 min): a refund may take days.
	RefundMaxGap time.Duration
	// Batch bounds the orders asked about per round (50), the longest due
	// first, so thousands due at once are spread over rounds instead of
	// hitting WeChat together.
	Batch int
}

func (c *ReconcileConfig) defaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.PaymentDelay == 0 {
		c.PaymentDelay = time.Minute
	}
	if c.RefundDelay == 0 {
		c.RefundDelay = 2 * time.Minute
	}
	if c.RefundMaxGap == 0 {
		c.RefundMaxGap = 30 * time.Minute
	}
	if c.Batch == 0 {
		c.Batch = 50
	}
}

// The reconciler keeps a schedule per order (the store's reconcile_attempts
// and reconcile_at): when the order enters a state that waits on WeChat
// (the lifecycle's asks), its first ask is due after the state's delay; each
// ask doubles the gap to the next. A quiet order is asked about 3 s, 9 s,
// 21 s, 45 s … after it was signed, not every round: with every quiet order
// asked every round, 3,000 orders nobody paid for starved a real lost
// payment (found after 29 s instead of 3 s). Each round takes the orders due,
// the longest due first, through an index that holds only scheduled orders.

// schedule sets the reconciler's schedule of a change: kept while the order
// stays in its state, begun again when it enters another (or is created).
func (e *Engine) schedule(cur *orderRow, ch *change, now time.Time) {
	if cur != nil && cur.State == ch.order.State {
		ch.reconcileAttempts, ch.reconcileAt = cur.ReconcileAttempts, cur.ReconcileAt
		return
	}
	ch.reconcileAttempts, ch.reconcileAt = 0, e.cfg.Reconcile.nextAsk(ch.order, 0, now)
}

// nextAsk is when the reconciler asks WeChat about o after it asked attempts
// times since o entered its state (now is the entry, or the last ask); nil
// when it does not ask again. The gap is the state's delay doubled per
// attempt; a payment is not asked about past the order's expiry (the
// expirer closes it, at WeChat first), a refund at least every RefundMaxGap.
func (c ReconcileConfig) nextAsk(o Order, attempts int, now time.Time) *time.Time {
	var gap, most time.Duration
	switch rule(o.State).asks {
	case askPayment:
		gap, most = c.PaymentDelay, o.ExpiresAt.Sub(now)
		if most <= 0 {
			return nil
		}
	case askRefund:
		gap, most = c.RefundDelay, c.RefundMaxGap
	default:
		return nil
	}
	for i := 0; i < attempts && gap < most; i++ {
		gap *= 2
	}
	next := now.Add(min(gap, most)).UTC()
	return &next
}

// runReconcile heals what WeChat's notifications did not: a lost payment
// notification (the order query finds the payment) and a lost refund
// notification (the refund query finds the result). Each round replays the
// orders whose ask is due.
func (e *Engine) runReconcile(ctx context.Context) error {
	return e.every(ctx, e.cfg.Reconcile.Interval, "reconcile", e.ReconcileOnce)
}

// ReconcileOnce replays up to Batch orders whose ask is due, the longest due
// first, and schedules each one's next ask; it returns how many it replayed.
// A replay keeps the order's alert flags (flags.go): the reconciler never
// clears what a person must see. Engines sharing a store take turns
// (turns.go): when another engine is reconciling, this one replays nothing
// and returns 0 (its round's command ids would differ from the other's, so
// both would ask WeChat about the same orders).
func (e *Engine) ReconcileOnce(ctx context.Context) (int, error) {
	return e.store.roundInTurn(ctx, turnReconcile, func() (int, error) { return e.reconcile(ctx) })
}

// reconcile is one round of the reconciler, holding its turn.
func (e *Engine) reconcile(ctx context.Context) (int, error) {
	c := e.cfg.Reconcile
	now := e.cfg.Now().UTC()
	due, err := e.store.dueAsks(ctx, now, c.Batch)
	if err != nil {
		return 0, err
	}
	for _, d := range due {
		cmd := Command{ID: ReconcileCommandID(d.ID, now), Verb: VerbReplay, OrderID: d.ID, At: now,
			Actor: "reconciler", Reason: "no word from WeChat for a while: ask"}
		if _, err := e.Apply(ctx, cmd); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrStoreBusy) || errors.Is(err, ErrStoreFull) {
				return 0, err
			}
			// An order the replay cannot serve must not hold up the others
			// (it would be the longest due, first in every round).
			e.log.Warn("reconcile: replay failed; asking again later", "order_id", d.ID, "err", err)
		}
		o := Order{State: d.State, ExpiresAt: d.ExpiresAt}
		if err := e.store.rescheduleAsk(ctx, d, c.nextAsk(o, d.Attempts+1, now)); err != nil {
			return 0, storeError(err)
		}
	}
	return len(due), nil
}
