package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/schema"
)

// TestMigrationKeepsFlagsAndSchedulesWaitingOrders: a database of before
// migration 00004 keeps each order's flag (now a set of one), and its orders
// that wait on WeChat are due for the reconciler at once.
func TestMigrationKeepsFlagsAndSchedulesWaitingOrders(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wxflow.db")
	db, err := sqlx.Open(string(engine.SQLite), "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.DB, schema.SQLite())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-time.Hour)
	for i, row := range []struct {
		state engine.State
		flag  string
	}{{engine.Signed, "dead_letter:query"}, {engine.Notified, "amount_mismatch"}, {engine.Refunding, ""}, {engine.Closed, ""}, {engine.Refunding, ""}} {
		db.MustExec(`INSERT INTO orders (id, merchant, out_trade_no, description, amount_fen, pay_api, client, state, expires_at,
			created_at, updated_at, version, flag, paid_fen) VALUES (?, 'm', ?, 'd', 100, 'v2', 'jsapi', ?, ?, ?, ?, 1, ?, 100)`,
			fmt.Sprintf("m%d", i), fmt.Sprintf("OTN%d", i), row.state, old.Add(2*time.Hour), old, old.Add(time.Duration(-i)*time.Second), row.flag)
	}
	// m2 waits for its refund; m4, the longest due, is broken (refunding
	// without a refund): the reconciler passes it by.
	db.MustExec(`INSERT INTO refunds (out_refund_no, order_id, amount_fen, state, created_at, updated_at) VALUES ('r2', 'm2', 100, 'pending', ?, ?)`, old, old)
	db.Close()

	store, err := engine.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for id, want := range map[engine.OrderID]string{"m0": "[dead_letter:query]", "m1": "[amount_mismatch]", "m2": "[]"} {
		o, err := store.Order(ctx, id)
		if err != nil || fmt.Sprint(o.Flags) != want || o.Flag != o.Flags.Primary() {
			t.Errorf("order %s: flags %v, flag %q (%v); want %s", id, o.Flags, o.Flag, err, want)
		}
	}
	_, nc, js := enginetest.StartNATS(t)
	e, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.ReconcileOnce(ctx); err != nil || n != 3 {
		t.Fatalf("reconciled %d (%v), want the signed, the refunding and the broken order", n, err)
	}
	for id, want := range map[engine.OrderID]int{"m0": 1, "m2": 1, "m4": 0} {
		if got := asks(t, store, id); got != want {
			t.Errorf("order %s: %d replays, want %d", id, got, want)
		}
	}
}

// TestMigrationNumbersRefundsInTheirQueue: refunds of before migration 00006
// get their place in the order's queue (the order they were asked in) and
// were sent when asked; the settled ones settled at their last update.
func TestMigrationNumbersRefundsInTheirQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wxflow.db")
	db, err := sqlx.Open(string(engine.SQLite), "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.DB, schema.SQLite())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	db.MustExec(`INSERT INTO orders (id, merchant, out_trade_no, description, amount_fen, pay_api, client, state, expires_at,
		created_at, updated_at, version, paid_fen, refunded_fen) VALUES ('mq', 'm', 'OTNQ', 'd', 100, 'v2', 'jsapi', 'refunding', ?, ?, ?, 8, 100, 30)`, t0, t0, t0)
	for i, r := range []struct {
		no, state string
		fen       int64
	}{{"rb", "succeeded", 30}, {"ra", "failed", 10}, {"rc", "pending", 20}} {
		at := t0.Add(time.Duration(i) * time.Minute)
		db.MustExec(`INSERT INTO refunds (out_refund_no, order_id, amount_fen, state, created_at, updated_at) VALUES (?, 'mq', ?, ?, ?, ?)`,
			r.no, r.fen, r.state, at, at.Add(10*time.Second))
	}
	db.Close()
	store, err := engine.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rs, err := store.Refunds(ctx, "mq")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		settled := r.SettledAt != nil && r.SettledAt.Equal(r.UpdatedAt)
		got = append(got, fmt.Sprintf("%d:%s:%s sent=%v settled=%v", r.Seq, r.OutRefundNo, r.State, r.SentAt != nil && r.SentAt.Equal(r.CreatedAt), settled))
	}
	want := "[1:rb:succeeded sent=true settled=true 2:ra:failed sent=true settled=true 3:rc:pending sent=true settled=false]"
	if fmt.Sprint(got) != want {
		t.Errorf("refunds after the migration: %v, want %s", got, want)
	}
	// (The order has no history here: Verify's other rules have nothing to go on.)
	b, err := store.Verify(ctx, time.Hour)
	for _, x := range b {
		switch x.Rule {
		case engine.RuleRefundTurn, engine.RuleRefundCommitted, engine.RuleRefundCount, engine.RuleRefundSum, engine.RuleOverRefund:
			t.Errorf("verify after the migration: %+v", x)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
