package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The refund queue. A shop may ask several refunds of one order at once;
// WeChat wants them one at a time and a minute apart (同一笔订单多次退款需相隔1分钟),
// at most 50 of one order. So a refund is queued when asked (refund_queued,
// the order staying where it is), and the engine sends an order's queued
// refunds to the refund worker in the order asked, each once the one before
// has settled (succeeded, or refused or closed by WeChat) and the gap has
// passed since: send_refund moves the order to refunding.
//
// The schedule is in SQL, like the reconciler's: orders.refund_due_at is when
// the order's next queued refund is due, set in the transaction of the
// command that made it so (the refund queued, the one before settled), NULL
// while nothing is queued or one refund is at WeChat. A round takes the due
// orders through a partial index and applies send_refund to each. An engine
// that dies loses nothing: the due time is stored with the refund it
// schedules. A send applied twice (two engines, a round replayed) sends
// nothing twice: the refund must still be the order's next queued one.

// RefundConfig tunes the refund queue; zero fields take the defaults.
type RefundConfig struct {
	// Gap is the least time between a refund's settling and the next
	// refund of the same order being sent (1 min, WeChat's rule). Counting
	// from the settling, not the sending, keeps a minute at WeChat even when
	// the refund worker reached WeChat late (a retry). Tests and `wxflow dev`
	// scale it with the simulator's time.
	Gap time.Duration
	// Interval between rounds of sending due refunds (1 s).
	Interval time.Duration
	// Batch bounds the orders served per round (100), the longest due first.
	Batch int
}

func (c *RefundConfig) defaults() {
	if c.Gap == 0 {
		c.Gap = time.Minute
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
}

func (c RefundConfig) validate() error {
	if c.Gap < 0 || c.Interval < 0 || c.Batch < 0 {
		return errors.New("engine: negative refund gap, interval or batch")
	}
	return nil
}

// committedFen is what an order's refunds hold of its payment: queued,
// pending and succeeded ones.
func committedFen(refunds []Refund) int64 {
	var n int64
	for _, r := range refunds {
		if r.State.Commits() {
			n += r.AmountFen
		}
	}
	return n
}

// lastSeq is the highest place in the queue (0 when empty).
func lastSeq(refunds []Refund) int {
	n := 0
	for _, r := range refunds {
		n = max(n, r.Seq)
	}
	return n
}

// nextQueued is the index of the order's next queued refund (the lowest
// seq), -1 when none is queued.
func nextQueued(refunds []Refund) int {
	next := -1
	for i, r := range refunds {
		if r.State == RefundQueued && (next < 0 || r.Seq < refunds[next].Seq) {
			next = i
		}
	}
	return next
}

// dueAfter is when the order's next refund may be sent: the gap after the
// last refund sent settled; the zero time when none was ever sent.
func dueAfter(refunds []Refund, gap time.Duration) time.Time {
	var last *Refund
	for i, r := range refunds {
		if r.SentAt != nil && (last == nil || r.Seq > last.Seq) {
			last = &refunds[i]
		}
	}
	if last == nil {
		return time.Time{}
	}
	settled := last.UpdatedAt
	if last.SettledAt != nil {
		settled = *last.SettledAt
	}
	return settled.Add(gap)
}

// sendNext sends the order's next queued refund of refunds (the order's
// refunds as the change leaves them) when nothing of the order is at
// WeChat and its gap has passed: the order moves to refunding and the
// refund is pending from now; it returns the refund's index in refunds
// (updated in place), or -1. It sets the change's refundDue either way: when
// the next queued refund is due, or nil.
func (ch *change) sendNext(refunds []Refund, gap time.Duration, now time.Time) (int, error) {
	ch.refundDue = nil
	next := nextQueued(refunds)
	if next < 0 {
		return -1, nil
	}
	for _, r := range refunds {
		if r.State == RefundPending {
			return -1, nil // one at a time: its result sets the next one's due time
		}
	}
	if due := dueAfter(refunds, gap); due.After(now) {
		ch.refundDue = &due
		return -1, nil
	}
	o := &ch.order
	if rf := ch.move(VerbSendRefund, EventRefunding); rf != nil {
		return -1, fmt.Errorf("engine: order %s has refund %s queued and none at WeChat, but %s", o.ID, refunds[next].OutRefundNo, rf.reason)
	}
	r := &refunds[next]
	r.State, r.SentAt, r.UpdatedAt = RefundPending, &now, now
	sent := *r
	ev := &ch.events[len(ch.events)-1]
	ev.Refund, ev.Reason = &sent, fmt.Sprintf("refund %s (%d of the order) sent to WeChat", r.OutRefundNo, r.Seq)
	return next, nil
}

// runRefundQueue sends, every Refunds.Interval, the queued refunds that are due.
func (e *Engine) runRefundQueue(ctx context.Context) error {
	return e.every(ctx, e.cfg.Refunds.Interval, "refund queue", e.SendRefundsOnce)
}

// SendRefundsOnce sends the next queued refund of up to Refunds.Batch orders
// whose refund is due, the longest due first; it returns how many it sent. A
// send the engine refuses (another engine sent it first, or a clock behind
// that engine's) is looked at again a gap later, so that it cannot hold up
// the orders behind it. Engines sharing a store take turns (turns.go): when
// another engine is sending, this one sends nothing and returns 0.
func (e *Engine) SendRefundsOnce(ctx context.Context) (int, error) {
	return e.store.roundInTurn(ctx, turnRefunds, func() (int, error) { return e.sendRefunds(ctx) })
}

// sendRefunds is one round of the refund queue, holding its turn.
func (e *Engine) sendRefunds(ctx context.Context) (int, error) {
	c := e.cfg.Refunds
	now := e.cfg.Now().UTC()
	due, err := e.store.dueRefunds(ctx, now, c.Batch)
	if err != nil {
		return 0, storeError(err)
	}
	sent := 0
	for _, d := range due {
		cmd := Command{ID: SendRefundCommandID(d.OutRefundNo, now), Verb: VerbSendRefund, OrderID: d.OrderID, At: now,
			Actor: "engine", Reason: "the order's next refund is due", Send: &RefundSend{OutRefundNo: d.OutRefundNo}}
		res, err := e.Apply(ctx, cmd)
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, ErrStoreBusy) || errors.Is(err, ErrStoreFull)):
			return sent, err
		case err != nil:
			e.log.Warn("refund queue: send failed; trying again later", "order_id", d.OrderID, "out_refund_no", d.OutRefundNo, "err", err)
		case res.Applied:
			sent++
			continue
		default:
			e.log.Info("refund queue: send refused", "order_id", d.OrderID, "out_refund_no", d.OutRefundNo, "code", res.Code, "reason", res.Reason)
		}
		if err := e.store.deferRefund(ctx, d, now.Add(c.Gap)); err != nil {
			return sent, storeError(err)
		}
	}
	return sent, nil
}
