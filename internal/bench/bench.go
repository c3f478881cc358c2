// Package bench measures wxflow: orders per second and the latency of each
// transition of the whole lifecycle against the simulator, beside the raw
// ceiling of the same NATS and database (docs/PERFORMANCE.md). `wxflow bench`
// prints its [Report].
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// Report is what `wxflow bench --json` prints. Durations are in
// milliseconds; rates per second.
type Report struct {
	Preloaded   int     `json:"preloaded"`    // orders in the table before the run
	Orders      int     `json:"orders"`       // orders driven through create → … → notified
	Refunded    int     `json:"refunded"`     // of which refunded in full afterwards
	Concurrency int     `json:"concurrency"`  // orders in flight at once
	PayAPI      string  `json:"pay_api"`      // v2, v3 or mixed
	Seconds     float64 `json:"seconds"`      // wall time of the engine run
	OrdersPerS  float64 `json:"orders_per_s"` // whole lifecycles per second
	// Latency of each transition (time between the events), and of create →
	// notified, keyed FROM_TO in plain ASCII (created_notified).
	Latency map[string]Percentiles `json:"latency_ms"`
	// WeChatCallsPerOrder counts every HTTP call to the simulator per order.
	WeChatCallsPerOrder float64 `json:"wechat_calls_per_order"`
	PeakRSSMiB          float64 `json:"peak_rss_mib"`
	// RSSMiB samples the resident memory every 10 s of the run: flat means no growth per order.
	RSSMiB []float64 `json:"rss_mib"`
	// HeapMiB samples the Go heap live after the last GC, at the same moments:
	// RSS keeps pages the runtime has not returned yet; this does not.
	HeapMiB     []float64 `json:"heap_mib"`
	DBBytes     int64     `json:"db_bytes"`
	StreamBytes uint64    `json:"stream_bytes"` // the events stream
	// The ceiling: as many SQL transactions (SQLite or PostgreSQL) as the
	// engine committed with events, of the same shape (an upsert and two
	// INSERTs), and two JetStream publish+consume round trips per event
	// (event to a worker, command back), as many at once, with no engine
	// logic; its orders/s is orders ÷ (SQL time + NATS time).
	Ceiling struct {
		Transactions   int     `json:"transactions"`
		SQLSeconds     float64 `json:"sql_seconds"`
		RoundTrips     int     `json:"round_trips"`
		NATSSeconds    float64 `json:"nats_seconds"`
		OrdersPerS     float64 `json:"orders_per_s"`
		EventsPerOrder float64 `json:"events_per_order"`
	} `json:"ceiling"`
	// Ratio = engine orders/s ÷ ceiling orders/s: the headline figure.
	Ratio float64 `json:"ratio"`
}

type Options struct {
	Orders, Concurrency, RefundEvery, Preload int
	PayAPI, DataDir, MemProfile               string
	NATSURL, DBURL                            string // a running NATS and database; empty: embedded NATS, SQLite in DataDir
	Progress                                  bool
}

// benchEvent is what the bench reads of each event: decoding the order
// snapshot too would count the bench's own work against wxflow.
type benchEvent struct {
	Type    engine.EventType `json:"type"`
	OrderID engine.OrderID   `json:"order_id"`
	At      time.Time        `json:"at"`
}

// Run starts the dev stack (the simulator's payer pays at once), drives
// the orders, then measures the ceiling on the same data folder.
func Run(ctx context.Context, o Options) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// No NATS users: the ceiling declares a stream of its own, which no
	// role of a deployment may (the permission checks cost little: the
	// server caches them per subject).
	s := stack.Settings{DataDir: o.DataDir, HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", DBURL: o.DBURL, NATSNoAuth: true,
		ExpiryInterval: time.Second, ReconcilePaymentAfter: time.Hour, ReconcileRefundAfter: time.Hour}
	if o.Preload > 0 {
		s.Resolve()
		if err := preload(ctx, s.DBURL, o.Preload); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, NATSURL: o.NATSURL, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.001, Retain: 10_000}}, log)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); _ = st.Wait() }()
	nc, _, err := stack.ConnectNATS(ctx, &s, natsauth.Monitor, false, log)
	if err != nil {
		return nil, err
	}
	defer nc.Close()

	// Every event, as it is published, tells a waiting order to go on.
	type track struct {
		mu     sync.Mutex
		at     map[engine.EventType]time.Time
		events chan benchEvent
	}
	var tracksMu sync.Mutex
	tracks := map[engine.OrderID]*track{}
	trackOf := func(id engine.OrderID) *track {
		tracksMu.Lock()
		defer tracksMu.Unlock()
		tr, ok := tracks[id]
		if !ok {
			tr = &track{at: map[engine.EventType]time.Time{}, events: make(chan benchEvent, 16)}
			tracks[id] = tr
		}
		return tr
	}
	sub, err := nc.Subscribe("wxflow.evt.>", func(m *nats.Msg) {
		var ev benchEvent
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		tr := trackOf(ev.OrderID)
		tr.mu.Lock()
		if _, seen := tr.at[ev.Type]; !seen {
			tr.at[ev.Type] = ev.At
		}
		tr.mu.Unlock()
		select {
		case tr.events <- ev:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()

	calls := func() float64 {
		mfs, _ := st.Conns.Metrics.Registry.Gather()
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "wxflow_wechat_calls_total" {
				for _, m := range mf.GetMetric() {
					total += m.GetCounter().GetValue()
				}
			}
		}
		return total
	}
	callsBefore := calls()
	// Only this run's events count: a running deployment's database holds others.
	// A transaction that wrote events wrote them under one command id.
	before, err := st.Store.CountWork(ctx)
	if err != nil {
		return nil, err
	}

	var bar *mpb.Bar
	var progress *mpb.Progress
	if o.Progress {
		progress = mpb.New(mpb.WithOutput(os.Stderr))
		bar = progress.AddBar(int64(o.Orders), mpb.PrependDecorators(decor.Name("orders "), decor.CountersNoUnit("%d/%d")),
			mpb.AppendDecorators(decor.AverageSpeed(0, "%.0f/s")))
	}
	api := &demo.Client{Base: st.APIURL, Key: st.ShopKey, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	payer := &demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}
	lat := map[string]*histogram{}
	var latMu sync.Mutex
	var refunded atomic.Int64
	waitFor := func(ctx context.Context, tr *track, t engine.EventType) error {
		for {
			tr.mu.Lock()
			_, done := tr.at[t]
			tr.mu.Unlock()
			if done {
				return nil
			}
			select {
			case ev := <-tr.events:
				if ev.Type == engine.EventFailed || ev.Type == engine.EventClosed {
					return fmt.Errorf("order %s ended %s", ev.OrderID, ev.Type)
				}
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	var rssMu sync.Mutex
	var rss, heap []float64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				rssMu.Lock()
				rss = append(rss, procStatusMiB("VmRSS:"))
				heap = append(heap, heapLiveMiB())
				rssMu.Unlock()
			}
		}
	}()
	start := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(o.Concurrency)
	for i := range o.Orders {
		eg.Go(func() error {
			payAPI := o.PayAPI
			if payAPI == "mixed" {
				payAPI = []string{"v2", "v3"}[i%2]
			}
			var created struct{ Order engine.Order }
			body := map[string]any{"amount_fen": 100 + i%900, "description": "bench", "openid": "oBENCH-" + strconv.Itoa(i), "pay_api": payAPI}
			if err := api.Do(ectx, http.MethodPost, "/v1/orders", body, &created); err != nil {
				return err
			}
			id := created.Order.ID
			tr := trackOf(id)
			defer func() { tracksMu.Lock(); delete(tracks, id); tracksMu.Unlock() }()
			if err := waitFor(ectx, tr, engine.EventSigned); err != nil {
				return err
			}
			o2, err := st.Store.Order(ectx, id)
			if err != nil {
				return err
			}
			if err := payer.Do(ectx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": o2.PrepayID}, nil); err != nil {
				return err
			}
			if err := waitFor(ectx, tr, engine.EventNotified); err != nil {
				return err
			}
			if o.RefundEvery > 0 && i%o.RefundEvery == 0 {
				if err := api.Do(ectx, http.MethodPost, "/v1/orders/"+string(id)+"/refunds", map[string]any{"amount_fen": o2.AmountFen}, nil); err != nil {
					return err
				}
				if err := waitFor(ectx, tr, engine.EventRefunded); err != nil {
					return err
				}
				refunded.Add(1)
			}
			tr.mu.Lock()
			at := tr.at
			latMu.Lock()
			for _, step := range [][2]engine.EventType{{engine.EventCreated, engine.EventAuthorized}, {engine.EventAuthorized, engine.EventPrepaid},
				{engine.EventPrepaid, engine.EventSigned}, {engine.EventSigned, engine.EventNotified}, {engine.EventCreated, engine.EventNotified},
				{engine.EventRefunding, engine.EventRefunded}} {
				a, okA := at[step[0]]
				b, okB := at[step[1]]
				if okA && okB {
					name := string(step[0]) + "_" + string(step[1]) // plain ASCII: jq reads .latency_ms.created_notified
					if lat[name] == nil {
						lat[name] = &histogram{}
					}
					lat[name].add(b.Sub(a))
				}
			}
			latMu.Unlock()
			tr.mu.Unlock()
			if bar != nil {
				bar.Increment()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	took := time.Since(start)
	stopSampling()
	if o.MemProfile != "" {
		runtime.GC()
		if f, err := os.Create(o.MemProfile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if progress != nil {
		progress.Wait()
	}
	rep := &Report{Preloaded: o.Preload, Orders: o.Orders, Refunded: int(refunded.Load()), Concurrency: o.Concurrency, PayAPI: o.PayAPI,
		Seconds: took.Seconds(), OrdersPerS: float64(o.Orders) / took.Seconds(), Latency: map[string]Percentiles{}}
	for k, v := range lat {
		rep.Latency[k] = v.percentiles()
	}
	rep.WeChatCallsPerOrder = (calls() - callsBefore) / float64(o.Orders)
	rep.PeakRSSMiB = procStatusMiB("VmHWM:")
	rssMu.Lock()
	rep.RSSMiB, rep.HeapMiB = rss, heap
	rssMu.Unlock()
	rep.DBBytes = databaseBytes(ctx, st.Store, s.DBURL)
	js, _ := jetstream.New(nc)
	if stream, err := js.Stream(ctx, engine.EventStream); err == nil {
		if info, err := stream.Info(ctx); err == nil {
			rep.StreamBytes = info.State.Bytes
		}
	}
	after, err := st.Store.CountWork(ctx)
	if err != nil {
		return nil, err
	}
	events, txs := after.Events-before.Events, after.Transactions-before.Transactions
	rep.Ceiling.EventsPerOrder = float64(events) / float64(o.Orders)
	if err := measureCeiling(ctx, rep, st.Store, js, txs, events, o.Concurrency); err != nil {
		return nil, err
	}
	rep.Ratio = rep.OrdersPerS / rep.Ceiling.OrdersPerS
	return rep, nil
}

// heapLiveMiB is the Go heap marked live by the last garbage collection.
func heapLiveMiB() float64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(sample[0].Value.Uint64()) / (1 << 20)
}

// procStatusMiB reads a memory line of /proc/self/status (Linux): VmHWM:
// is the peak resident memory, VmRSS: the current one.
func procStatusMiB(field string) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
