package engine

import (
	"context"
	"time"
)

// ReconcileConfig tunes the reconciler; zero fields take the defaults.
type ReconcileConfig struct {
	// Interval between rounds (5 s).
	Interval time.Duration
	// PaymentDelay: a signed order quiet this long gets a payment query, and
	// again after each such delay until it is paid or expires (1 min).
	PaymentDelay time.Duration
	// RefundDelay: a refunding order quiet this long gets its refund asked and
	// queried again (2 min).
	RefundDelay time.Duration
	// Batch bounds the orders touched per round (50), so thousands due at once
	// are spread over rounds instead of hitting WeChat together.
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
	if c.Batch == 0 {
		c.Batch = 50
	}
}

// runReconcile heals what WeChat's notifications did not: a lost payment
// notification (the order query finds the payment) and a lost refund
// notification (the refund query finds the result). It replays the quiet
// orders; a replay touches the order, so each is queried at most once per delay.
func (e *Engine) runReconcile(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Reconcile.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := e.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reconcile", "err", err)
		}
	}
}

// ReconcileOnce replays up to Batch quiet orders and returns how many.
func (e *Engine) ReconcileOnce(ctx context.Context) (int, error) {
	c := e.cfg.Reconcile
	now := e.cfg.Now().UTC()
	ids, err := e.store.quietOrders(ctx, Signed, now.Add(-c.PaymentDelay), now, Refunding, now.Add(-c.RefundDelay), c.Batch)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		cmd := Command{ID: ReconcileCommandID(id, now), Verb: VerbReplay, OrderID: id, At: now,
			Actor: "reconciler", Reason: "no word from WeChat for a while: ask"}
		if _, err := e.Apply(ctx, cmd); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
