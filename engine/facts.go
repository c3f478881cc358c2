package engine

import (
	"context"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
)

// facts is what decide needs to know besides the command: everything it
// would otherwise read from the store, loaded by Apply (loadFacts) in the
// command's transaction, after the order is locked. With it, decide is a
// pure function, tested on every state and command without a database.
type facts struct {
	// order is the command's order, nil when there is none.
	order *orderRow
	// tradeOwner is, for a create, the order that already holds the
	// merchant's out_trade_no ("" when none does).
	tradeOwner OrderID
	// refund is, for a refund or a refund result, the refund with the
	// command's out_refund_no, of whichever order; nil when there is none.
	refund *Refund
	// inFlight is, for a replay of an order waiting on a refund, the refund
	// it waits for.
	inFlight *Refund
	// refunds are, for a refund, a refund result or a send, the order's
	// refunds in their queue's order (seq).
	refunds []Refund
	// refundGap is the least time between one refund's settling and the
	// next refund of the order being sent (RefundConfig.Gap).
	refundGap time.Duration
	// shopMerchants are, for a create a shop published on NATS itself, the
	// merchants that shop may act for (none when the shop is unknown).
	shopMerchants []string
	// defaultExpiry is an order's lifetime when the shop gives none (Config.DefaultExpiry).
	defaultExpiry time.Duration
}

// loadFacts reads the facts cmd needs; the order is read FOR UPDATE on
// PostgreSQL (SQLite's write transaction holds the database already).
func (e *Engine) loadFacts(ctx context.Context, tx *sqlx.Tx, cmd Command) (facts, error) {
	s := e.store
	f := facts{defaultExpiry: e.cfg.DefaultExpiry, refundGap: e.cfg.Refunds.Gap}
	row, err := s.lockOrder(ctx, tx, cmd.OrderID)
	switch {
	case err == nil:
		f.order = &row
	case errors.Is(err, ErrNotFound):
		err = nil
	default:
		return f, err
	}
	if name, ok := cmd.Origin.Shop(); ok && cmd.Verb == VerbCreate {
		// Whether the order exists or not: a shop's create for an order id
		// taken is a conflict (or the same request), not a merchant refusal.
		shop, serr := s.Shop(ctx, name)
		switch {
		case serr == nil:
			f.shopMerchants = shop.Merchants
		case !errors.Is(serr, ErrNotFound):
			return f, serr
		}
	}
	switch {
	case cmd.Verb == VerbCreate && f.order == nil:
		if f.tradeOwner, err = s.tradeOwner(ctx, tx, cmd.Create.Merchant, cmd.Create.OutTradeNo); err != nil {
			return f, err
		}
	case f.order == nil:
	case cmd.Verb == VerbRefund:
		if f.refund, err = s.refundIn(ctx, tx, cmd.Refund.OutRefundNo); err == nil {
			f.refunds, err = s.refundsOf(ctx, tx, f.order.ID)
		}
	case cmd.Verb == VerbRefunded:
		if f.refund, err = s.refundIn(ctx, tx, cmd.Refunded.OutRefundNo); err == nil {
			f.refunds, err = s.refundsOf(ctx, tx, f.order.ID)
		}
	case cmd.Verb == VerbSendRefund:
		f.refunds, err = s.refundsOf(ctx, tx, f.order.ID)
	case cmd.Verb == VerbReplay && rule(f.order.State).replay == EventRefunding:
		var r Refund
		if r, err = s.pendingRefund(ctx, tx, f.order.ID); err == nil {
			f.inFlight = &r
		}
	}
	return f, err
}
