package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// twoEngines are two engines, as two processes would run them: each with
// its own store (its own pool of PostgreSQL connections) on one database
// schema, and its own NATS connection to one server. cfgB is engine B's.
func twoEngines(t *testing.T, cfgA, cfgB engine.Config) (a, b *engine.Engine, js jetstream.JetStream) {
	t.Helper()
	dsn := enginetest.PostgresSchema(t)
	ns, _, js := enginetest.StartNATS(t)
	ctx := context.Background()
	engines := make([]*engine.Engine, 2)
	for i, cfg := range []engine.Config{cfgA, cfgB} {
		store, err := engine.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		njs, _ := jetstream.New(nc)
		if engines[i], err = engine.New(cfg, store, nc, njs); err != nil {
			t.Fatal(err)
		}
	}
	return engines[0], engines[1], js
}

// checkSeqs fails unless the order's events are seq 1..n, each once, and
// returns n and how many of each event type it has.
func checkSeqs(t *testing.T, store *engine.Store, id engine.OrderID) (int, map[string]int) {
	t.Helper()
	h, err := store.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	types := map[string]int{}
	for _, x := range h {
		if x.Applied {
			seqs = append(seqs, x.Seq)
			types[x.Type]++
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Errorf("order %s: event seqs %v, want 1..%d", id, seqs, len(seqs))
			break
		}
	}
	return len(seqs), types
}

// TestTwoEnginesApplyEachCommandOnce sends every command of an order's
// lifecycle to two engines at the same moment, as a command redelivered to
// the second engine while the first still applies it would be: one applies
// it, the other finds it a duplicate, and no transition is doubled. One
// engine applies in group commits (ApplyBatch), the other one by one;
// racing refunds of one order go to both, and only one is taken.
func TestTwoEnginesApplyEachCommandOnce(t *testing.T) {
	a, b, _ := twoEngines(t, engine.Config{}, engine.Config{})
	ctx := context.Background()
	n := 20
	if testing.Short() {
		n = 6
	}
	ids := make([]engine.OrderID, n)
	for i := range ids {
		ids[i] = engine.OrderID(fmt.Sprintf("two%d", i))
	}
	steps := []func(id engine.OrderID) engine.Command{
		func(id engine.OrderID) engine.Command { return create(id, 1000) },
		func(id engine.OrderID) engine.Command {
			c := cmd(engine.VerbAuthorize, id, 0)
			c.Authorize = &engine.Authorize{OpenID: "o1"}
			return c
		},
		func(id engine.OrderID) engine.Command {
			c := cmd(engine.VerbPrepaid, id, 0)
			c.Prepaid = &engine.PrepaidInfo{PrepayID: "wx-" + string(id)}
			return c
		},
		func(id engine.OrderID) engine.Command {
			c := cmd(engine.VerbSigned, id, 0)
			c.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(`{"paySign":"x"}`)}
			return c
		},
		func(id engine.OrderID) engine.Command {
			c := cmd(engine.VerbNotify, id, 0)
			c.ID = engine.NotifyCommandID(id, "t-"+string(id), 1000)
			c.Notify = &engine.Payment{TransactionID: "t-" + string(id), AmountFen: 1000, Source: engine.SourceNotification}
			return c
		},
	}
	for _, step := range steps {
		cmds := make([]engine.Command, n)
		for i, id := range ids {
			cmds[i] = step(id)
		}
		var batch []engine.Result
		var batchErrs []error
		single := make([]engine.Result, n)
		var wg sync.WaitGroup
		wg.Go(func() { batch, batchErrs = a.ApplyBatch(ctx, cmds) })
		for i := range cmds {
			wg.Go(func() {
				var err error
				if single[i], err = b.Apply(ctx, cmds[i]); err != nil {
					t.Errorf("engine B, %s: %v", cmds[i].ID, err)
				}
			})
		}
		wg.Wait()
		for i, c := range cmds {
			if batchErrs[i] != nil {
				t.Errorf("engine A, %s: %v", c.ID, batchErrs[i])
			}
			ra, rb := batch[i], single[i]
			if ra.Applied == rb.Applied {
				t.Errorf("%s: applied by A=%v, B=%v; want exactly one", c.ID, ra.Applied, rb.Applied)
			}
			for _, r := range []engine.Result{ra, rb} {
				if !r.Applied && r.Code != engine.CodeDuplicateCommand {
					t.Errorf("%s: the loser was refused %s (%s), want %s", c.ID, r.Code, r.Reason, engine.CodeDuplicateCommand)
				}
			}
		}
	}
	// Two orders of one out_trade_no, created on both engines at once: one
	// is taken, the other refused as a conflict.
	for i := range n {
		var res [2]engine.Result
		var wg sync.WaitGroup
		for k, e := range []*engine.Engine{a, b} {
			wg.Go(func() {
				c := create(engine.OrderID(fmt.Sprintf("otn%d-%d", i, k)), 100)
				c.Create.OutTradeNo = fmt.Sprintf("OTN-shared-%d", i)
				var err error
				if res[k], err = e.Apply(ctx, c); err != nil {
					t.Errorf("create %s: %v", c.ID, err)
				}
			})
		}
		wg.Wait()
		if res[0].Applied == res[1].Applied || !res[0].Applied && res[0].Code != engine.CodeConflict ||
			!res[1].Applied && res[1].Code != engine.CodeConflict {
			t.Errorf("out_trade_no OTN-shared-%d: applied %v/%v, codes %q/%q; want one applied and one conflict",
				i, res[0].Applied, res[1].Applied, res[0].Code, res[1].Code)
		}
	}
	// Four refunds of 700 fen of one 1000 fen payment, two on each engine.
	var taken atomic.Int64
	var wg sync.WaitGroup
	for _, id := range ids {
		for k := range 4 {
			e := []*engine.Engine{a, b}[k%2]
			wg.Go(func() {
				c := cmd(engine.VerbRefund, id, 10+k)
				c.Refund = &engine.RefundAsk{OutRefundNo: fmt.Sprintf("rf-%s-%d", id, k), AmountFen: 700}
				res, err := e.Apply(ctx, c)
				if err != nil {
					t.Errorf("refund %s: %v", c.ID, err)
				}
				if res.Applied {
					taken.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if got := taken.Load(); got != int64(n) {
		t.Errorf("%d refunds taken, want one per order (%d)", got, n)
	}
	for _, id := range ids {
		o, err := a.Store().Order(ctx, id)
		if err != nil || o.State != engine.Refunding || o.PaidFen != 1000 {
			t.Errorf("order %s: %+v %v", id, o, err)
		}
		if rs, _ := a.Store().Refunds(ctx, id); len(rs) != 1 {
			t.Errorf("order %s: %d refunds, want 1", id, len(rs))
		}
		events, types := checkSeqs(t, a.Store(), id)
		if events != 7 || types[string(engine.EventNotified)] != 1 || types[string(engine.EventRefundQueued)] != 1 || types[string(engine.EventRefunding)] != 1 {
			t.Errorf("order %s: %d events %v, want created, authorized, prepaid, signed, notified, refund_queued, refunding once each", id, events, types)
		}
	}
}

// TestTwoEnginesTakeTurns runs the relay, the expiry, the refund queue and
// the reconciler of two engines at the same moment: the relays publish each
// event once between them (not once each) and in each order's sequence,
// every expired order is closed once, every due refund sent once (no send
// refused), and every quiet order asked about once.
func TestTwoEnginesTakeTurns(t *testing.T) {
	ctx := context.Background()
	n := 30
	if testing.Short() {
		n = 10
	}
	// together runs f on both engines at once, again until neither does anything.
	together := func(a, b *engine.Engine, f func(e *engine.Engine) (int, error)) int {
		total := 0
		for {
			var wg sync.WaitGroup
			var round [2]int
			start := make(chan struct{})
			for i, e := range []*engine.Engine{a, b} {
				wg.Go(func() {
					<-start
					var err error
					if round[i], err = f(e); err != nil {
						t.Errorf("engine %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if round[0]+round[1] == 0 {
				return total
			}
			total += round[0] + round[1]
		}
	}

	t.Run("relay", func(t *testing.T) {
		a, b, js := twoEngines(t, engine.Config{RelayBatch: 16}, engine.Config{RelayBatch: 16})
		rows := 0
		for i := range n {
			paid(t, []*engine.Engine{a, b}[i%2], engine.OrderID(fmt.Sprintf("rel%d", i)), 100)
			rows += 5
		}
		published := together(a, b, func(e *engine.Engine) (int, error) { return e.Relay().RelayOnce(ctx) })
		if published != rows {
			t.Errorf("the two relays published %d events between them, want %d (each once)", published, rows)
		}
		if backlog, _ := a.Relay().Backlog(ctx); backlog != 0 {
			t.Errorf("backlog %d", backlog)
		}
		// The stream holds each event once, each order's in sequence.
		stream, err := js.Stream(ctx, engine.EventStream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := stream.Info(ctx)
		if info.State.Msgs != uint64(rows) {
			t.Errorf("%d events in the stream, want %d", info.State.Msgs, rows)
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		last := map[engine.OrderID]int64{}
		for range info.State.Msgs {
			msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var ev engine.Event
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != last[ev.OrderID]+1 {
				t.Errorf("order %s: event seq %d after %d in the stream", ev.OrderID, ev.Seq, last[ev.OrderID])
			}
			last[ev.OrderID] = ev.Seq
		}
	})

	t.Run("expiry", func(t *testing.T) {
		clock := newClock(time.Now())
		a, b, _ := twoEngines(t, engine.Config{Now: clock.Now}, engine.Config{Now: clock.Now})
		for i := range n {
			c := create(engine.OrderID(fmt.Sprintf("exp%d", i)), 100)
			c.Create.ExpiresAt = clock.Now().Add(time.Minute)
			if res, err := []*engine.Engine{a, b}[i%2].Apply(ctx, c); err != nil || !res.Applied {
				t.Fatalf("create: %+v %v", res, err)
			}
		}
		clock.Add(2 * time.Minute)
		together(a, b, func(e *engine.Engine) (int, error) {
			before, _ := e.Store().CountByState(ctx)
			err := e.ExpireOnce(ctx, 7)
			after, _ := e.Store().CountByState(ctx)
			return after[engine.Closed] - before[engine.Closed], err
		})
		for i := range n {
			id := engine.OrderID(fmt.Sprintf("exp%d", i))
			o, _ := a.Store().Order(ctx, id)
			if _, types := checkSeqs(t, a.Store(), id); o.State != engine.Closed || types[string(engine.EventClosed)] != 1 {
				t.Errorf("order %s: %s with events %v, want closed once", id, o.State, types)
			}
		}
	})

	t.Run("refunds", func(t *testing.T) {
		clock := newClock(time.Now())
		later := func() time.Time { return clock.Now().Add(time.Millisecond) }
		rq := engine.RefundConfig{Gap: time.Minute}
		a, b, _ := twoEngines(t, engine.Config{Now: clock.Now, Refunds: rq}, engine.Config{Now: later, Refunds: rq})
		for i := range n {
			id := engine.OrderID(fmt.Sprintf("rq%d", i))
			e := []*engine.Engine{a, b}[i%2]
			paid(t, e, id, 1000)
			for k, no := range []string{"first", "second"} {
				c := cmd(engine.VerbRefund, id, k)
				c.Refund = &engine.RefundAsk{OutRefundNo: fmt.Sprintf("%s-%s", id, no), AmountFen: 300}
				if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
					t.Fatalf("refund: %+v %v", res, err)
				}
			}
			done := cmd(engine.VerbRefunded, id, 9)
			done.Refunded = &engine.RefundDone{OutRefundNo: fmt.Sprintf("%s-first", id), Succeeded: true, Source: engine.SourceNotification}
			if res, err := e.Apply(ctx, done); err != nil || !res.Applied {
				t.Fatalf("refunded: %+v %v", res, err)
			}
		}
		clock.Add(2 * time.Minute) // the second refund of every order is due
		if sent := together(a, b, func(e *engine.Engine) (int, error) { return e.SendRefundsOnce(ctx) }); sent != n {
			t.Errorf("%d refunds sent between the two engines, want %d (each order's second once)", sent, n)
		}
		for i := range n {
			id := engine.OrderID(fmt.Sprintf("rq%d", i))
			h, _ := a.Store().History(ctx, id)
			for _, x := range h {
				if !x.Applied && x.Type == string(engine.VerbSendRefund) {
					t.Errorf("order %s: a send refused (%s: %s): two engines sent at once", id, x.Code, x.Reason)
				}
			}
			if got := refundStates(t, a.Store(), id); got != fmt.Sprintf("%s-first:succeeded %s-second:pending", id, id) {
				t.Errorf("order %s: refunds %s", id, got)
			}
			checkSeqs(t, a.Store(), id)
		}
	})

	t.Run("reconcile", func(t *testing.T) {
		// Two engines' clocks never agree to the nanosecond: their rounds'
		// command ids differ, so only taking turns keeps an order from
		// being asked about twice.
		clock := newClock(time.Now())
		later := func() time.Time { return clock.Now().Add(time.Millisecond) }
		rc := engine.ReconcileConfig{PaymentDelay: 3 * time.Second, Batch: 7}
		a, b, _ := twoEngines(t, engine.Config{Now: clock.Now, Reconcile: rc}, engine.Config{Now: later, Reconcile: rc})
		for i := range n {
			signedOrder(t, []*engine.Engine{a, b}[i%2], engine.OrderID(fmt.Sprintf("rec%d", i)), 100)
		}
		clock.Add(4 * time.Second)
		if asked := together(a, b, func(e *engine.Engine) (int, error) { return e.ReconcileOnce(ctx) }); asked != n {
			t.Errorf("%d asks between the two reconcilers, want %d (each order once)", asked, n)
		}
		for i := range n {
			id := engine.OrderID(fmt.Sprintf("rec%d", i))
			if got := asks(t, a.Store(), id); got != 1 {
				t.Errorf("order %s asked about %d times, want 1", id, got)
			}
			checkSeqs(t, a.Store(), id)
		}
	})
}

// TestTurnIsFreedWhenItsHolderDies holds the relay's, the expiry's and the
// reconciler's turns in another session, as an engine in the middle of its
// rounds would: this engine expires and reconciles nothing, and its relay
// queues. When the holder's session dies (as it does when its process is
// killed), the queued relay publishes at once and the next rounds run.
func TestTurnIsFreedWhenItsHolderDies(t *testing.T) {
	dsn := enginetest.PostgresSchema(t)
	ctx := context.Background()
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, nc, js := enginetest.StartNATS(t)
	clock := newClock(time.Now())
	e, err := engine.New(engine.Config{Now: clock.Now, Reconcile: engine.ReconcileConfig{PaymentDelay: time.Second}}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	signedOrder(t, e, "held", 100)
	c := create("late", 100)
	c.Create.ExpiresAt = clock.Now().Add(time.Minute)
	if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
		t.Fatalf("create: %+v %v", res, err)
	}
	clock.Add(2 * time.Minute)

	raw, err := engine.OpenRaw(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	holder, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	var pid int
	if err := holder.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// The key of each turn, as engine/turns.go makes it.
	const key = `('x' || left(md5(current_database() || '.' || current_schema() || '.wxflow.turn.' || $1), 16))::bit(64)::bigint`
	for _, name := range []string{"relay", "expiry", "reconcile"} {
		if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_lock("+key+")", name); err != nil {
			t.Fatal(err)
		}
	}

	if err := e.ExpireOnce(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if o, _ := store.Order(ctx, "late"); o.State == engine.Closed {
		t.Fatal("expired while another engine held the expiry's turn")
	}
	if n, err := e.ReconcileOnce(ctx); err != nil || n != 0 {
		t.Fatalf("reconciled %d (%v) while another engine held the turn", n, err)
	}
	relayed := make(chan error, 1)
	go func() {
		n, err := e.Relay().RelayOnce(ctx)
		if err == nil && n != 5 {
			err = fmt.Errorf("relayed %d events, want 5", n)
		}
		relayed <- err
	}()
	enginetest.WaitFor(t, 5*time.Second, func() error {
		var waiting int
		if err := raw.GetContext(ctx, &waiting, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND (classid::bigint << 32 | objid::bigint) = `+key, "relay"); err != nil {
			return err
		}
		if waiting == 0 {
			return fmt.Errorf("the relay is not queued behind the holder yet")
		}
		return nil
	})
	if _, err := raw.ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if err := <-relayed; err != nil {
		t.Fatal(err)
	}
	if err := e.ExpireOnce(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if o, _ := store.Order(ctx, "late"); o.State != engine.Closed {
		t.Errorf("not expired once the holder died: %s", o.State)
	}
	if n, err := e.ReconcileOnce(ctx); err != nil || n != 1 {
		t.Errorf("reconciled %d (%v) once the holder died, want 1", n, err)
	}
}
