package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

func newEngine(t *testing.T, store *engine.Store) (*engine.Engine, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	_, nc, js := enginetest.StartNATS(t)
	e, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	return e, nc, js
}

func create(id engine.OrderID, amount int64) engine.Command {
	return engine.Command{ID: "create:" + string(id), Verb: engine.VerbCreate, Origin: engine.OriginAPI, OrderID: id, Actor: "shop",
		Create: &engine.CreateOrder{Merchant: "m", OutTradeNo: "OTN-" + string(id), Description: "d", AmountFen: amount,
			PayAPI: engine.PayV2, Client: engine.ClientJSAPI, OAuthCode: "code-" + string(id), RequestHash: "h-" + string(id)}}
}

func cmd(verb engine.Verb, id engine.OrderID, n int) engine.Command {
	return engine.Command{ID: fmt.Sprintf("%s:%s:%d", verb, id, n), Verb: verb, OrderID: id, Actor: "test"}
}

// lifecycle is one order's commands from create to notified, as the API
// and the workers send them.
func lifecycle(id engine.OrderID, amount int64) []engine.Command {
	a := cmd(engine.VerbAuthorize, id, 0)
	a.Authorize = &engine.Authorize{OpenID: "o1"}
	p := cmd(engine.VerbPrepaid, id, 0)
	p.Prepaid = &engine.PrepaidInfo{PrepayID: "wx1"}
	s := cmd(engine.VerbSigned, id, 0)
	s.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(`{"paySign":"x"}`)}
	n := cmd(engine.VerbNotify, id, 0)
	n.Notify = &engine.Payment{TransactionID: "t1", AmountFen: amount, Source: engine.SourceNotification}
	return []engine.Command{create(id, amount), a, p, s, n}
}

// applyAll applies commands one by one, each of which must apply.
func applyAll(t *testing.T, e *engine.Engine, cmds []engine.Command) {
	t.Helper()
	for _, c := range cmds {
		res, err := e.Apply(context.Background(), c)
		if err != nil || !res.Applied {
			t.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
}

// paid drives an order to notified.
func paid(t *testing.T, e *engine.Engine, id engine.OrderID, amount int64) {
	t.Helper()
	applyAll(t, e, lifecycle(id, amount))
}

func TestApplyLifecycleAndRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		e, _, _ := newEngine(t, store)
		ctx := context.Background()
		paid(t, e, "o1", 1000)

		refund := func(n int, no string, fen int64) engine.Command {
			c := cmd(engine.VerbRefund, "o1", n)
			c.Refund = &engine.RefundAsk{OutRefundNo: no, AmountFen: fen}
			return c
		}
		refunded := func(n int, no string, ok bool) engine.Command {
			c := cmd(engine.VerbRefunded, "o1", n)
			c.Refunded = &engine.RefundDone{OutRefundNo: no, Succeeded: ok, Source: engine.SourceNotification}
			return c
		}
		notify := cmd(engine.VerbNotify, "o1", 9)
		notify.Notify = &engine.Payment{TransactionID: "t1", AmountFen: 1000, Source: engine.SourceNotification}
		tests := []struct {
			name      string
			cmd       engine.Command
			wantCode  engine.RefusalCode // "" when applied
			wantState engine.State
		}{
			{"repeated notification", notify, engine.CodeDuplicate, engine.Notified},
			{"same command id again", create("o1", 1000), engine.CodeDuplicateCommand, engine.Notified},
			{"refund above paid", refund(1, "r0", 1001), engine.CodeOverRefund, engine.Notified},
			{"refund part: sent at once", refund(2, "r1", 400), "", engine.Refunding},
			{"second refund while one runs: queued", refund(3, "r2", 100), "", engine.Refunding},
			{"the queued one counts against the payment", refund(4, "r3", 501), engine.CodeOverRefund, engine.Refunding},
			{"a result of the queued one", refunded(5, "r2", true), engine.CodeInvalidState, engine.Refunding},
			{"refund settles", refunded(6, "r1", true), "", engine.Refunded},
			{"refund result again", refunded(7, "r1", true), engine.CodeDuplicate, engine.Refunded},
			{"same out_refund_no other amount", refund(8, "r1", 500), engine.CodeConflict, engine.Refunded},
			{"the same refund again", refund(9, "r2", 100), engine.CodeDuplicate, engine.Refunded},
			{"refund the rest: queued behind r2", refund(10, "r3", 500), "", engine.Refunded},
			{"nothing left", refund(11, "r5", 1), engine.CodeOverRefund, engine.Refunded},
			{"close a paid order", func() engine.Command { c := cmd(engine.VerbClose, "o1", 13); c.Close = &engine.CloseAsk{}; return c }(), engine.CodeInvalidState, engine.Refunded},
		}
		for _, tc := range tests {
			res, err := e.Apply(ctx, tc.cmd)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res.Code != tc.wantCode || res.Applied != (tc.wantCode == "") || res.Order.State != tc.wantState {
				t.Errorf("%s: got applied=%v code=%q state=%s (%s), want code=%q state=%s",
					tc.name, res.Applied, res.Code, res.Order.State, res.Reason, tc.wantCode, tc.wantState)
			}
		}
		o, err := store.Order(ctx, "o1")
		if err != nil || o.RefundedFen != 400 || o.PaidFen != 1000 {
			t.Fatalf("order = %+v, %v", o, err)
		}
		rs, err := store.Refunds(ctx, "o1")
		var got []string
		for _, r := range rs {
			got = append(got, fmt.Sprintf("%s:%d:%s", r.OutRefundNo, r.Seq, r.State))
		}
		if want := "[r1:1:succeeded r2:2:queued r3:3:queued]"; err != nil || fmt.Sprint(got) != want {
			t.Fatalf("refunds %v (%v), want %s", got, err, want)
		}
		h, err := store.History(ctx, "o1")
		if err != nil || len(h) < 10 {
			t.Fatalf("history: %d entries, %v", len(h), err)
		}
	})
}

func TestNotifyGuards(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		e, _, _ := newEngine(t, store)
		ctx := context.Background()
		if res, _ := e.Apply(ctx, create("o2", 500)); !res.Applied {
			t.Fatalf("create: %+v", res)
		}
		if res, _ := e.Apply(ctx, create("o2", 500)); res.Code != engine.CodeDuplicateCommand {
			t.Fatalf("same create: %+v", res)
		}
		other := create("o2", 600)
		other.ID, other.Create.RequestHash = "create:other", "h-other"
		if res, _ := e.Apply(ctx, other); res.Code != engine.CodeConflict {
			t.Fatalf("other create, same id: %+v", res)
		}
		n := cmd(engine.VerbNotify, "o2", 1)
		n.Notify = &engine.Payment{TransactionID: "t", AmountFen: 499, Source: engine.SourceNotification}
		res, _ := e.Apply(ctx, n)
		if res.Code != engine.CodeAmountMismatch || res.Order.Flag != string(engine.CodeAmountMismatch) {
			t.Fatalf("amount mismatch: %+v", res)
		}
		n = cmd(engine.VerbNotify, "o2", 2)
		n.Notify = &engine.Payment{TransactionID: "t", AmountFen: 500, Source: "frontend"}
		if res, _ := e.Apply(ctx, n); res.Code != engine.CodeInvalid {
			t.Fatalf("front-end 'ok': %+v", res)
		}
		c := cmd(engine.VerbClose, "o2", 3)
		if res, _ := e.Apply(ctx, c); !res.Applied || res.Order.State != engine.Closed {
			t.Fatalf("close before prepay: %+v", res)
		}
		n = cmd(engine.VerbNotify, "o2", 4)
		n.Notify = &engine.Payment{TransactionID: "t", AmountFen: 500, Source: engine.SourceQuery}
		// A second alert keeps the first: both are in the set, the first
		// raised stays the primary one.
		res, _ = e.Apply(ctx, n)
		if res.Code != engine.CodePaidAfterClose || fmt.Sprint(res.Order.Flags) != "[amount_mismatch paid_after_close]" ||
			res.Order.Flag != engine.FlagAmountMismatch {
			t.Fatalf("paid after close: %+v", res)
		}
	})
}

func TestCloseWithPrepayAsksWeChatFirst(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	e.Apply(ctx, create("o3", 100))
	a := cmd(engine.VerbAuthorize, "o3", 0)
	a.Authorize = &engine.Authorize{OpenID: "x"}
	p := cmd(engine.VerbPrepaid, "o3", 0)
	p.Prepaid = &engine.PrepaidInfo{PrepayID: "wx"}
	e.Apply(ctx, a)
	e.Apply(ctx, p)
	res, _ := e.Apply(ctx, cmd(engine.VerbClose, "o3", 1))
	if !res.Applied || res.Order.State != engine.Prepaid || len(res.Events) != 1 || res.Events[0].Type != engine.EventCloseRequested {
		t.Fatalf("first close: %+v", res)
	}
	if res, _ := e.Apply(ctx, cmd(engine.VerbClose, "o3", 2)); res.Code != engine.CodeCloseRequested {
		t.Fatalf("second close: %+v", res)
	}
	c := cmd(engine.VerbClose, "o3", 3)
	c.Close = &engine.CloseAsk{Confirmed: true}
	if res, _ := e.Apply(ctx, c); !res.Applied || res.Order.State != engine.Closed {
		t.Fatalf("confirmed close: %+v", res)
	}
}

func TestConcurrentRefundsNeverExceedPayment(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, _, _ := newEngine(t, store)
	paid(t, e, "o4", 1000)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c := cmd(engine.VerbRefund, "o4", 100+i)
			c.Refund = &engine.RefundAsk{OutRefundNo: fmt.Sprintf("r%d", i), AmountFen: 700}
			if _, err := e.Apply(context.Background(), c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	refunds, err := store.Refunds(context.Background(), "o4")
	if err != nil || len(refunds) != 1 {
		t.Fatalf("refunds = %+v, %v: want exactly one of the racing refunds", refunds, err)
	}
}

// TestRelayCrashWindows kills the relay at both of its windows.
func TestRelayCrashWindows(t *testing.T) {
	store, db := enginetest.OpenSQLiteWithDB(t)
	e, _, js := newEngine(t, store)
	ctx := context.Background()
	// 1. Commit, then crash before publishing: the relay never ran. Nothing is in the stream yet.
	paid(t, e, "o5", 100)
	count := func() uint64 {
		s, err := js.Stream(ctx, engine.EventStream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		return info.State.Msgs
	}
	if n := count(); n != 0 {
		t.Fatalf("events in the stream before the relay ran: %d", n)
	}
	// A new process starts its relay: every event arrives.
	if n, err := e.Relay().RelayOnce(ctx); err != nil || n != 5 {
		t.Fatalf("relay after restart: %d, %v", n, err)
	}
	if n := count(); n != 5 {
		t.Fatalf("stream has %d events, want 5", n)
	}
	// 2. Published, then crash before marking sent: the rows are unsent again.
	if _, err := db.Exec("UPDATE outbox SET sent_at = NULL"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.Relay().RelayOnce(ctx); err != nil || n != 5 {
		t.Fatalf("relay again: %d, %v", n, err)
	}
	if n := count(); n != 5 {
		t.Fatalf("stream has %d events after a re-publish, want 5 (no duplicate)", n)
	}
	if b, _ := e.Relay().Backlog(ctx); b != 0 {
		t.Fatalf("backlog %d", b)
	}
}

// TestIntakeEndToEnd publishes commands on NATS and sees the events, once each.
func TestIntakeEndToEnd(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, nc, js := newEngine(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	sub, err := nc.SubscribeSync("wxflow.evt.>")
	if err != nil {
		t.Fatal(err)
	}
	inbox := nats.NewInbox()
	replies, _ := nc.SubscribeSync(inbox)
	c := create("o6", 100)
	b, _ := json.Marshal(c)
	msg := &nats.Msg{Subject: c.Subject(), Data: b, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, c.ID)
	msg.Header.Set(engine.ReplyHeader, inbox)
	for range 3 { // duplicates inside the window are dropped by JetStream
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	r, err := replies.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var res engine.Result
	json.Unmarshal(r.Data, &res)
	if !res.Applied || res.Order.State != engine.Created {
		t.Fatalf("reply: %+v", res)
	}
	ev, err := sub.NextMsg(5 * time.Second)
	if err != nil || ev.Subject != "wxflow.evt.m.created.o6" {
		t.Fatalf("event: %v %v", ev, err)
	}
	if extra, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a second event: %s", extra.Subject)
	}
}

func TestExpiry(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	now := time.Now()
	_, nc, js := enginetest.StartNATS(t)
	e, _ := engine.New(engine.Config{Now: func() time.Time { return now }}, store, nc, js)
	c := create("o7", 100)
	c.Create.ExpiresAt = now.Add(time.Minute)
	e.Apply(context.Background(), c)
	now = now.Add(2 * time.Minute)
	if err := e.ExpireOnce(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if o, _ := store.Order(context.Background(), "o7"); o.State != engine.Closed {
		t.Fatalf("state %s", o.State)
	}
}

func forEachStore(t *testing.T, f func(t *testing.T, s *engine.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, enginetest.OpenSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, enginetest.OpenPostgres(t)) })
}

// benchEngines runs f with an engine on SQLite and (when it is reachable)
// PostgreSQL.
func benchEngines(b *testing.B, f func(b *testing.B, e *engine.Engine)) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) *engine.Store
	}{{"sqlite", enginetest.OpenSQLite}, {"postgres", enginetest.OpenPostgres}} {
		b.Run(tc.name, func(b *testing.B) {
			store := tc.open(b)
			_, nc, js := enginetest.StartNATS(b)
			e, err := engine.New(engine.Config{}, store, nc, js)
			if err != nil {
				b.Fatal(err)
			}
			f(b, e)
		})
	}
}

// BenchmarkApply applies one create per transaction.
func BenchmarkApply(b *testing.B) {
	benchEngines(b, func(b *testing.B, e *engine.Engine) {
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			if res, err := e.Apply(ctx, create(engine.OrderID(fmt.Sprintf("b%d", i)), 100)); err != nil || !res.Applied {
				b.Fatal(res, err)
			}
		}
	})
}

// BenchmarkApplyLifecycle applies orders' lifecycles the way the intake
// does under load: each step of 8 orders in one group commit (ApplyBatch).
// One op is one order, create to notified: the engine's SQL per order
// without NATS.
func BenchmarkApplyLifecycle(b *testing.B) {
	benchEngines(b, func(b *testing.B, e *engine.Engine) {
		ctx := context.Background()
		const group = 8
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += group {
			steps := make([][]engine.Command, 5)
			for j := range group {
				for k, c := range lifecycle(engine.OrderID(fmt.Sprintf("b%d", i+j)), 100) {
					steps[k] = append(steps[k], c)
				}
			}
			for _, batch := range steps {
				results, errs := e.ApplyBatch(ctx, batch)
				for k := range batch {
					if errs[k] != nil || !results[k].Applied {
						b.Fatal(results[k], errs[k])
					}
				}
			}
		}
	})
}

// TestReplayEveryState: what a replay re-emits in each state, and that a
// failure from a state the order has left is refused.
func TestReplayEveryState(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	replay := func(id engine.OrderID, n int) engine.Result {
		c := cmd(engine.VerbReplay, id, 1000+n)
		c.Actor, c.Reason = "admin:test", "test"
		res, err := e.Apply(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	e.Apply(ctx, create("r1", 100))
	steps := []struct {
		apply func() engine.Command
		want  engine.EventType
	}{
		{nil, engine.EventCreated},
		{func() engine.Command {
			c := cmd(engine.VerbAuthorize, "r1", 1)
			c.Authorize = &engine.Authorize{OpenID: "o"}
			return c
		}, engine.EventAuthorized},
		{func() engine.Command {
			c := cmd(engine.VerbPrepaid, "r1", 1)
			c.Prepaid = &engine.PrepaidInfo{PrepayID: "wx"}
			return c
		}, engine.EventPrepaid},
		{func() engine.Command {
			c := cmd(engine.VerbSigned, "r1", 1)
			c.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(`{}`)}
			return c
		}, engine.EventQueryRequested},
	}
	for i, s := range steps {
		if s.apply != nil {
			if res, _ := e.Apply(ctx, s.apply()); !res.Applied {
				t.Fatalf("step %d: %+v", i, res)
			}
		}
		for n := range 3 {
			res := replay("r1", i*10+n)
			if !res.Applied || len(res.Events) != 1 || res.Events[0].Type != s.want || res.Events[0].From != res.Events[0].To {
				t.Fatalf("replay in %s: %+v", res.Order.State, res)
			}
		}
	}
	stale := cmd(engine.VerbFail, "r1", 1)
	stale.Fail = &engine.Failure{Step: "prepay", Code: "ORDERPAID", State: engine.Authorized}
	if res, _ := e.Apply(ctx, stale); res.Code != engine.CodeStale || res.Order.State != engine.Signed {
		t.Fatalf("stale failure: %+v", res)
	}
	n := cmd(engine.VerbNotify, "r1", 1)
	n.Notify = &engine.Payment{TransactionID: "t", AmountFen: 100, Source: engine.SourceQuery}
	e.Apply(ctx, n)
	if res := replay("r1", 99); res.Code != engine.CodeNothingToReplay {
		t.Fatalf("replay of a paid order: %+v", res)
	}
	rf := cmd(engine.VerbRefund, "r1", 1)
	rf.Refund = &engine.RefundAsk{OutRefundNo: "rr1", AmountFen: 50}
	e.Apply(ctx, rf)
	if res := replay("r1", 100); !res.Applied || res.Events[0].Type != engine.EventRefunding || res.Events[0].Refund == nil || res.Events[0].Refund.OutRefundNo != "rr1" {
		t.Fatalf("replay of a refunding order: %+v", res)
	}
}

func TestVerifyFindsBreaches(t *testing.T) {
	store, db := enginetest.OpenSQLiteWithDB(t)
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	paid(t, e, "v1", 100)
	paid(t, e, "v2", 200)
	if _, err := e.Relay().RelayOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := store.Verify(ctx, time.Minute); err != nil || len(b) != 0 {
		t.Fatalf("a clean store: %v %v", b, err)
	}
	db.MustExec(`UPDATE order_events SET reason = 'paid, source frontend' WHERE order_id = 'v1' AND type = 'notified'`)
	db.MustExec(`UPDATE order_events SET from_state = 'closed' WHERE order_id = 'v2' AND type = 'notified'`)
	db.MustExec(`UPDATE outbox SET sent_at = NULL, created_at = ? WHERE event_id = (SELECT MIN(event_id) FROM outbox)`, time.Now().Add(-time.Hour).UTC())
	b, err := store.Verify(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, x := range b {
		rules[x.Rule] = true
	}
	for _, want := range []string{engine.RulePaidUnverified, engine.RuleTransition, engine.RuleSequence, engine.RuleOutboxUnsent} {
		if !rules[want] {
			t.Errorf("Verify missed %s: %+v", want, b)
		}
	}
}

// TestApplyBatch: group commit gives each command the answer Apply would,
// in order, one order's commands included, refusals recorded as refusals.
func TestApplyBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) { testApplyBatch(t, store) })
}

func testApplyBatch(t *testing.T, store *engine.Store) {
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	a := cmd(engine.VerbAuthorize, "b1", 0)
	a.Authorize = &engine.Authorize{OpenID: "o1"}
	early := cmd(engine.VerbAuthorize, "b2", 0) // before its order exists: refused
	early.Authorize = &engine.Authorize{OpenID: "o1"}
	invalid := create("b3", 100)
	invalid.ID = ""
	cmds := []engine.Command{create("b1", 100), a, early, create("b2", 200), create("b1", 100), invalid, a}
	results, errs := e.ApplyBatch(ctx, cmds)
	want := []struct {
		applied bool
		code    engine.RefusalCode
		state   engine.State
	}{
		{true, "", engine.Created}, {true, "", engine.Authorized}, {false, engine.CodeUnknownOrder, ""},
		{true, "", engine.Created}, {false, engine.CodeDuplicateCommand, engine.Authorized}, {false, engine.CodeInvalid, ""},
		{false, engine.CodeDuplicateCommand, engine.Authorized},
	}
	for i, w := range want {
		r := results[i]
		if errs[i] != nil || r.Applied != w.applied || r.Code != w.code || r.Order.State != w.state {
			t.Errorf("command %d (%s %s): %+v %v; want applied=%v code=%q state=%q", i, cmds[i].Verb, cmds[i].OrderID, r, errs[i], w.applied, w.code, w.state)
		}
	}
	for id, st := range map[engine.OrderID]engine.State{"b1": engine.Authorized, "b2": engine.Created} {
		if o, err := store.Order(ctx, id); err != nil || o.State != st {
			t.Errorf("order %s: %+v %v, want %s", id, o.State, err, st)
		}
	}
}

// TestCreateWithOpenIDIsAuthorized: an order whose payer the shop names is
// created and authorized in one transaction, two events in order; an order
// with a code waits for the authorize worker.
func TestCreateWithOpenIDIsAuthorized(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	e, _, _ := newEngine(t, store)
	ctx := context.Background()
	withOpenID := create("k1", 100)
	withOpenID.Create.OAuthCode, withOpenID.Create.OpenID = "", "oPAYER"
	for _, tc := range []struct {
		cmd    engine.Command
		state  engine.State
		events []engine.EventType
	}{
		{withOpenID, engine.Authorized, []engine.EventType{engine.EventCreated, engine.EventAuthorized}},
		{create("k2", 100), engine.Created, []engine.EventType{engine.EventCreated}},
	} {
		res, err := e.Apply(ctx, tc.cmd)
		if err != nil || !res.Applied || res.Order.State != tc.state {
			t.Fatalf("%s: %+v %v, want applied in %s", tc.cmd.OrderID, res, err, tc.state)
		}
		var got []engine.EventType
		for i, ev := range res.Events {
			got = append(got, ev.Type)
			if ev.Seq != int64(i+1) {
				t.Errorf("%s: event %s has seq %d, want %d", tc.cmd.OrderID, ev.Type, ev.Seq, i+1)
			}
		}
		if !slices.Equal(got, tc.events) {
			t.Errorf("%s: events %v, want %v", tc.cmd.OrderID, got, tc.events)
		}
	}
}

// TestIntakeSurvivesConsumerLoss: the intake's consumer deleted under it
// (an operator's mistake, a stream restored from backup) is made again, and
// commands sent meanwhile are applied.
func TestIntakeSurvivesConsumerLoss(t *testing.T) {
	_, store, _, js := enginetest.StartEngine(t)
	ctx := context.Background()
	send := func(c engine.Command) {
		t.Helper()
		if _, err := engine.Publish(ctx, js, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	applied := func(id engine.OrderID) func() error {
		return func() error {
			_, err := store.Order(ctx, id)
			return err
		}
	}
	send(create("before", 100))
	enginetest.WaitFor(t, 10*time.Second, applied("before"))
	if err := js.DeleteConsumer(ctx, engine.CommandStream, engine.IntakeConsumer); err != nil {
		t.Fatal(err)
	}
	send(create("after", 100))
	enginetest.WaitFor(t, 15*time.Second, applied("after"))
}

// TestDuplicateCommandWritesNothing: a command id applied before is
// answered duplicate_command, alone or in a group commit, even where
// deciding it again would write (a replay emits an event each time), and
// nothing of it is written.
func TestDuplicateCommandWritesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		e, _, _ := newEngine(t, store)
		ctx := context.Background()
		e.Apply(ctx, create("d1", 100))
		replay := cmd(engine.VerbReplay, "d1", 1)
		replay.Actor, replay.Reason = "admin:test", "test"
		if res, err := e.Apply(ctx, replay); err != nil || !res.Applied || len(res.Events) != 1 {
			t.Fatalf("first replay: %+v %v", res, err)
		}
		history := func() int {
			h, err := store.History(ctx, "d1")
			if err != nil {
				t.Fatal(err)
			}
			return len(h)
		}
		before := history()
		if res, err := e.Apply(ctx, replay); err != nil || res.Code != engine.CodeDuplicateCommand || len(res.Events) != 0 {
			t.Fatalf("replay again, alone: %+v %v", res, err)
		}
		results, errs := e.ApplyBatch(ctx, []engine.Command{create("d2", 100), replay, create("d3", 100)})
		for i, want := range []engine.RefusalCode{"", engine.CodeDuplicateCommand, ""} {
			if errs[i] != nil || results[i].Code != want || results[i].Applied != (want == "") {
				t.Fatalf("batch %d: %+v %v, want %q", i, results[i], errs[i], want)
			}
		}
		if after := history(); after != before {
			t.Fatalf("history of d1 grew from %d to %d entries", before, after)
		}
	})
}

// TestRelayRun commits events of many orders at once while the relay runs,
// in batches smaller than what is committed: every event reaches the
// stream once, each order's in order, and every row is marked sent.
func TestRelayRun(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	_, nc, js := enginetest.StartNATS(t)
	e, err := engine.New(engine.Config{RelayBatch: 4}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Relay().Run(ctx) }()
	defer func() { cancel(); <-done }()
	const orders = 40
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() { paid(t, e, engine.OrderID(fmt.Sprintf("p%d", i)), 100) })
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		backlog, err := e.Relay().Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still unsent after 30 s", backlog)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != orders*5 {
		t.Fatalf("the stream has %d events, want %d (each once)", info.State.Msgs, orders*5)
	}
	last := map[engine.OrderID]int64{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev engine.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq != last[ev.OrderID]+1 {
			t.Fatalf("order %s: event %d after %d in the stream", ev.OrderID, ev.Seq, last[ev.OrderID])
		}
		last[ev.OrderID] = ev.Seq
	}
}
