package workers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
)

// Deps is what the workers need of the world.
type Deps struct {
	Payments *pay.Payments
	MP       *mp.Client
	// Codes remembers the openid each single-use code gave (engine.CodeBucket),
	// so a redelivered or replayed authorize never spends a code twice.
	Codes  jetstream.KeyValue
	Logger *slog.Logger
	Now    func() time.Time
}

// All returns every worker, in lifecycle order: an explicit list, no registration.
func All(d Deps) []Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	return []Handler{Authorize{d}, Prepay{d}, Sign{d}, Query{d}, Close{d}, Refund{d}}
}

// Authorize turns what the shop gave into the payer's openid: as is, or by
// exchanging the single-use OAuth code or wx.login code once.
type Authorize struct{ Deps }

// Name is the durable consumer name.
func (Authorize) Name() string { return "authorize" }

// Event is the event the worker acts on.
func (Authorize) Event() engine.EventType { return engine.EventCreated }

// Handle resolves the openid. The answer of a code is kept before the result
// is published, so a redelivery reuses it; an invalid or used code is final:
// the shop must start OAuth again.
func (w Authorize) Handle(ctx context.Context, ev engine.Event) (*engine.Command, error) {
	o := ev.Order
	if o.State != engine.Created {
		return nil, nil // created with an openid: the engine authorized it at once
	}
	openid := o.OpenID
	if openid == "" && w.Codes != nil {
		e, err := w.Codes.Get(ctx, string(o.ID))
		switch {
		case err == nil:
			openid = string(e.Value()) // the code was exchanged before: reuse its answer
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			// Unsure whether the code was spent: asking WeChat could meet 40163.
			return nil, &wechat.Error{API: "codes", Retryable: true, Err: err}
		}
	}
	switch {
	case openid != "":
	case o.OAuthCode != "":
		t, err := w.MP.ExchangeCode(ctx, o.OAuthCode)
		noteCall(ctx, "oauth code", "ok", err)
		if err != nil {
			return nil, err
		}
		openid = t.OpenID
	case o.LoginCode != "":
		s, err := w.MP.JSCode2Session(ctx, o.LoginCode)
		noteCall(ctx, "login code", "ok", err)
		if err != nil {
			return nil, err
		}
		openid = s.OpenID
	default:
		return nil, errors.New("order has no openid, oauth_code or login_code")
	}
	if o.OpenID == "" && w.Codes != nil {
		if err := keepCodeAnswer(ctx, w.Codes, string(o.ID), openid); err != nil {
			return nil, &wechat.Error{API: "codes", Retryable: true, Err: err}
		}
	}
	c := resultCommand(w.Name(), engine.VerbAuthorize, ev)
	c.Authorize = &engine.Authorize{OpenID: openid}
	return c, nil
}

// keepCodeAnswer stores a code's openid, trying for up to 30 s: the code is
// spent, so this answer is the only one there will be, and a NATS node that
// is down or a client reconnecting must not make the worker throw it away
// (a redelivery would meet 40163 and the order would fail).
func keepCodeAnswer(ctx context.Context, codes jetstream.KeyValue, key, openid string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := codes.Put(pctx, key, []byte(openid))
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("keep the answer of order %s's code: %w", key, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Prepay asks WeChat for a prepay_id (统一下单), idempotent by out_trade_no.
type Prepay struct{ Deps }

// Name is the durable consumer name.
func (Prepay) Name() string { return "prepay" }

// Event is the event the worker acts on.
func (Prepay) Event() engine.EventType { return engine.EventAuthorized }

// Handle calls the unified order of the order's API generation.
func (w Prepay) Handle(ctx context.Context, ev engine.Event) (*engine.Command, error) {
	o := ev.Order
	// TODO(lead): AppID: o.AppID, the app the payer pays in (empty = the merchant's AppID).
	id, err := w.Payments.Prepay(ctx, pay.PrepayRequest{API: string(o.PayAPI), OutTradeNo: o.OutTradeNo,
		Description: o.Description, AmountFen: o.AmountFen, OpenID: o.OpenID, ClientIP: o.ClientIP, ExpiresAt: o.ExpiresAt})
	noteCall(ctx, "prepay", "ok", err)
	if errors.Is(err, wechat.ErrOrderPaid) {
		return paidByQuery(ctx, w.Deps, w.Name(), ev) // a replayed prepay after the payer paid
	}
	if err != nil {
		return nil, err
	}
	c := resultCommand(w.Name(), engine.VerbPrepaid, ev)
	c.Prepaid = &engine.PrepaidInfo{PrepayID: id}
	return c, nil
}

// Sign builds the signed front-end pay parameters; no WeChat call.
type Sign struct{ Deps }

// Name is the durable consumer name.
func (Sign) Name() string { return "sign" }

// Event is the event the worker acts on.
func (Sign) Event() engine.EventType { return engine.EventPrepaid }

// Handle signs for every front end at once.
func (w Sign) Handle(_ context.Context, ev engine.Event) (*engine.Command, error) {
	// TODO(lead): ev.Order.AppID, the app the payer pays in ("" = the merchant's AppID).
	f, err := w.Payments.PayParams(string(ev.Order.PayAPI), "", ev.Order.PrepayID, w.Now())
	if err != nil {
		return nil, err
	}
	c := resultCommand(w.Name(), engine.VerbSigned, ev)
	c.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(f.JSON())}
	return c, nil
}

// Close closes an order at WeChat before wxflow calls it closed: the payer may
// hold its pay parameters. A payment that won the race is recorded instead.
type Close struct{ Deps }

// Name is the durable consumer name.
func (Close) Name() string { return "close" }

// Event is the event the worker acts on.
func (Close) Event() engine.EventType { return engine.EventCloseRequested }

// Handle calls closeorder; ORDERPAID → query → notify (source query).
func (w Close) Handle(ctx context.Context, ev engine.Event) (*engine.Command, error) {
	o := ev.Order
	err := w.Payments.Close(ctx, string(o.PayAPI), o.OutTradeNo)
	noteCall(ctx, "close", "ok", err)
	switch {
	case err == nil, errors.Is(err, wechat.ErrOrderClosed), errors.Is(err, wechat.ErrOrderNotExist):
		c := resultCommand(w.Name(), engine.VerbClose, ev)
		c.Close = &engine.CloseAsk{Confirmed: true}
		return c, nil
	case errors.Is(err, wechat.ErrOrderPaid):
		return paidByQuery(ctx, w.Deps, w.Name(), ev)
	}
	return nil, err
}

// paidByQuery turns WeChat's "already paid" into the notify command, from an
// order query: the only other source, besides a notification, of a payment.
func paidByQuery(ctx context.Context, d Deps, worker string, ev engine.Event) (*engine.Command, error) {
	o := ev.Order
	t, err := d.Payments.Query(ctx, string(o.PayAPI), o.OutTradeNo)
	noteCall(ctx, "query", t.RawState, err)
	if err != nil {
		return nil, err
	}
	if !t.State.Paid() {
		return nil, &wechat.Error{API: "query", Code: t.RawState, Message: "WeChat said paid, its query disagrees", Retryable: true}
	}
	c := resultCommand(worker, engine.VerbNotify, ev)
	c.Notify = &engine.Payment{TransactionID: t.TransactionID, AmountFen: t.AmountFen, OpenID: t.OpenID,
		PaidAt: t.PaidAt, Source: engine.SourceQuery}
	return c, nil
}

// Refund asks WeChat for a refund, with the refund's own out_refund_no on
// every retry; the refund notification (or a query) settles it.
type Refund struct{ Deps }

// Name is the durable consumer name.
func (Refund) Name() string { return "refund" }

// Event is the event the worker acts on.
func (Refund) Event() engine.EventType { return engine.EventRefunding }

// Handle calls the refund API. A final refusal fails the refund, with
// WeChat's code and message. The engine sends one refund of an order at a
// time, a minute apart (WeChat's rule): a FREQUENCY_LIMITED despite that is
// retried like any retryable answer.
func (w Refund) Handle(ctx context.Context, ev engine.Event) (*engine.Command, error) {
	if ev.Refund == nil {
		return nil, fmt.Errorf("refunding event %s without its refund", ev.ID)
	}
	o := ev.Order
	api, no := string(o.PayAPI), ev.Refund.OutRefundNo
	asked, err := w.Payments.Refund(ctx, api, pay.RefundRequest{OutTradeNo: o.OutTradeNo,
		OutRefundNo: no, TotalFen: o.PaidFen, RefundFen: ev.Refund.AmountFen, Reason: ev.Refund.Reason})
	noteCall(ctx, "refund", cmp.Or(asked.RawState, "accepted"), err)
	if wechat.IsRetryable(err) {
		return nil, err
	}
	c := resultCommand(w.Name(), engine.VerbRefunded, ev)
	if err != nil {
		// Refused for good: the refund fails with WeChat's code and message,
		// and the order's next queued refund may go.
		code, msg := wechat.CodeOf(err), err.Error()
		if we, ok := errors.AsType[*wechat.Error](err); ok && we.Message != "" {
			msg = we.Message
		}
		c.Refunded = &engine.RefundDone{OutRefundNo: no, Succeeded: false, Source: "refund:" + code, Code: code, Message: msg}
		c.Reason = err.Error()
		return c, nil
	}
	// Accepted (or accepted before: the same out_refund_no). Settled already?
	// On a replay this is what finds a refund whose notification was lost.
	st, err := w.Payments.QueryRefund(ctx, api, no)
	noteCall(ctx, "refund query", st.RawState, err)
	switch {
	case wechat.IsRetryable(err):
		// Ask again soon (the refund call repeats harmlessly by out_refund_no)
		// rather than wait minutes for the reconciler if the notification is lost.
		return nil, err
	case err != nil || !st.State.Settled():
		return nil, nil // processing, abnormal or unknown: the notification or the reconciler will tell
	}
	c.Refunded = &engine.RefundDone{OutRefundNo: no, RefundID: st.RefundID, Succeeded: st.State == pay.RefundSuccess, Source: engine.SourceQuery}
	if !c.Refunded.Succeeded {
		c.Refunded.Code = st.RawState // CLOSED, REFUNDCLOSE: WeChat gives no message
	}
	return c, nil
}

// Query asks WeChat about a payment the notification of which has not come
// (the reconciler's and the admin's replay of a signed order).
type Query struct{ Deps }

// Name is the durable consumer name.
func (Query) Name() string { return "query" }

// Event is the event the worker acts on.
func (Query) Event() engine.EventType { return engine.EventQueryRequested }

// Handle queries the order: paid → notify with source query; closed at
// WeChat → close confirmed; still unpaid → nothing (expiry closes it).
func (w Query) Handle(ctx context.Context, ev engine.Event) (*engine.Command, error) {
	o := ev.Order
	t, err := w.Payments.Query(ctx, string(o.PayAPI), o.OutTradeNo)
	noteCall(ctx, "query", t.RawState, err)
	if errors.Is(err, wechat.ErrOrderNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch {
	case t.State.Paid():
		return paidByQuery(ctx, w.Deps, w.Name(), ev)
	case t.State.Closed():
		c := resultCommand(w.Name(), engine.VerbClose, ev)
		c.Close = &engine.CloseAsk{Confirmed: true}
		return c, nil
	}
	return nil, nil
}
