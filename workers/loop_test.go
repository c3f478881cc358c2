package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/wechat"
)

// scripted is a worker whose answers the test decides.
type scripted struct {
	name  string
	calls atomic.Int64
	do    func(n int64, ev engine.Event) (*engine.Command, error)
	mu    sync.Mutex
	seen  map[string]int
}

func (s *scripted) Name() string            { return s.name }
func (s *scripted) Event() engine.EventType { return engine.EventAuthorized }
func (s *scripted) Handle(_ context.Context, ev engine.Event) (*engine.Command, error) {
	n := s.calls.Add(1)
	s.mu.Lock()
	s.seen[ev.ID]++
	s.mu.Unlock()
	return s.do(n, ev)
}

func publishEvent(t *testing.T, js jetstream.JetStream, id engine.OrderID, n int) engine.Event {
	t.Helper()
	ev := engine.Event{ID: fmt.Sprintf("evt_%s_%d", id, n), Type: engine.EventAuthorized, OrderID: id, Seq: 2,
		Order: engine.Order{ID: id, Merchant: "m", State: engine.Authorized}}
	b, _ := json.Marshal(ev)
	if _, err := js.Publish(context.Background(), ev.Subject(), b, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
	return ev
}

// recorder collects what the workers publish on wxflow.cmd.>.
type recorder struct {
	nc    *nats.Conn
	mu    sync.Mutex
	got   []engine.Command
	marks int // markers seen (see sync)
}

// markerSubject is where sync publishes: under the command subjects, so the
// recorder's one subscription receives it in order with the commands.
const markerSubject = engine.CommandSubjectPrefix + "test.marker"

func commands(t *testing.T, nc *nats.Conn) *recorder {
	r := &recorder{nc: nc}
	sub, err := nc.Subscribe("wxflow.cmd.>", func(m *nats.Msg) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if m.Subject == markerSubject {
			r.marks++
			return
		}
		var c engine.Command
		_ = json.Unmarshal(m.Data, &c)
		r.got = append(r.got, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return r
}

// all is every command recorded so far.
func (r *recorder) all() []engine.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Command(nil), r.got...)
}

// sync returns once every command published on the test's connection before
// it has been recorded: a marker published after them on the same connection
// reaches the same subscription after them, so seeing it proves they are in.
func (r *recorder) sync(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	want := r.marks + 1
	r.mu.Unlock()
	if err := r.nc.Publish(markerSubject, nil); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.marks < want {
			return fmt.Errorf("marker %d not seen yet", want)
		}
		return nil
	})
}

// settled waits until worker's consumer has nothing left to deliver and no
// delivery awaiting an ack: a nak'ed delivery stays pending until it is
// redelivered and acked or terminated, so after this no delivery, and no
// command of one, can follow.
func settled(t *testing.T, js jetstream.JetStream, worker string) {
	t.Helper()
	ctx := context.Background()
	enginetest.WaitFor(t, 20*time.Second, func() error {
		c, err := js.Consumer(ctx, engine.EventStream, worker)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer %s: %d to deliver, %d awaiting an ack", worker, info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

func run(t *testing.T, js jetstream.JetStream, h workers.Handler, cfg workers.LoopConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = workers.Run(ctx, js, h, cfg); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestLoop(t *testing.T) {
	retryable := &wechat.Error{API: "pay/unifiedorder", Code: "SYSTEMERROR", Retryable: true}
	final := &wechat.Error{API: "pay/unifiedorder", Code: "ORDERCLOSED"}
	tests := []struct {
		name  string
		do    func(n int64, ev engine.Event) (*engine.Command, error)
		want  engine.Verb // the command published
		calls int64       // Handle calls to expect (at least)
		dlq   bool
		flag  bool
	}{
		{"success", func(_ int64, ev engine.Event) (*engine.Command, error) {
			return &engine.Command{ID: "prepaid:" + ev.ID, Verb: engine.VerbPrepaid, OrderID: ev.OrderID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx"}}, nil
		}, engine.VerbPrepaid, 1, false, false},
		{"retryable then success", func(n int64, ev engine.Event) (*engine.Command, error) {
			if n < 3 {
				return nil, retryable
			}
			return &engine.Command{ID: "prepaid:" + ev.ID, Verb: engine.VerbPrepaid, OrderID: ev.OrderID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx"}}, nil
		}, engine.VerbPrepaid, 3, false, false},
		{"final", func(int64, engine.Event) (*engine.Command, error) { return nil, final }, engine.VerbFail, 1, false, false},
		{"deliveries used up", func(int64, engine.Event) (*engine.Command, error) { return nil, retryable }, engine.VerbFlag, 3, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, nc, js := enginetest.StartNATS(t)
			got := commands(t, nc)
			h := &scripted{name: "w", do: tc.do, seen: map[string]int{}}
			run(t, js, h, workers.LoopConfig{MaxDeliver: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
			publishEvent(t, js, "o1", 1)
			enginetest.WaitFor(t, 10*time.Second, func() error {
				for _, c := range got.all() {
					if c.Verb == tc.want {
						return nil
					}
				}
				return fmt.Errorf("no %s command yet; got %v", tc.want, got.all())
			})
			if n := h.calls.Load(); n < tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
			if tc.want == engine.VerbFail {
				c := got.all()[0]
				if c.Fail == nil || c.Fail.Code != "ORDERCLOSED" {
					t.Errorf("fail command %+v", c)
				}
			}
			if tc.dlq {
				s, _ := js.Stream(context.Background(), engine.DeadStream)
				enginetest.WaitFor(t, 5*time.Second, func() error {
					info, _ := s.Info(context.Background())
					if info.State.Msgs != 1 {
						return fmt.Errorf("%d dead letters", info.State.Msgs)
					}
					return nil
				})
			}
			// The result command was published once, whatever the retries:
			// counted once the event is done with and every command is in.
			settled(t, js, h.name)
			got.sync(t)
			n := 0
			for _, c := range got.all() {
				if c.Verb == tc.want {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d %s commands, want 1", n, tc.want)
			}
		})
	}
}

func TestInstancesSplitTheWork(t *testing.T) {
	_, nc, js := enginetest.StartNATS(t)
	got := commands(t, nc)
	ok := func(_ int64, ev engine.Event) (*engine.Command, error) {
		return &engine.Command{ID: "prepaid:" + ev.ID, Verb: engine.VerbPrepaid, OrderID: ev.OrderID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx"}}, nil
	}
	a := &scripted{name: "prepay-test", do: ok, seen: map[string]int{}}
	b := &scripted{name: "prepay-test", do: ok, seen: map[string]int{}}
	run(t, js, a, workers.LoopConfig{})
	run(t, js, b, workers.LoopConfig{})
	for i := range 200 {
		publishEvent(t, js, engine.OrderID(fmt.Sprintf("o%d", i)), i)
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		if n := len(got.all()); n < 200 {
			return fmt.Errorf("%d commands", n)
		}
		return nil
	})
	if a.calls.Load()+b.calls.Load() != 200 || a.calls.Load() == 0 || b.calls.Load() == 0 {
		t.Errorf("calls: %d + %d, want 200 split between both", a.calls.Load(), b.calls.Load())
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 20; n++ {
		d := workers.Backoff(n, 100*time.Millisecond, 5*time.Second)
		if d <= 0 || d > 5*time.Second*5/4 {
			t.Errorf("Backoff(%d) = %s", n, d)
		}
	}
}

// TestLoopLanes: events of different orders are handled at once (a slow
// WeChat call must not queue every other order behind it), and one order's
// events are handled one at a time, in the order they were published.
func TestLoopLanes(t *testing.T) {
	_, nc, js := enginetest.StartNATS(t)
	got := commands(t, nc)
	const orders = 4
	var inside, most atomic.Int64
	release := make(chan struct{})
	var orderMu sync.Mutex
	perOrder := map[engine.OrderID][]string{}
	h := &scripted{name: "lanes", seen: map[string]int{}, do: func(_ int64, ev engine.Event) (*engine.Command, error) {
		n := inside.Add(1)
		defer inside.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		orderMu.Lock()
		perOrder[ev.OrderID] = append(perOrder[ev.OrderID], ev.ID)
		orderMu.Unlock()
		<-release // every first event waits here until all orders are in
		return &engine.Command{ID: "prepaid:" + ev.ID, Verb: engine.VerbPrepaid, OrderID: ev.OrderID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx"}}, nil
	}}
	run(t, js, h, workers.LoopConfig{Concurrency: 64})
	for i := range orders {
		for n := range 3 {
			publishEvent(t, js, engine.OrderID(fmt.Sprintf("lane%d", i)), n)
		}
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		if most.Load() < orders {
			return fmt.Errorf("%d events handled at once, want %d (one per order)", most.Load(), orders)
		}
		return nil
	})
	if m := most.Load(); m > orders {
		t.Fatalf("%d events handled at once: one order's events overlapped", m)
	}
	close(release)
	enginetest.WaitFor(t, 10*time.Second, func() error {
		if n := len(got.all()); n < orders*3 {
			return fmt.Errorf("%d of %d commands", n, orders*3)
		}
		return nil
	})
	orderMu.Lock()
	defer orderMu.Unlock()
	for id, evs := range perOrder {
		for n, ev := range evs {
			if want := fmt.Sprintf("evt_%s_%d", id, n); ev != want {
				t.Errorf("order %s handled %v, want evt_…_0, _1, _2 in order", id, evs)
				break
			}
		}
	}
}

// TestLoopSurvivesConsumerLoss: a worker whose consumer is deleted under it
// makes it again and handles the events published meanwhile.
func TestLoopSurvivesConsumerLoss(t *testing.T) {
	_, nc, js := enginetest.StartNATS(t)
	got := commands(t, nc)
	h := &scripted{name: "phoenix", seen: map[string]int{}, do: func(_ int64, ev engine.Event) (*engine.Command, error) {
		return &engine.Command{ID: "prepaid:" + ev.ID, Verb: engine.VerbPrepaid, OrderID: ev.OrderID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx"}}, nil
	}}
	run(t, js, h, workers.LoopConfig{})
	has := func(n int) func() error {
		return func() error {
			if c := len(got.all()); c < n {
				return fmt.Errorf("%d of %d commands", c, n)
			}
			return nil
		}
	}
	publishEvent(t, js, "p1", 1)
	enginetest.WaitFor(t, 10*time.Second, has(1))
	if err := js.DeleteConsumer(context.Background(), engine.EventStream, "phoenix"); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, js, "p2", 1)
	enginetest.WaitFor(t, 15*time.Second, has(2))
}
