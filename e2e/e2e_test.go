package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/cli"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/openapitest"
	"github.com/wxflow/wxflow/internal/stack"
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
	// The shop's pages are on shop.example (the JS-SDK config below).
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn", AppDomains: "shop.example"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 5*time.Second, 5*time.Second
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{DuplicateNotify: true, ReorderNotifyRate: 0.3, ReorderDelay: 300 * time.Millisecond, Seed: 7}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	// Every request of the test to the API, and every answer, is checked
	// against api/openapi.json (the demo's through a checking proxy).
	checked := openapitest.New(t, openapitest.Internal)
	apiURL, apiClient := checked.Proxy(t, st.APIURL), checked.Client(nil)

	results := demo.Run(ctx, demo.Config{Orders: orders, Concurrency: 32, APIURL: apiURL, ShopKey: st.ShopKey, SimURL: st.SimURL, SimClient: st.Sim.Client(), Timeout: 90 * time.Second})
	for _, r := range results {
		if !r.OK() {
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
		backlog, err := st.Store.OutboxBacklog(ctx)
		if err != nil || backlog > 0 {
			return errorf("outbox backlog %d (%v)", backlog, err)
		}
		return nil
	})
	nc, js := connectAs(t, &s, natsauth.Monitor)
	defer nc.Close()
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
	badEvents := 0
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev engine.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		// The event as shops get it (on NATS, and POSTed by webhooks) is
		// the document's Event.
		if err := checked.CheckSchema("Event", msg.Data()); err != nil && badEvents < 3 {
			badEvents++
			t.Error(err)
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
	work, _ := st.Store.CountWork(ctx)
	if eventRows := work.Events; eventRows != len(seen) {
		t.Errorf("%d event rows, %d events in the stream", eventRows, len(seen))
	}
	t.Logf("%d orders, %d events, each once in the stream", orders, len(seen))
	runVerify(t, ctx, s.DataDir, st.NATSURL)

	// The JS-SDK config is signed with the shared jsapi_ticket, fragment dropped.
	var cfg mp.JSSDKConfig
	api := &demo.Client{Base: st.APIURL, HTTP: apiClient, Key: st.ShopKey}
	page := "https://shop.example/pay?order=1#/step/2"
	if err := api.Do(ctx, http.MethodGet, "/v1/jssdk/config?url="+url.QueryEscape(page), nil, &cfg); err != nil {
		t.Fatal(err)
	}
	ticket, err := (&tokens.Reader{AppID: cfg.AppID, NC: nc, JS: js}).JSAPITicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Signature != mp.JSSDKSignature(ticket, cfg.NonceStr, cfg.Timestamp, "https://shop.example/pay?order=1") {
		t.Errorf("wx.config signature does not match the shared ticket: %+v", cfg)
	}

	// The metrics tell the same story.
	resp, err := apiClient.Get(st.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	for _, want := range []string{
		`wxflow_transitions_total{event="notified",from="signed",merchant="default",to="notified"}`,
		`wxflow_transitions_total{event="refunded",from="refunding",merchant="default",to="refunded"}`,
		`wxflow_wechat_calls_total{api="/pay/unifiedorder",host="primary",outcome="2xx"}`,
		`wxflow_wechat_calls_total{api="/v3/pay/transactions/jsapi",host="primary",outcome="2xx"}`,
		`wxflow_wechat_call_seconds_bucket{api="/secapi/pay/refund"`,
		`wxflow_notifications_total{result="accepted"}`,
		`wxflow_outbox_backlog 0`,
		`wxflow_stuck_orders{merchant="default",state="signed"} 0`,
		`wxflow_stuck_orders{merchant="provider-sub1",state="signed"} 0`,
		`wxflow_consumer_pending{consumer="prepay",stream="WXFLOW_EVT"}`,
		`wxflow_stream_fill_ratio{stream="WXFLOW_CMD"}`,
		`wxflow_stream_fill_ratio{stream="WXFLOW_EVT"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func errorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// TestReplayAndReconcile drops every WeChat notification and replays every
// order, again and again, while the demo runs: the reconciler must bring each
// order to its right state by queries, and no replay may pay, refund or
// close twice.
func TestReplayAndReconcile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 500*time.Millisecond, 500*time.Millisecond
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{DropNotifyRate: 1, Seed: 3}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	nc, js := connectAs(t, &s, natsauth.Admin)
	defer nc.Close()

	replayCtx, stopReplays := context.WithCancel(ctx)
	replays := make(chan int)
	go func() {
		n := 0
		defer func() { replays <- n }()
		for replayCtx.Err() == nil {
			orders, _ := st.Store.Orders(replayCtx, engine.OrderFilter{Limit: 1 << 30})
			for _, o := range orders {
				id := o.ID
				c := engine.Command{ID: engine.NewID("replay"), Verb: engine.VerbReplay, Origin: engine.OriginAdmin, OrderID: id, Actor: "admin:test", Reason: "chaos"}
				if _, err := engine.Publish(replayCtx, js, c, nil); err == nil {
					n++
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	results := demo.Run(ctx, demo.Config{Orders: 28, Concurrency: 14, APIURL: st.APIURL, ShopKey: st.ShopKey, SimURL: st.SimURL, SimClient: st.Sim.Client(), Timeout: 60 * time.Second})
	stopReplays()
	t.Logf("%d replays during the run", <-replays)
	for _, r := range results {
		if !r.OK() {
			t.Errorf("order #%d %s (%s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Got, r.Want, r.Err)
			if o, err := st.Store.Order(ctx, r.OrderID); err == nil {
				h, _ := st.Store.History(ctx, r.OrderID)
				t.Logf("order %+v\nhistory %+v", o, h)
			}
		}
	}
	checkLedgers(t, ctx, st, results)
	state := st.Sim.Snapshot()
	for _, d := range state.Notifications {
		if !d.Dropped {
			t.Fatalf("a notification was sent: %+v", d)
		}
	}
	resp, err := http.Get(st.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wxflow_commands_refused_total{code="nothing_to_replay",verb="replay"}`,
		`wxflow_transitions_total{event="query_requested",from="signed",merchant="default",to="signed"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	runVerify(t, ctx, s.DataDir, st.NATSURL)

	// The admin tools see the result: nothing stuck, and each timeline.
	var out strings.Builder
	admin := cli.Root()
	admin.SetOut(&out)
	admin.SetArgs([]string{"admin", "stuck", "--json", "--data", s.DataDir})
	if err := admin.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("stuck orders after the run: %s", out.String())
	}
	out.Reset()
	admin.SetArgs([]string{"admin", "show", string(results[1].OrderID), "--data", s.DataDir})
	if err := admin.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "timeline") || !strings.Contains(out.String(), "admin:test") {
		t.Errorf("show: %s", out.String())
	}
}

// runVerify runs `wxflow verify` on a data folder and fails on any breach.
func runVerify(t *testing.T, ctx context.Context, dataDir, natsURL string) {
	t.Helper()
	var out strings.Builder
	cmd := cli.Root()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"verify", "--data", dataDir, "--nats", natsURL, "--unsent-after", "10s"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("wxflow verify: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no breach") {
		t.Fatalf("wxflow verify: %s", out.String())
	}
}

// checkLedgers compares WeChat's ledger (the simulator's) with wxflow's: the
// orders WeChat was paid for are the ones wxflow counts paid, no refund at
// WeChat exceeds its payment, and each order's refunds agree to the fen.
func checkLedgers(t *testing.T, ctx context.Context, st *stack.Dev, results []demo.Result) {
	t.Helper()
	state := st.Sim.Snapshot()
	refunded := map[string]int64{}
	for _, rf := range state.Refunds {
		refunded[rf.OutTradeNo] += rf.RefundFen
	}
	paidAtWeChat := map[string]bool{}
	for _, o := range state.Orders {
		if refunded[o.OutTradeNo] > o.TotalFen {
			t.Errorf("%s: %d fen refunded of %d", o.OutTradeNo, refunded[o.OutTradeNo], o.TotalFen)
		}
		paidAtWeChat[o.OutTradeNo] = !o.PaidAt.IsZero()
	}
	for _, r := range results {
		o, err := st.Store.Order(ctx, r.OrderID)
		if err != nil {
			t.Errorf("order %s: %v", r.OrderID, err)
			continue
		}
		if paid := o.PaidFen > 0; paid != paidAtWeChat[o.OutTradeNo] {
			t.Errorf("order %s: wxflow paid=%v (%d fen), WeChat paid=%v", o.ID, paid, o.PaidFen, paidAtWeChat[o.OutTradeNo])
		}
		if refunded[o.OutTradeNo] != o.RefundedFen {
			t.Errorf("order %s: wxflow says %d fen refunded, WeChat %d", o.ID, o.RefundedFen, refunded[o.OutTradeNo])
		}
	}
}
