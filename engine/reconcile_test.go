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

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// asks counts the reconciler's replays of an order in its history.
func asks(t *testing.T, store *engine.Store, id engine.OrderID) int {
	t.Helper()
	h, err := store.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range h {
		if x.Applied && x.Actor == "reconciler" {
			n++
		}
	}
	return n
}

// TestReconcileBacksOff: each order is asked about after the delay, then
// after twice as long each time: a payment never past the order's expiry,
// a refund at least every RefundMaxGap. The clock moves a second per round.
func TestReconcileBacksOff(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		refund bool
		want   string // seconds after the order entered its state
	}{
		{"payment: 3 s doubling, the last at the order's expiry (60 s)", false, "[3 9 21 45 60]"},
		{"refund: 3 s doubling up to 20 s", true, "[3 9 21 41 61 81]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := enginetest.OpenSQLite(t)
			_, nc, js := enginetest.StartNATS(t)
			clock := newClock(t0)
			e, err := engine.New(engine.Config{Now: clock.Now, DefaultExpiry: time.Minute, Reconcile: engine.ReconcileConfig{
				PaymentDelay: 3 * time.Second, RefundDelay: 3 * time.Second, RefundMaxGap: 20 * time.Second}}, store, nc, js)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.refund {
				paid(t, e, "r1", 1000)
				c := cmd(engine.VerbRefund, "r1", 1)
				c.Refund = &engine.RefundAsk{OutRefundNo: "rf1", AmountFen: 100}
				if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
					t.Fatalf("refund: %+v %v", res, err)
				}
			} else {
				signedOrder(t, e, "r1", 1000)
			}
			var at []int
			for s := 1; s <= 90; s++ {
				clock.Add(time.Second)
				n, err := e.ReconcileOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					at = append(at, s)
				}
			}
			if got := fmt.Sprint(at); got != tc.want {
				t.Errorf("asked at %s s, want %s", got, tc.want)
			}
			if n := asks(t, store, "r1"); n != len(at) {
				t.Errorf("%d replays in the history, want %d", n, len(at))
			}
		})
	}
}

// TestReconcileFindsTheLostPaymentFirst: thousands of orders nobody pays
// for no longer starve a real lost payment. 300 quiet orders share rounds
// of 50; an order signed 30 s later is asked about in the round it is due.
func TestReconcileFindsTheLostPaymentFirst(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	_, nc, js := enginetest.StartNATS(t)
	clock := newClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e, err := engine.New(engine.Config{Now: clock.Now, Reconcile: engine.ReconcileConfig{PaymentDelay: 3 * time.Second, Batch: 50}}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 300 {
		signedOrder(t, e, engine.OrderID(fmt.Sprintf("anon%03d", i)), 100)
	}
	for s := 1; s <= 40; s++ {
		clock.Add(time.Second)
		if s == 30 {
			signedOrder(t, e, "real", 100)
		}
		if _, err := e.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if s == 33 && asks(t, store, "real") != 1 {
			t.Fatalf("the real order was not asked about in the round it was due (%d s after it was signed)", 3)
		}
	}
	// The quiet ones were each asked 4 times in 40 s (3, 9, 21, 45 s with
	// rounds of 50: a little later), not once per round.
	if n := asks(t, store, "anon000"); n < 3 || n > 4 {
		t.Errorf("a quiet order was asked %d times in 40 s, want 3 or 4", n)
	}
}

// TestReconcileQueryUsesItsIndex: the due orders are found through the
// partial index of scheduled orders, not by reading every order.
func TestReconcileQueryUsesItsIndex(t *testing.T) {
	_, db := enginetest.OpenSQLiteWithDB(t)
	var plan []struct {
		ID     int    `db:"id"`
		Parent int    `db:"parent"`
		NotU   int    `db:"notused"`
		Detail string `db:"detail"`
	}
	if err := db.Select(&plan, `EXPLAIN QUERY PLAN SELECT id, state, reconcile_attempts, expires_at FROM orders
		WHERE reconcile_at IS NOT NULL AND reconcile_at <= ? ORDER BY reconcile_at LIMIT ?`, time.Now().UTC(), 50); err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, p := range plan {
		details = append(details, p.Detail)
	}
	if got := strings.Join(details, "; "); !strings.Contains(got, "orders_reconcile_due") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("plan %q: want the index orders_reconcile_due, and no sort", got)
	}
}
