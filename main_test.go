package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestEndToEnd runs 200 orders through every path of the lifecycle, mixed
// v2/v3, JSAPI/mini-program, openid/OAuth code/login code, against the
// simulator over real HTTPS, a real embedded NATS and a real SQLite file,
// with every notification duplicated and some reordered. It then checks
// every final state, every history, and that each event is in the stream
// exactly once.
func TestEndToEnd(t *testing.T) {
	orders := 200
	if testing.Short() {
		orders = 28
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", LogLevel: "warn"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, g, err := startDev(ctx, &s, devOptions{NATSPort: -1, SimAddr: "127.0.0.1:0", TimeScale: 0.01,
		Expiry: 200 * time.Millisecond, Reconcile: 5 * time.Second, Faults: sim.Faults{DuplicateNotify: true, ReorderNotifyRate: 0.3, ReorderDelay: 300 * time.Millisecond, Seed: 7}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = g.Wait() })

	results := runDemo(ctx, demoConfig{Orders: orders, Concurrency: 32, APIURL: st.APIURL, SimURL: st.SimURL, SimClient: st.SimClient, Timeout: 90 * time.Second})
	for _, r := range results {
		if !r.ok() {
			t.Errorf("order #%d %s (%s %s %s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Client, r.Auth, r.Got, r.Want, r.Err)
		}
	}
	if t.Failed() {
		return
	}

	// Every history is a chain of allowed moves with contiguous sequence numbers.
	rows := map[engine.OrderID]int{}
	for _, r := range results {
		h, err := st.Store.History(ctx, r.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		var seq int64
		state := engine.State("")
		paidEvents := 0
		for _, e := range h {
			if !e.Applied {
				continue
			}
			seq++
			if e.Seq != seq || e.From != state && e.Type != string(engine.EventCreated) {
				t.Errorf("order %s: entry %+v breaks the chain at seq %d from %s", r.OrderID, e, seq, state)
			}
			state = e.To
			if e.Type == string(engine.EventNotified) {
				paidEvents++
			}
		}
		rows[r.OrderID] = int(seq)
		if state != r.Want {
			t.Errorf("order %s: history ends in %s, want %s", r.OrderID, state, r.Want)
		}
		if paid := r.Want != engine.Closed; paid != (paidEvents == 1) || paidEvents > 1 {
			t.Errorf("order %s (%s): %d notified events", r.OrderID, r.Scenario, paidEvents)
		}
	}

	// Every event row is in the stream exactly once: none lost, none doubled.
	enginetest.WaitFor(t, 10*time.Second, func() error {
		var backlog int
		if err := st.Store.DB().Get(&backlog, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL"); err != nil || backlog > 0 {
			return errorf("outbox backlog %d (%v)", backlog, err)
		}
		return nil
	})
	nc, err := nats.Connect(s.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	inStream := map[engine.OrderID]int{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev engine.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if seen[ev.ID] {
			t.Errorf("event %s is twice in the stream", ev.ID)
		}
		seen[ev.ID] = true
		inStream[ev.OrderID]++
	}
	for id, n := range rows {
		if inStream[id] != n {
			t.Errorf("order %s: %d events in the store, %d in the stream", id, n, inStream[id])
		}
	}
	var eventRows int
	st.Store.DB().Get(&eventRows, "SELECT COUNT(*) FROM order_events")
	if eventRows != len(seen) {
		t.Errorf("%d event rows, %d events in the stream", eventRows, len(seen))
	}
	t.Logf("%d orders, %d events, each once in the stream", orders, len(seen))

	// The JS-SDK config is signed with the shared jsapi_ticket, fragment dropped.
	var cfg mp.JSSDKConfig
	api := &jsonClient{base: st.APIURL, http: http.DefaultClient}
	page := "https://shop.example/pay?order=1#/step/2"
	if err := api.do(ctx, http.MethodGet, "/v1/jssdk/config?url="+url.QueryEscape(page), nil, &cfg); err != nil {
		t.Fatal(err)
	}
	ticket, err := (&tokens.Reader{AppID: cfg.AppID, NC: nc, JS: js}).JSAPITicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Signature != mp.JSSDKSignature(ticket, cfg.NonceStr, cfg.Timestamp, "https://shop.example/pay?order=1") {
		t.Errorf("wx.config signature does not match the shared ticket: %+v", cfg)
	}
}

func errorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}
