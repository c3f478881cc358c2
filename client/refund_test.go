package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/client"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// paidOrder creates an order through c and pays it at the simulator.
func paidOrder(t *testing.T, d *deployment, c *client.Client, amount int64) client.Order {
	t.Helper()
	res, err := c.CreateOrder(context.Background(), client.CreateOrderRequest{AmountFen: amount, Description: "to refund", PayAPI: client.PayV3,
		Payer: client.PayerOpenID("oRefund"), IdempotencyKey: key(t) + fmt.Sprint(amount)})
	if err != nil {
		t.Fatal(err)
	}
	v := waitOrder(t, c, res.Order.ID, "signed", inState(client.StateSigned))
	d.pay(t, v.Order.PrepayID)
	return waitOrder(t, c, res.Order.ID, "paid", client.Order.Paid).Order
}

// TestRefunds: refunds asked back to back over HTTP are accepted at once
// (the first pending, the others queued), replayed by their number,
// refused beyond the payment or with another amount, and all settle; the
// refund routes and the order's view agree.
func TestRefunds(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t)
	ctx := context.Background()
	o := paidOrder(t, d, c, 1990)
	no := func(i int) string { return fmt.Sprintf("rf-%s-%d", strings.TrimPrefix(o.ID, "o_")[:12], i) }

	first, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 500, Reason: "one cup missing", OutRefundNo: no(1)})
	if err != nil {
		t.Fatal(err)
	}
	r := first.Refund
	if first.Pending || first.Replayed || r.OrderID != o.ID || r.OutRefundNo != no(1) || r.AmountFen != 500 || r.Reason != "one cup missing" ||
		r.Status != client.RefundPending && r.Status != client.RefundSucceeded || r.CreatedAt.IsZero() {
		t.Fatalf("the first refund: %+v", first)
	}
	second, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 300, OutRefundNo: no(2)})
	if err != nil || second.Refund.Status != client.RefundQueued || second.Refund.Reason != "" {
		t.Fatalf("the second refund, back to back: %+v %v (want queued)", second, err)
	}
	third, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 200, IdempotencyKey: key(t)})
	if err != nil || third.Refund.Status != client.RefundQueued || !strings.HasPrefix(third.Refund.OutRefundNo, "wxr") {
		t.Fatalf("a refund named by its Idempotency-Key: %+v %v", third, err)
	}
	again, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 300, OutRefundNo: no(2)})
	if err != nil || !again.Replayed || again.Refund.OutRefundNo != no(2) {
		t.Fatalf("the same refund again: %+v %v", again, err)
	}
	if _, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 301, OutRefundNo: no(2)}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("its number with another amount: %v, want ErrConflict", err)
	}
	if _, err := c.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 1000, OutRefundNo: no(4)}); !errors.Is(err, client.ErrOverRefund) {
		t.Fatalf("more than remains (990): %v, want ErrOverRefund", err)
	}

	list, err := c.Refunds(ctx, o.ID)
	if err != nil || len(list) != 3 || list[0].OutRefundNo != no(1) || list[1].OutRefundNo != no(2) || list[2].OutRefundNo != third.Refund.OutRefundNo {
		t.Fatalf("the order's refunds, in the order asked: %+v %v", list, err)
	}
	// One at a time, a minute apart on the simulator's clock: all succeed.
	for _, n := range []string{no(1), no(2), third.Refund.OutRefundNo} {
		enginetest.WaitFor(t, 60*time.Second, func() error {
			r, err := c.GetRefund(ctx, o.ID, n)
			switch {
			case err != nil:
				return err
			case r.Status != client.RefundSucceeded:
				return fmt.Errorf("refund %s is %s", n, r.Status)
			case r.RefundID == "" || !r.Settled():
				return fmt.Errorf("refund %s: %+v", n, r)
			}
			return nil
		})
	}
	v := waitOrder(t, c, o.ID, "refunded", func(o client.Order) bool { return o.RefundedFen == 1000 })
	if v.Order.State != client.StateRefunded || v.Order.Final() || len(v.Refunds) != 3 {
		t.Fatalf("the order after its refunds: %+v, %d refunds", v.Order, len(v.Refunds))
	}
	for i, r := range v.Refunds {
		if r.Status != client.RefundSucceeded || r.Seq != i+1 || r.SentAt == nil || r.SettledAt == nil {
			t.Errorf("the order's view of refund %d: %+v", i+1, r)
		}
	}
	if _, err := c.GetRefund(ctx, o.ID, "rf-nosuch-1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("no such refund: %v, want ErrNotFound", err)
	}
	if _, err := c.GetRefund(ctx, o.ID, "../x"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a number that is none: %v, want a local ErrNotFound", err)
	}
	if _, err := d.other(t).Refunds(ctx, o.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another shop's order's refunds: %v, want ErrNotFound", err)
	}
}

// TestNATSRefunds: a refund over NATS is the same refund, its repeat
// refunds nothing more, and the shop's feed tells its story.
func TestNATSRefunds(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t)
	ctx := context.Background()
	n, err := client.NewNATS(d.natsConn(t, "demo"), client.NATSConfig{Shop: "demo", Merchants: []string{d.merchant}})
	if err != nil {
		t.Fatal(err)
	}
	o := paidOrder(t, d, c, 800)
	w, err := n.Watch(ctx, client.WatchFilter{OrderID: o.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	req := client.RefundRequest{AmountFen: 800, Reason: "all of it", IdempotencyKey: key(t)}
	res, err := n.Refund(ctx, o.ID, req)
	if err != nil || res.Pending || res.Refund.OrderID != o.ID || res.Refund.AmountFen != 800 || !strings.HasPrefix(res.Refund.OutRefundNo, "wxr") ||
		res.Refund.Status != client.RefundPending && res.Refund.Status != client.RefundQueued {
		t.Fatalf("refund over NATS: %+v %v", res, err)
	}
	again, err := n.Refund(ctx, o.ID, req)
	if err != nil || !again.Replayed || again.Refund.OutRefundNo != res.Refund.OutRefundNo {
		t.Fatalf("the same refund again: %+v %v", again, err)
	}
	if _, err := n.Refund(ctx, o.ID, client.RefundRequest{AmountFen: 1, OutRefundNo: "rf-more-1"}); !errors.Is(err, client.ErrOverRefund) {
		t.Fatalf("a refund beyond the payment: %v, want ErrOverRefund", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var types []client.EventType
	for {
		e, err := w.Next(wctx)
		if err != nil {
			t.Fatalf("the refund never settled: events %v (%v)", types, err)
		}
		types = append(types, e.Type)
		if e.Refund != nil && e.Refund.OutRefundNo != res.Refund.OutRefundNo {
			t.Fatalf("event %s about refund %s", e.Type, e.Refund.OutRefundNo)
		}
		if e.Type == client.EventRefunded {
			if e.Refund == nil || e.Refund.Status != client.RefundSucceeded || e.Order.RefundedFen != 800 || !e.Order.Final() {
				t.Fatalf("refunded: %+v", e)
			}
			break
		}
	}
	v, err := c.GetOrder(ctx, o.ID)
	if err != nil || len(v.Refunds) != 1 || v.Refunds[0].Status != client.RefundSucceeded {
		t.Fatalf("the order's view: %+v %v", v.Refunds, err)
	}
}
