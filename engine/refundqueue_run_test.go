package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// refundStates writes an order's refunds as no:state in queue order.
func refundStates(t *testing.T, store *engine.Store, id engine.OrderID) string {
	t.Helper()
	rs, err := store.Refunds(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s:%s", r.OutRefundNo, r.State))
	}
	return strings.Join(out, " ")
}

// TestRefundQueueSendsOneAtATimeAGapApart: three refunds asked at once are
// all accepted; the engine sends them to the refund worker one at a time,
// each a gap after the one before settled (a failed one too), in the order
// asked. The schedule is in SQL: an engine started afresh on the same store
// (the first one died) sends the next refund when it is due, and two engines
// sending at once send it once.
func TestRefundQueueSendsOneAtATimeAGapApart(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		clk := newClock(t0)
		_, nc, js := enginetest.StartNATS(t)
		newEng := func() *engine.Engine {
			e, err := engine.New(engine.Config{Now: clk.Now, Refunds: engine.RefundConfig{Gap: time.Minute}}, store, nc, js)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		e := newEng()
		paid(t, e, "q1", 1000)
		apply := func(c engine.Command) engine.Result {
			t.Helper()
			res, err := e.Apply(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		sends := func(e *engine.Engine, want int) {
			t.Helper()
			if n, err := e.SendRefundsOnce(ctx); err != nil || n != want {
				t.Fatalf("at %s: sent %d (%v), want %d", clk.Now().Sub(t0), n, err, want)
			}
		}
		for i, no := range []string{"qr1", "qr2", "qr3"} {
			c := cmd(engine.VerbRefund, "q1", i)
			c.Refund = &engine.RefundAsk{OutRefundNo: no, AmountFen: 300}
			if res := apply(c); !res.Applied {
				t.Fatalf("refund %s: %+v", no, res)
			}
		}
		if got := refundStates(t, store, "q1"); got != "qr1:pending qr2:queued qr3:queued" {
			t.Fatalf("after three refunds: %s", got)
		}
		sends(e, 0) // qr1 is at WeChat

		clk.Add(5 * time.Second)
		done := cmd(engine.VerbRefunded, "q1", 1)
		done.Refunded = &engine.RefundDone{OutRefundNo: "qr1", Succeeded: true, Source: engine.SourceNotification}
		if res := apply(done); !res.Applied || res.Order.State != engine.Refunded {
			t.Fatalf("qr1 settles: %+v", res)
		}
		clk.Add(59 * time.Second)
		sends(e, 0) // a second short of the gap
		clk.Add(time.Second)
		sends(e, 1)
		sends(e, 0)
		if o, _ := store.Order(ctx, "q1"); o.State != engine.Refunding || refundStates(t, store, "q1") != "qr1:succeeded qr2:pending qr3:queued" {
			t.Fatalf("after the gap: %s, %s", o.State, refundStates(t, store, "q1"))
		}

		clk.Add(5 * time.Second)
		fail := cmd(engine.VerbRefunded, "q1", 2)
		fail.Refunded = &engine.RefundDone{OutRefundNo: "qr2", Source: "refund:USER_ACCOUNT_ABNORMAL", Code: "USER_ACCOUNT_ABNORMAL", Message: "退款请求失败"}
		if res := apply(fail); !res.Applied || res.Order.State != engine.Refunded {
			t.Fatalf("qr2 refused: %+v", res)
		}
		if r, _ := store.RefundByOutRefundNo(ctx, "qr2"); r.State != engine.RefundFailed || r.ErrorCode != "USER_ACCOUNT_ABNORMAL" || r.ErrorMessage != "退款请求失败" {
			t.Fatalf("qr2: %+v", r)
		}

		// The engine dies; two fresh ones find the due refund in the store.
		clk.Add(time.Minute)
		e1, e2 := newEng(), newEng()
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for _, x := range []*engine.Engine{e1, e2} {
			wg.Go(func() {
				n, err := x.SendRefundsOnce(ctx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != 1 || refundStates(t, store, "q1") != "qr1:succeeded qr2:failed qr3:pending" {
			t.Fatalf("two engines sent %d: %s", total, refundStates(t, store, "q1"))
		}
		clk.Add(5 * time.Second)
		last := cmd(engine.VerbRefunded, "q1", 3)
		last.Refunded = &engine.RefundDone{OutRefundNo: "qr3", Succeeded: true, Source: engine.SourceNotification}
		if res := apply(last); !res.Applied || res.Order.RefundedFen != 600 {
			t.Fatalf("qr3 settles: %+v", res)
		}

		// The history: each refund queued, then sent in turn, one refunding event each.
		h, err := store.History(ctx, "q1")
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, x := range h {
			switch engine.EventType(x.Type) {
			case engine.EventRefundQueued, engine.EventRefunding, engine.EventRefunded, engine.EventRefundFailed:
				seen = append(seen, x.Type)
			}
		}
		want := "refund_queued refunding refund_queued refund_queued refunded refunding refund_failed refunding refunded"
		if strings.Join(seen, " ") != want {
			t.Errorf("history %v, want %s", seen, want)
		}
		if _, err := e.Relay().RelayOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if b, err := store.Verify(ctx, time.Hour); err != nil || len(b) != 0 {
			t.Errorf("verify: %+v %v", b, err)
		}
		if b, err := store.VerifyRefundPacing(ctx, time.Minute); err != nil || len(b) != 0 {
			t.Errorf("pacing at a minute: %+v %v", b, err)
		}
		// qr1 was sent at 0 s, qr2 at 65 s, qr3 at 130 s: a gap of 66 s is broken twice.
		if b, err := store.VerifyRefundPacing(ctx, 66*time.Second); err != nil || len(b) != 2 || b[0].Rule != engine.RuleRefundGap {
			t.Errorf("pacing at 66 s: %+v %v", b, err)
		}
	})
}

// TestVerifyFindsRefundBreaches: Verify sees a refund sent while another of
// the order was at WeChat or before one asked earlier, refunds queued and
// settled above the payment, and more refunds than WeChat takes.
func TestVerifyFindsRefundBreaches(t *testing.T) {
	store, db := enginetest.OpenSQLiteWithDB(t)
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	paid(t, e, "vb1", 100)
	for i, no := range []string{"vbr1", "vbr2", "vbr3"} {
		c := cmd(engine.VerbRefund, "vb1", i)
		c.Refund = &engine.RefundAsk{OutRefundNo: no, AmountFen: 30}
		if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("refund %s: %+v %v", no, res, err)
		}
	}
	if _, err := e.Relay().RelayOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := store.Verify(ctx, time.Hour); err != nil || len(b) != 0 {
		t.Fatalf("a clean store: %+v %v", b, err)
	}
	// vbr3 "sent" while vbr1 is at WeChat and vbr2 queued; a queued refund beyond the payment.
	db.MustExec(`UPDATE refunds SET state = 'pending', sent_at = ? WHERE out_refund_no = 'vbr3'`, time.Now().UTC())
	db.MustExec(`UPDATE refunds SET amount_fen = 50 WHERE out_refund_no = 'vbr2'`)
	b, err := store.Verify(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]int{}
	for _, x := range b {
		rules[x.Rule]++
	}
	if rules[engine.RuleRefundTurn] != 2 || rules[engine.RuleRefundCommitted] != 1 {
		t.Errorf("Verify found %+v; want two refunds out of turn, one above the payment", b)
	}
	db.MustExec(`UPDATE refunds SET amount_fen = 1`)
	for i := 4; i <= engine.MaxRefundsPerOrder+1; i++ {
		db.MustExec(`INSERT INTO refunds (out_refund_no, order_id, amount_fen, state, seq, created_at, updated_at) VALUES (?, 'vb1', 1, 'failed', ?, ?, ?)`,
			fmt.Sprintf("vbx%d", i), i, time.Now().UTC(), time.Now().UTC())
	}
	b, _ = store.Verify(ctx, time.Hour)
	found := false
	for _, x := range b {
		found = found || x.Rule == engine.RuleRefundCount
	}
	if !found {
		t.Errorf("Verify missed 51 refunds of one order: %+v", b)
	}
}
