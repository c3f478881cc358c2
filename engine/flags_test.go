package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestFlagKinds: the alerts (money may be wrong) and the operational flags
// are told apart in one table; a flag the table does not know is an alert.
func TestFlagKinds(t *testing.T) {
	tests := []struct {
		flag string
		want engine.FlagKind
	}{
		{engine.FlagAmountMismatch, engine.FlagAlert},
		{engine.FlagPaidAfterClose, engine.FlagAlert},
		{engine.FlagRefundClosed, engine.FlagAlert},
		{engine.FlagRefundAbnormal, engine.FlagAlert},
		{engine.FlagPaymentFailed, engine.FlagOperational},
		{"dead_letter:prepay", engine.FlagOperational},
		{"something_new", engine.FlagAlert},
	}
	for _, tc := range tests {
		if got := engine.KindOf(tc.flag); got != tc.want {
			t.Errorf("KindOf(%s) = %s, want %s", tc.flag, got, tc.want)
		}
	}
	primary := []struct {
		flags engine.Flags
		want  string
	}{
		{nil, ""},
		{engine.Flags{"dead_letter:query"}, "dead_letter:query"},
		{engine.Flags{"dead_letter:query", "refund_closed", "amount_mismatch"}, "refund_closed"},
	}
	for _, tc := range primary {
		if got := tc.flags.Primary(); got != tc.want {
			t.Errorf("%v.Primary() = %q, want %q", tc.flags, got, tc.want)
		}
	}
}

// signedOrder drives an order to signed (a v2 order with a prepay_id).
func signedOrder(t *testing.T, e *engine.Engine, id engine.OrderID, amount int64) {
	t.Helper()
	applyAll(t, e, lifecycle(id, amount)[:4])
}

func flagCmd(id engine.OrderID, n int, flag string) engine.Command {
	c := cmd(engine.VerbFlag, id, n)
	c.Flag = &engine.FlagInfo{Reason: flag}
	return c
}

func resolveCmd(id engine.OrderID, n int, flag, actor, reason string) engine.Command {
	c := cmd(engine.VerbResolve, id, n)
	c.Resolve, c.Actor, c.Reason = &engine.Resolution{Flag: flag}, actor, reason
	return c
}

// TestFlagsAreASet: a replay clears the operational flags and keeps the
// alerts; a new flag never erases another; only a person's resolution
// clears an alert, one flag at a time, recorded with who and why.
func TestFlagsAreASet(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		e, _, _ := newEngine(t, store)
		ctx := context.Background()
		signedOrder(t, e, "f1", 500)
		mismatch := cmd(engine.VerbNotify, "f1", 1)
		mismatch.Notify = &engine.Payment{TransactionID: "t1", AmountFen: 499, Source: engine.SourceNotification}
		replay := func(n int) engine.Command { return cmd(engine.VerbReplay, "f1", n) }
		tests := []struct {
			name      string
			cmd       engine.Command
			wantCode  engine.RefusalCode // "" when applied
			wantFlags string
		}{
			{"an amount mismatch raises an alert", mismatch, engine.CodeAmountMismatch, "[amount_mismatch]"},
			{"a dead letter joins it", flagCmd("f1", 2, "dead_letter:query"), "", "[amount_mismatch dead_letter:query]"},
			{"the same flag again", flagCmd("f1", 3, "dead_letter:query"), engine.CodeDuplicate, "[amount_mismatch dead_letter:query]"},
			{"a replay clears the dead letter, keeps the alert", replay(4), "", "[amount_mismatch]"},
			{"a second alert keeps the first", flagCmd("f1", 5, engine.FlagRefundAbnormal), "", "[amount_mismatch refund_abnormal]"},
			{"another replay keeps both", replay(6), "", "[amount_mismatch refund_abnormal]"},
			{"a worker cannot resolve", resolveCmd("f1", 7, engine.FlagAmountMismatch, "worker:query", "looks fine"), engine.CodeInvalid, "[amount_mismatch refund_abnormal]"},
			{"a person must say why", resolveCmd("f1", 8, engine.FlagAmountMismatch, "admin:alice", " "), engine.CodeInvalid, "[amount_mismatch refund_abnormal]"},
			{"a flag the order does not have", resolveCmd("f1", 9, engine.FlagPaidAfterClose, "admin:alice", "checked"), engine.CodeNotFlagged, "[amount_mismatch refund_abnormal]"},
			{"a person resolves exactly one", resolveCmd("f1", 10, engine.FlagAmountMismatch, "admin:alice", "the payer paid 1 fen less: refunded by hand"), "", "[refund_abnormal]"},
			{"then the other", resolveCmd("f1", 11, engine.FlagRefundAbnormal, "admin:bob", "WeChat support settled it"), "", "[]"},
		}
		for _, tc := range tests {
			res, err := e.Apply(ctx, tc.cmd)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			o, err := store.Order(ctx, "f1")
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tc.wantCode || fmt.Sprint(o.Flags) != tc.wantFlags || o.Flag != o.Flags.Primary() {
				t.Errorf("%s: code %q (%s), flags %v (flag %q); want code %q, flags %s",
					tc.name, res.Code, res.Reason, o.Flags, o.Flag, tc.wantCode, tc.wantFlags)
			}
		}
		h, err := store.History(ctx, "f1")
		if err != nil {
			t.Fatal(err)
		}
		var resolved []string
		for _, x := range h {
			if x.Applied && x.Type == string(engine.EventResolved) {
				resolved = append(resolved, x.Actor+" "+x.Reason)
			}
		}
		want := "admin:alice amount_mismatch: the payer paid 1 fen less: refunded by hand|admin:bob refund_abnormal: WeChat support settled it"
		if got := strings.Join(resolved, "|"); got != want {
			t.Errorf("resolutions in the history:\n%s\nwant\n%s", got, want)
		}
		if breaches, err := store.Verify(ctx, time.Hour); err != nil || len(breaches) != 0 {
			t.Errorf("verify: %v %v", breaches, err)
		}
	})
}

// TestReconcilerKeepsAlerts: the reconciler's replay of a flagged order asks
// WeChat again and clears a dead letter, but an alert stays; the stuck list
// still shows the order, with every flag.
func TestReconcilerKeepsAlerts(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	_, nc, js := enginetest.StartNATS(t)
	clock := newClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e, err := engine.New(engine.Config{Now: clock.Now, Reconcile: engine.ReconcileConfig{PaymentDelay: 3 * time.Second}}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	signedOrder(t, e, "f2", 500)
	for i, f := range []string{engine.FlagAmountMismatch, "dead_letter:query"} {
		if res, err := e.Apply(ctx, flagCmd("f2", i, f)); err != nil || !res.Applied {
			t.Fatalf("flag %s: %+v %v", f, res, err)
		}
	}
	clock.Add(3 * time.Second)
	if n, err := e.ReconcileOnce(ctx); err != nil || n != 1 {
		t.Fatalf("reconcile: %d, %v", n, err)
	}
	o, _ := store.Order(ctx, "f2")
	if fmt.Sprint(o.Flags) != "[amount_mismatch]" {
		t.Fatalf("after the reconciler's replay: flags %v, want [amount_mismatch]", o.Flags)
	}
	stuck, err := store.Stuck(ctx, engine.StuckFilter{Now: clock.Now()})
	if err != nil || len(stuck) != 1 || stuck[0].Why != "flagged: amount_mismatch" {
		t.Fatalf("stuck: %+v %v", stuck, err)
	}
}
