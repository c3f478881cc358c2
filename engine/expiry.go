package engine

import (
	"context"
	"errors"
	"time"
)

// runExpiry closes, every ExpiryInterval, the unpaid orders whose expires_at
// has passed: at most 100 per tick, so thousands due at once cause no herd.
// An order with a prepay_id asks the close worker to close it at WeChat first.
func (e *Engine) runExpiry(ctx context.Context) error {
	t := time.NewTicker(e.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.ExpireOnce(ctx, 100); err != nil && ctx.Err() == nil {
			e.log.Warn("expiry", "err", err)
		}
	}
}

// ExpireOnce closes up to limit expired orders (those in a state the
// lifecycle lets close). Engines sharing a store take turns (turns.go): when
// another engine is expiring orders, this one does nothing. Each close is
// idempotent anyway (ExpireCommandID: one per order).
func (e *Engine) ExpireOnce(ctx context.Context, limit int) error {
	err := e.store.takeTurn(ctx, turnExpiry, 0, func() error { return e.expire(ctx, limit) })
	if errors.Is(err, errTurnTaken) {
		return nil
	}
	return err
}

// expire closes up to limit expired orders, holding the expiry's turn.
func (e *Engine) expire(ctx context.Context, limit int) error {
	ids, err := e.store.expiredOrders(ctx, closableStates(), e.cfg.Now(), limit)
	if err != nil {
		return err
	}
	for _, id := range ids {
		cmd := Command{ID: ExpireCommandID(id), Verb: VerbClose, OrderID: id, At: e.cfg.Now().UTC(),
			Actor: "expiry", Reason: "unpaid past its expiry", Close: &CloseAsk{}}
		if _, err := e.Apply(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}
