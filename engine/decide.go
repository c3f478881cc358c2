package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// decide works out what cmd does to the order cur (nil when absent): a change
// to write, or a refusal. It reads, never writes.
func (e *Engine) decide(ctx context.Context, tx *sqlx.Tx, cur *orderRow, cmd Command, now time.Time) (*change, *refusal, error) {
	if cmd.Verb == VerbCreate {
		return e.decideCreate(ctx, tx, cur, cmd, now)
	}
	if cur == nil {
		return nil, &refusal{code: CodeUnknownOrder, reason: fmt.Sprintf("no order %s", cmd.OrderID)}, nil
	}
	ch := &change{order: cur.Order}
	o := &ch.order
	move := func(fsmEvent string, t EventType) *refusal {
		to, err := transition(o.State, fsmEvent)
		if err != nil {
			return &refusal{code: CodeInvalidState, reason: fmt.Sprintf("%s is not allowed in state %s", cmd.Verb, o.State)}
		}
		ch.events = append(ch.events, Event{Type: t, From: o.State, To: to})
		o.State = to
		return nil
	}
	switch cmd.Verb {
	case VerbAuthorize:
		if cmd.Authorize.OpenID == "" {
			return nil, &refusal{code: CodeInvalid, reason: "authorize without openid"}, nil
		}
		if r := move(fsmAuthorize, EventAuthorized); r != nil {
			return nil, r, nil
		}
		o.OpenID, o.OAuthCode, o.LoginCode = cmd.Authorize.OpenID, "", ""
	case VerbPrepaid:
		if cmd.Prepaid.PrepayID == "" {
			return nil, &refusal{code: CodeInvalid, reason: "prepaid without prepay_id"}, nil
		}
		if r := move(fsmPrepaid, EventPrepaid); r != nil {
			return nil, r, nil
		}
		o.PrepayID = cmd.Prepaid.PrepayID
	case VerbSigned:
		if r := move(fsmSigned, EventSigned); r != nil {
			return nil, r, nil
		}
		o.PayParams = cmd.Signed.PayParams
	case VerbNotify:
		return e.decideNotify(ch, cmd)
	case VerbRefund:
		return e.decideRefund(ctx, tx, ch, cmd, now)
	case VerbRefunded:
		return e.decideRefunded(ctx, tx, ch, cmd)
	case VerbClose:
		confirmed := cmd.Close != nil && cmd.Close.Confirmed
		if !canTransition(o.State, fsmClose) {
			return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("close is not allowed in state %s", o.State)}, nil
		}
		if o.PrepayID != "" && !confirmed {
			// The payer may hold the pay parameters: WeChat must close first.
			if cur.CloseRequested {
				return nil, &refusal{code: CodeCloseRequested, reason: "closing is already under way"}, nil
			}
			ch.closeReq = true
			ch.events = append(ch.events, Event{Type: EventCloseRequested, From: o.State, To: o.State})
			return ch, nil, nil
		}
		if r := move(fsmClose, EventClosed); r != nil {
			return nil, r, nil
		}
	case VerbFail:
		if cmd.Fail.State != "" && cmd.Fail.State != o.State {
			return nil, &refusal{code: CodeStale, reason: fmt.Sprintf("%s failed from %s, the order is %s now", cmd.Fail.Step, cmd.Fail.State, o.State)}, nil
		}
		if r := move(fsmFail, EventFailed); r != nil {
			return nil, r, nil
		}
		o.FailCode, o.FailReason = cmd.Fail.Code, cmd.Fail.Step+": "+cmd.Fail.Message
		ch.events[0].Reason = o.FailReason
	case VerbReplay:
		t, ok := replayable(o.State, cur.CloseRequested)
		if !ok {
			return nil, &refusal{code: CodeNothingToReplay, reason: fmt.Sprintf("the order is %s: no step is pending", o.State)}, nil
		}
		reason := "replay"
		if cmd.Reason != "" {
			reason = "replay: " + cmd.Reason
		}
		ev := Event{Type: t, From: o.State, To: o.State, Reason: reason}
		if t == EventRefunding {
			r, err := e.store.pendingRefund(ctx, tx, o.ID)
			if err != nil {
				return nil, nil, err
			}
			ev.Refund = &r
		}
		ch.events = append(ch.events, ev)
		o.Flag = "" // the replay is the answer to the flag (dead letter, repeated failures)
	case VerbFlag:
		if o.Flag == cmd.Flag.Reason {
			return nil, &refusal{code: CodeDuplicate, reason: "already flagged: " + o.Flag}, nil
		}
		o.Flag = cmd.Flag.Reason
		ch.events = append(ch.events, Event{Type: EventFlagged, From: o.State, To: o.State, Reason: cmd.Flag.Reason})
	}
	return ch, nil, nil
}

func (e *Engine) decideCreate(ctx context.Context, tx *sqlx.Tx, cur *orderRow, cmd Command, now time.Time) (*change, *refusal, error) {
	c := cmd.Create
	switch {
	case c.AmountFen <= 0:
		return nil, &refusal{code: CodeInvalid, reason: "amount_fen must be positive"}, nil
	case c.Merchant == "" || c.OutTradeNo == "" || c.Description == "":
		return nil, &refusal{code: CodeInvalid, reason: "merchant, out_trade_no and description are required"}, nil
	case c.PayAPI != PayV2 && c.PayAPI != PayV3:
		return nil, &refusal{code: CodeInvalid, reason: "pay_api must be v2 or v3"}, nil
	case countSet(c.OpenID, c.OAuthCode, c.LoginCode) != 1:
		return nil, &refusal{code: CodeInvalid, reason: "exactly one of openid, oauth_code and login_code is required"}, nil
	}
	if cur != nil {
		if cur.RequestHash == c.RequestHash && cur.OutTradeNo == c.OutTradeNo {
			return nil, &refusal{code: CodeExists, reason: "the order exists already (same request)"}, nil
		}
		return nil, &refusal{code: CodeConflict, reason: "order id used by another request"}, nil
	}
	other, err := e.store.getOrderRow(ctx, tx, "merchant = ? AND out_trade_no = ?", c.Merchant, c.OutTradeNo)
	if err == nil {
		return nil, &refusal{code: CodeConflict, reason: fmt.Sprintf("out_trade_no %s belongs to order %s", c.OutTradeNo, other.ID)}, nil
	} else if err != ErrNotFound {
		return nil, nil, err
	}
	expires := c.ExpiresAt
	if expires.IsZero() {
		expires = now.Add(e.cfg.DefaultExpiry)
	}
	o := Order{ID: cmd.OrderID, Merchant: c.Merchant, OutTradeNo: c.OutTradeNo, Description: c.Description,
		AmountFen: c.AmountFen, PayAPI: c.PayAPI, Client: c.Client, OpenID: c.OpenID, OAuthCode: c.OAuthCode,
		LoginCode: c.LoginCode, ClientIP: c.ClientIP, State: Created, ExpiresAt: expires.UTC()}
	if o.Client == "" {
		o.Client = ClientJSAPI
	}
	events := []Event{{Type: EventCreated, To: Created}}
	if o.OpenID != "" {
		// The shop knows the payer already: there is nothing for the
		// authorize worker to resolve, so the order is authorized in the same
		// transaction, saving every such order a round trip through NATS.
		to, err := transition(Created, fsmAuthorize)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, Event{Type: EventAuthorized, From: Created, To: to, Reason: "openid given by the shop"})
		o.State = to
	}
	return &change{order: o, insert: true, reqHash: c.RequestHash, events: events}, nil, nil
}

func (e *Engine) decideNotify(ch *change, cmd Command) (*change, *refusal, error) {
	o, p := &ch.order, cmd.Notify
	switch {
	case p.Source != SourceNotification && p.Source != SourceQuery:
		return nil, &refusal{code: CodeInvalid, reason: "a payment is known only from a verified notification or an order query"}, nil
	case p.TransactionID == "":
		return nil, &refusal{code: CodeInvalid, reason: "notify without transaction_id"}, nil
	case o.State == Notified || o.State == Refunding || o.State == Refunded:
		return nil, &refusal{code: CodeDuplicate, reason: "already paid"}, nil
	case p.AmountFen != o.AmountFen:
		reason := fmt.Sprintf("WeChat says %d fen were paid, the order is for %d", p.AmountFen, o.AmountFen)
		return nil, &refusal{code: CodeAmountMismatch, reason: reason, flag: CodeAmountMismatch}, nil
	case o.State == Closed:
		reason := fmt.Sprintf("payment %s arrived for a closed order: refund it", p.TransactionID)
		return nil, &refusal{code: CodePaidAfterClose, reason: reason, flag: CodePaidAfterClose}, nil
	}
	to, err := transition(o.State, fsmNotify)
	if err != nil {
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("notify is not allowed in state %s", o.State)}, nil
	}
	ch.events = append(ch.events, Event{Type: EventNotified, From: o.State, To: to, Reason: paidReason(p.Source)})
	o.State, o.TransactionID, o.PaidFen = to, p.TransactionID, p.AmountFen
	if o.OpenID == "" {
		o.OpenID = p.OpenID
	}
	return ch, nil, nil
}

func (e *Engine) decideRefund(ctx context.Context, tx *sqlx.Tx, ch *change, cmd Command, now time.Time) (*change, *refusal, error) {
	o, r := &ch.order, cmd.Refund
	if r.OutRefundNo == "" || r.AmountFen <= 0 {
		return nil, &refusal{code: CodeInvalid, reason: "a refund needs out_refund_no and a positive amount"}, nil
	}
	prev, err := e.store.RefundByOutRefundNoTx(ctx, tx, r.OutRefundNo)
	switch {
	case err == nil && prev.OrderID == o.ID && prev.AmountFen == r.AmountFen:
		return nil, &refusal{code: CodeDuplicate, reason: "this refund was asked before"}, nil
	case err == nil:
		return nil, &refusal{code: CodeConflict, reason: "out_refund_no used for another refund"}, nil
	case err != ErrNotFound:
		return nil, nil, err
	}
	if o.State == Refunding {
		return nil, &refusal{code: CodeRefundInProgress, reason: "another refund of this order is in progress"}, nil
	}
	to, err := transition(o.State, fsmRefund)
	if err != nil {
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refund is not allowed in state %s", o.State)}, nil
	}
	if remaining := o.PaidFen - o.RefundedFen; r.AmountFen > remaining {
		return nil, &refusal{code: CodeOverRefund, reason: fmt.Sprintf("refund of %d fen exceeds the %d fen that remain", r.AmountFen, remaining)}, nil
	}
	ref := &Refund{OutRefundNo: r.OutRefundNo, OrderID: o.ID, AmountFen: r.AmountFen, Reason: r.Reason, State: RefundPending, CreatedAt: now, UpdatedAt: now}
	ch.newRefund = ref
	ch.events = append(ch.events, Event{Type: EventRefunding, From: o.State, To: to, Refund: ref})
	o.State = to
	return ch, nil, nil
}

func (e *Engine) decideRefunded(ctx context.Context, tx *sqlx.Tx, ch *change, cmd Command) (*change, *refusal, error) {
	o, d := &ch.order, cmd.Refunded
	ref, err := e.store.RefundByOutRefundNoTx(ctx, tx, d.OutRefundNo)
	switch {
	case err == ErrNotFound || err == nil && ref.OrderID != o.ID:
		return nil, &refusal{code: CodeUnknownOrder, reason: fmt.Sprintf("no refund %s for this order", d.OutRefundNo)}, nil
	case err != nil:
		return nil, nil, err
	case ref.State != RefundPending:
		return nil, &refusal{code: CodeDuplicate, reason: "refund already " + string(ref.State)}, nil
	}
	ref.RefundID = d.RefundID
	ch.setRefund = &ref
	if d.Succeeded {
		to, err := transition(o.State, fsmRefunded)
		if err != nil {
			return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refunded is not allowed in state %s", o.State)}, nil
		}
		ref.State = RefundSucceeded
		ch.events = append(ch.events, Event{Type: EventRefunded, From: o.State, To: to, Refund: &ref})
		o.State, o.RefundedFen = to, o.RefundedFen+ref.AmountFen
		return ch, nil, nil
	}
	back := fsmRefundFailed
	if o.RefundedFen > 0 {
		back = fsmRefundFailedResume
	}
	to, err := transition(o.State, back)
	if err != nil {
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refund result is not expected in state %s", o.State)}, nil
	}
	ref.State = RefundFailed
	ch.events = append(ch.events, Event{Type: EventRefundFailed, From: o.State, To: to, Refund: &ref, Reason: "WeChat closed the refund"})
	o.State, o.Flag = to, "refund_closed"
	return ch, nil, nil
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// replayable is the event that sets the pending step of an order in motion
// again: the one that led into its state, or for an order that waits on the
// payer, a payment query. Every worker it wakes is idempotent (same
// out_trade_no, same out_refund_no, deterministic signatures), so replaying
// any order any number of times never pays, refunds or closes twice.
func replayable(s State, closeRequested bool) (EventType, bool) {
	if closeRequested && (s == Prepaid || s == Signed) {
		return EventCloseRequested, true
	}
	switch s {
	case Created:
		return EventCreated, true
	case Authorized:
		return EventAuthorized, true
	case Prepaid:
		return EventPrepaid, true
	case Signed:
		return EventQueryRequested, true
	case Refunding:
		return EventRefunding, true
	}
	return "", false
}

// paidReason is the history's reason of a payment; Verify reads the source back from it.
func paidReason(source string) string { return "paid, source " + source }
