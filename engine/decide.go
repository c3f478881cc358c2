package engine

import (
	"fmt"
	"slices"
	"time"
)

// decide works out what cmd does, given the facts Apply loaded: a change to
// write, or a refusal. It is pure: it reads nothing but its arguments, and
// every rule about states comes from the lifecycle table (lifecycle.go). Its
// error is for a lifecycle that contradicts itself, never for a command that
// does not fit.
func decide(f facts, cmd Command, now time.Time) (*change, *refusal, error) {
	if cmd.Verb == VerbCreate {
		return decideCreate(f, cmd, now)
	}
	cur := f.order
	if shop, ok := cmd.Origin.Shop(); cur == nil || ok && cur.Shop != shop {
		// Another shop's order is no order at all to a shop.
		return nil, &refusal{code: CodeUnknownOrder, reason: fmt.Sprintf("no order %s", cmd.OrderID)}, nil
	}
	ch := &change{order: cur.Order, refundDue: cur.RefundDueAt}
	o := &ch.order
	switch cmd.Verb {
	case VerbAuthorize:
		if cmd.Authorize.OpenID == "" {
			return nil, &refusal{code: CodeInvalid, reason: "authorize without openid"}, nil
		}
		if r := ch.move(cmd.Verb, EventAuthorized); r != nil {
			return nil, r, nil
		}
		o.OpenID, o.OAuthCode, o.LoginCode = cmd.Authorize.OpenID, "", ""
	case VerbPrepaid:
		if cmd.Prepaid.PrepayID == "" {
			return nil, &refusal{code: CodeInvalid, reason: "prepaid without prepay_id"}, nil
		}
		if r := ch.move(cmd.Verb, EventPrepaid); r != nil {
			return nil, r, nil
		}
		o.PrepayID = cmd.Prepaid.PrepayID
	case VerbSigned:
		if r := ch.move(cmd.Verb, EventSigned); r != nil {
			return nil, r, nil
		}
		o.PayParams = cmd.Signed.PayParams
	case VerbNotify:
		return decideNotify(ch, cmd)
	case VerbRefund:
		return decideRefund(f, ch, cmd, now)
	case VerbRefunded:
		return decideRefunded(f, ch, cmd, now)
	case VerbSendRefund:
		return decideSendRefund(f, ch, cmd, now)
	case VerbClose:
		return decideClose(cur, ch, cmd)
	case VerbFail:
		if cmd.Fail.State != "" && cmd.Fail.State != o.State {
			return nil, &refusal{code: CodeStale, reason: fmt.Sprintf("%s failed from %s, the order is %s now", cmd.Fail.Step, cmd.Fail.State, o.State)}, nil
		}
		if r := ch.move(cmd.Verb, EventFailed); r != nil {
			return nil, r, nil
		}
		o.FailCode, o.FailReason = cmd.Fail.Code, cmd.Fail.Step+": "+cmd.Fail.Message
		ch.events[0].Reason = o.FailReason
		if flag := cmd.Fail.Flag; flag != "" && validFlag(flag) && o.raise(flag) {
			ch.events = append(ch.events, Event{Type: EventFlagged, From: o.State, To: o.State, Reason: flagReason(flag, o.FailReason)})
		}
	case VerbReplay:
		return decideReplay(f, ch, cmd)
	case VerbFlag:
		flag := cmd.Flag.Reason
		if !o.raise(flag) {
			return nil, &refusal{code: CodeDuplicate, reason: "already flagged: " + flag}, nil
		}
		ch.events = append(ch.events, Event{Type: EventFlagged, From: o.State, To: o.State, Reason: flagReason(flag, cmd.Reason)})
	case VerbResolve:
		flag := cmd.Resolve.Flag
		if !o.clearFlag(flag) {
			return nil, &refusal{code: CodeNotFlagged, reason: fmt.Sprintf("the order has no flag %s (it has %v)", flag, []string(cur.Flags))}, nil
		}
		ch.events = append(ch.events, Event{Type: EventResolved, From: o.State, To: o.State, Reason: flagReason(flag, cmd.Reason)})
	}
	return ch, nil, nil
}

// move fires fact on the change's order and records the event, or says why
// the lifecycle refuses it (invalid_state, naming the verb).
func (ch *change) move(verb Verb, fact EventType) *refusal {
	o := &ch.order
	to, err := fire(*o, fact)
	if err != nil {
		return &refusal{code: CodeInvalidState, reason: fmt.Sprintf("%s is not allowed in state %s", verb, o.State)}
	}
	ch.events = append(ch.events, Event{Type: fact, From: o.State, To: to})
	o.State = to
	return nil
}

func decideCreate(f facts, cmd Command, now time.Time) (*change, *refusal, error) {
	c := cmd.Create
	switch {
	case c.AmountFen <= 0:
		return nil, &refusal{code: CodeInvalid, reason: "amount_fen must be positive"}, nil
	case c.Merchant == "" || c.OutTradeNo == "" || c.Description == "":
		return nil, &refusal{code: CodeInvalid, reason: "merchant, out_trade_no and description are required"}, nil
	case cmd.Origin.IsShop() && !slices.Contains(f.shopMerchants, c.Merchant):
		// A shop publishing on NATS acts only for its merchants, as through the API.
		return nil, &refusal{code: CodeMerchantNotAllowed, reason: "the shop may not act for merchant " + c.Merchant}, nil
	case !ValidShopName(c.Merchant):
		return nil, &refusal{code: CodeInvalid, reason: "merchant must be 1-32 of [a-z0-9_-] (it is a token of the event subjects)"}, nil
	case c.PayAPI != PayV2 && c.PayAPI != PayV3:
		return nil, &refusal{code: CodeInvalid, reason: "pay_api must be v2 or v3"}, nil
	case countSet(c.OpenID, c.OAuthCode, c.LoginCode) != 1:
		return nil, &refusal{code: CodeInvalid, reason: "exactly one of openid, oauth_code and login_code is required"}, nil
	}
	if cur := f.order; cur != nil {
		if cur.RequestHash == c.RequestHash && cur.OutTradeNo == c.OutTradeNo && cur.Shop == c.Shop {
			return nil, &refusal{code: CodeExists, reason: "the order exists already (same request)"}, nil
		}
		return nil, &refusal{code: CodeConflict, reason: "order id used by another request"}, nil
	}
	if f.tradeOwner != "" {
		// The reason names no order: the one holding the number may be
		// another shop's, and the reason is shown to the shop that asked.
		return nil, &refusal{code: CodeConflict, reason: fmt.Sprintf("out_trade_no %s is used by another order", c.OutTradeNo)}, nil
	}
	expires := c.ExpiresAt
	if expires.IsZero() {
		expires = now.Add(f.defaultExpiry)
	}
	o := Order{ID: cmd.OrderID, Merchant: c.Merchant, Shop: c.Shop, OutTradeNo: c.OutTradeNo, Description: c.Description,
		AmountFen: c.AmountFen, PayAPI: c.PayAPI, Client: c.Client, AppID: c.AppID, OpenID: c.OpenID, OAuthCode: c.OAuthCode,
		LoginCode: c.LoginCode, ClientIP: c.ClientIP, State: Created, ExpiresAt: expires.UTC()}
	if o.Client == "" {
		o.Client = ClientJSAPI
		if o.LoginCode != "" {
			o.Client = ClientMiniProgram // a wx.login code comes from a mini-program: its payer pays there
		}
	}
	ch := &change{order: o, insert: true, reqHash: c.RequestHash, events: []Event{{Type: EventCreated, To: Created}}}
	if o.OpenID != "" {
		// The shop knows the payer already: there is nothing for the
		// authorize worker to resolve, so the order is authorized in the same
		// transaction, saving every such order a round trip through NATS.
		if r := ch.move(VerbAuthorize, EventAuthorized); r != nil {
			return nil, nil, fmt.Errorf("engine: the lifecycle does not authorize a created order: %s", r.reason)
		}
		ch.events[1].Reason = "openid given by the shop"
	}
	return ch, nil, nil
}

func decideNotify(ch *change, cmd Command) (*change, *refusal, error) {
	o, p := &ch.order, cmd.Notify
	switch {
	case p.Source != SourceNotification && p.Source != SourceQuery:
		return nil, &refusal{code: CodeInvalid, reason: "a payment is known only from a verified notification or an order query"}, nil
	case p.TransactionID == "":
		return nil, &refusal{code: CodeInvalid, reason: "notify without transaction_id"}, nil
	case rule(o.State).paid:
		return nil, &refusal{code: CodeDuplicate, reason: "already paid"}, nil
	case p.AmountFen != o.AmountFen:
		reason := fmt.Sprintf("WeChat says %d fen were paid, the order is for %d", p.AmountFen, o.AmountFen)
		return nil, &refusal{code: CodeAmountMismatch, reason: reason, flag: FlagAmountMismatch}, nil
	case o.State == Closed:
		reason := fmt.Sprintf("payment %s arrived for a closed order: refund it", p.TransactionID)
		return nil, &refusal{code: CodePaidAfterClose, reason: reason, flag: FlagPaidAfterClose}, nil
	}
	if r := ch.move(cmd.Verb, EventNotified); r != nil {
		return nil, r, nil
	}
	ch.events[0].Reason = paidReason(p.Source)
	o.TransactionID, o.PaidFen = p.TransactionID, p.AmountFen
	ch.paidAt = orderPaidAt(p, cmd.At)
	if o.OpenID == "" {
		o.OpenID = p.OpenID
	}
	return ch, nil, nil
}

// decideRefund queues a refund: refund_queued, the order staying where it
// is. Queued, pending and succeeded refunds together never exceed what was
// paid, so each refund is refused at once (over_refund) rather than at WeChat.
// When nothing of the order is at WeChat and the gap since the last refund
// has passed, the refund is sent in the same transaction (refunding).
func decideRefund(f facts, ch *change, cmd Command, now time.Time) (*change, *refusal, error) {
	o, r := &ch.order, cmd.Refund
	if r.OutRefundNo == "" || r.AmountFen <= 0 {
		return nil, &refusal{code: CodeInvalid, reason: "a refund needs out_refund_no and a positive amount"}, nil
	}
	if prev := f.refund; prev != nil {
		if prev.OrderID == o.ID && prev.AmountFen == r.AmountFen {
			return nil, &refusal{code: CodeDuplicate, reason: fmt.Sprintf("this refund was asked before (it is %s)", prev.State)}, nil
		}
		return nil, &refusal{code: CodeConflict, reason: "out_refund_no used for another refund"}, nil
	}
	if !rule(o.State).paid {
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refund is not allowed in state %s", o.State)}, nil
	}
	if len(f.refunds) >= MaxRefundsPerOrder {
		return nil, &refusal{code: CodeTooManyRefunds, reason: fmt.Sprintf("the order has %d refunds: WeChat takes at most %d of one order", len(f.refunds), MaxRefundsPerOrder)}, nil
	}
	if committed := committedFen(f.refunds); r.AmountFen > o.PaidFen-committed {
		return nil, &refusal{code: CodeOverRefund, reason: fmt.Sprintf("refund of %d fen exceeds the %d fen that remain (%d paid, %d refunded, at WeChat or queued)",
			r.AmountFen, o.PaidFen-committed, o.PaidFen, committed)}, nil
	}
	refunds := append(slices.Clone(f.refunds), Refund{OutRefundNo: r.OutRefundNo, OrderID: o.ID, AmountFen: r.AmountFen, Reason: r.Reason,
		State: RefundQueued, Seq: lastSeq(f.refunds) + 1, CreatedAt: now, UpdatedAt: now})
	queued := refunds[len(refunds)-1]
	ch.events = append(ch.events, Event{Type: EventRefundQueued, From: o.State, To: o.State, Refund: &queued})
	if _, err := ch.sendNext(refunds, f.refundGap, now); err != nil {
		return nil, nil, err
	}
	ch.newRefund = &refunds[len(refunds)-1] // queued, or sent at once
	return ch, nil, nil
}

// decideRefunded records WeChat's final word on the refund at WeChat, and
// sends the next queued one if it is due already (it is not, with a gap).
func decideRefunded(f facts, ch *change, cmd Command, now time.Time) (*change, *refusal, error) {
	o, d := &ch.order, cmd.Refunded
	switch {
	case f.refund == nil || f.refund.OrderID != o.ID:
		return nil, &refusal{code: CodeUnknownOrder, reason: fmt.Sprintf("no refund %s for this order", d.OutRefundNo)}, nil
	case f.refund.State == RefundQueued:
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refund %s is queued: WeChat has not been asked for it", d.OutRefundNo)}, nil
	case f.refund.State != RefundPending:
		return nil, &refusal{code: CodeDuplicate, reason: "refund already " + string(f.refund.State)}, nil
	}
	ref := *f.refund
	ref.RefundID, ref.SettledAt, ref.UpdatedAt = d.RefundID, &now, now
	if d.Succeeded {
		if r := ch.move(cmd.Verb, EventRefunded); r != nil {
			return nil, r, nil
		}
		ref.State = RefundSucceeded
		o.RefundedFen += ref.AmountFen
	} else {
		// Back to the paid state the order had: the table's guards pick it.
		if r := ch.move(cmd.Verb, EventRefundFailed); r != nil {
			return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("refund result is not expected in state %s", o.State)}, nil
		}
		ref.State, ref.ErrorCode, ref.ErrorMessage = RefundFailed, d.Code, d.Message
		if ref.ErrorMessage == "" {
			ref.ErrorMessage = "WeChat closed the refund"
		}
		ch.events[0].Reason = fmt.Sprintf("WeChat refused or closed the refund: %s %s", ref.ErrorCode, ref.ErrorMessage)
		o.raise(FlagRefundClosed)
	}
	ch.events[0].Refund = &ref
	ch.setRefunds = append(ch.setRefunds, ref)
	refunds := slices.Clone(f.refunds)
	for i := range refunds {
		if refunds[i].OutRefundNo == ref.OutRefundNo {
			refunds[i] = ref
		}
	}
	i, err := ch.sendNext(refunds, f.refundGap, now)
	if err != nil {
		return nil, nil, err
	}
	if i >= 0 {
		ch.setRefunds = append(ch.setRefunds, refunds[i])
	}
	return ch, nil, nil
}

// decideSendRefund is the refund queue's send (refundqueue.go): the order's
// next queued refund goes to the refund worker, if it is the one the engine
// meant, nothing of the order is at WeChat and its gap has passed.
func decideSendRefund(f facts, ch *change, cmd Command, now time.Time) (*change, *refusal, error) {
	if next := nextQueued(f.refunds); next < 0 || f.refunds[next].OutRefundNo != cmd.Send.OutRefundNo {
		return nil, &refusal{code: CodeStale, reason: fmt.Sprintf("refund %s is not the order's next queued refund", cmd.Send.OutRefundNo)}, nil
	}
	refunds := slices.Clone(f.refunds)
	i, err := ch.sendNext(refunds, f.refundGap, now)
	switch {
	case err != nil:
		return nil, nil, err
	case i < 0 && ch.refundDue != nil:
		return nil, &refusal{code: CodeStale, reason: fmt.Sprintf("refund %s is not due before %s", cmd.Send.OutRefundNo, ch.refundDue.Format(time.RFC3339Nano))}, nil
	case i < 0:
		return nil, &refusal{code: CodeStale, reason: "another refund of the order is at WeChat"}, nil
	}
	ch.setRefunds = append(ch.setRefunds, refunds[i])
	return ch, nil, nil
}

func decideClose(cur *orderRow, ch *change, cmd Command) (*change, *refusal, error) {
	o := &ch.order
	if !can(o.State, EventClosed) {
		return nil, &refusal{code: CodeInvalidState, reason: fmt.Sprintf("close is not allowed in state %s", o.State)}, nil
	}
	if o.PrepayID != "" && (cmd.Close == nil || !cmd.Close.Confirmed) {
		// The payer may hold the pay parameters: WeChat must close first.
		if cur.CloseRequested {
			return nil, &refusal{code: CodeCloseRequested, reason: "closing is already under way"}, nil
		}
		ch.closeReq = true
		ch.events = append(ch.events, Event{Type: EventCloseRequested, From: o.State, To: o.State})
		return ch, nil, nil
	}
	if r := ch.move(cmd.Verb, EventClosed); r != nil {
		return nil, r, nil
	}
	return ch, nil, nil
}

func decideReplay(f facts, ch *change, cmd Command) (*change, *refusal, error) {
	o := &ch.order
	t, ok := replayable(o.State, f.order.CloseRequested)
	if !ok {
		return nil, &refusal{code: CodeNothingToReplay, reason: fmt.Sprintf("the order is %s: no step is pending", o.State)}, nil
	}
	reason := "replay"
	if cmd.Reason != "" {
		reason = "replay: " + cmd.Reason
	}
	ev := Event{Type: t, From: o.State, To: o.State, Reason: reason}
	if t == EventRefunding {
		if f.inFlight == nil {
			return nil, nil, fmt.Errorf("engine: order %s is refunding without a pending refund: %w", o.ID, ErrNotFound)
		}
		r := *f.inFlight
		ev.Refund = &r
	}
	ch.events = append(ch.events, ev)
	// The replay answers the operational flags (a dead letter: the step runs
	// again); an alert stays until a person resolves it.
	o.clearOperational()
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

// paidReason is the history's reason of a payment; Verify reads the source back from it.
func paidReason(source string) string { return "paid, source " + source }
