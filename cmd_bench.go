package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/engine"
)

// BenchReport is what `wxflow bench --json` prints. Durations are in
// milliseconds; rates per second.
type BenchReport struct {
	Preloaded   int     `json:"preloaded"`    // orders in the table before the run
	Orders      int     `json:"orders"`       // orders driven through create → … → notified
	Refunded    int     `json:"refunded"`     // of which refunded in full afterwards
	Concurrency int     `json:"concurrency"`  // orders in flight at once
	PayAPI      string  `json:"pay_api"`      // v2, v3 or mixed
	Seconds     float64 `json:"seconds"`      // wall time of the engine run
	OrdersPerS  float64 `json:"orders_per_s"` // whole lifecycles per second
	// Latency of each transition (time between the events), and of create → notified.
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

// Percentiles of one latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// histogram counts durations in buckets 1% wide from 1 µs up, so that a run
// of any length measures its percentiles in constant memory (a slice of
// every sample grew the bench's own heap by 48 bytes per order), each within
// 1% of the exact one.
type histogram struct {
	counts []uint64
	n      int
	max    time.Duration
}

const histogramGrowth = 1.01 // each bucket's upper bound over its lower one

func (h *histogram) add(d time.Duration) {
	us := max(float64(d)/float64(time.Microsecond), 1)
	i := int(math.Log(us) / math.Log(histogramGrowth))
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// percentiles reports each quantile as the upper bound of its bucket (never
// above the largest duration seen), in milliseconds.
func (h *histogram) percentiles() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	maxMS := float64(h.max.Microseconds()) / 1000
	at := func(q float64) float64 {
		rank := uint64(math.Ceil(q * float64(h.n)))
		var seen uint64
		for i, c := range h.counts {
			if seen += c; seen >= rank {
				us := min(math.Pow(histogramGrowth, float64(i+1)), float64(h.max.Microseconds()))
				return math.Round(us) / 1000
			}
		}
		return maxMS
	}
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: maxMS, N: h.n}
}

func benchCommand() *cobra.Command {
	var orders, concurrency, refundEvery, preload int
	var payAPI string
	var asJSON bool
	var dataDir, cpuProfile, memProfile, natsURL, dbURL string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure orders/s and transition latency of the whole lifecycle against the simulator, beside the raw ceiling of NATS and SQLite",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				dir, err := os.MkdirTemp("", "wxflow-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				dataDir = dir
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := runBench(cmd.Context(), benchOptions{Orders: orders, Concurrency: concurrency, PayAPI: payAPI,
				RefundEvery: refundEvery, DataDir: dataDir, Progress: !asJSON && isTerminal(os.Stderr), Preload: preload,
				MemProfile: memProfile, NATSURL: natsURL, DBURL: dbURL})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(rep)
			}
			printBench(out, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&orders, "orders", 1000, "orders to run through the lifecycle")
	f.IntVar(&concurrency, "concurrency", 32, "orders in flight at once")
	f.StringVar(&payAPI, "pay-api", "mixed", "v2, v3 or mixed")
	f.IntVar(&refundEvery, "refund-every", 5, "refund every Nth order in full after payment (0: none)")
	f.IntVar(&preload, "preload", 0, "first fill the orders table with this many paid orders (and one event each)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (fields in docs/PERFORMANCE.md)")
	f.StringVar(&dataDir, "data", "", "data folder (default: a temporary one, removed afterwards)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run here")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile taken at the end of the run here")
	f.StringVar(&natsURL, "nats", "", "run against this NATS server (or comma-separated cluster) instead of an embedded one; the ceiling is measured on it too")
	f.StringVar(&dbURL, "db", "", "run against this database (sqlite:PATH or postgres://…) instead of SQLite in the data folder; the ceiling is measured on it too")
	return cmd
}

type benchOptions struct {
	Orders, Concurrency, RefundEvery, Preload int
	PayAPI, DataDir, MemProfile               string
	NATSURL, DBURL                            string // a running NATS and database; empty: embedded NATS, SQLite in DataDir
	Progress                                  bool
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// benchEvent is what the bench reads of each event: decoding the order
// snapshot too would count the bench's own work against wxflow.
type benchEvent struct {
	Type    engine.EventType `json:"type"`
	OrderID engine.OrderID   `json:"order_id"`
	At      time.Time        `json:"at"`
}

// runBench starts the dev stack (the simulator's payer pays at once), drives
// the orders, then measures the ceiling on the same data folder.
func runBench(ctx context.Context, o benchOptions) (*BenchReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := settings{DataDir: o.DataDir, HTTPAddr: "127.0.0.1:0", DBURL: o.DBURL}
	if o.Preload > 0 {
		s.resolve()
		if err := preloadOrders(ctx, s.DBURL, o.Preload); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, g, err := startDev(ctx, &s, devOptions{NATSPort: -1, NATSURL: o.NATSURL, SimAddr: "127.0.0.1:0", TimeScale: 0.001,
		Expiry: time.Second, Reconcile: time.Hour, SimRetain: 10_000}, log)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); _ = g.Wait() }()
	nc, err := nats.Connect(s.NATSURL)
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
		mfs, _ := st.API.Metrics().Registry.Gather()
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
	api := &jsonClient{base: st.APIURL, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	sim := &jsonClient{base: st.SimURL, http: st.SimClient}
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
			if err := api.do(ectx, http.MethodPost, "/v1/orders", body, &created); err != nil {
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
			if err := sim.do(ectx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": o2.PrepayID}, nil); err != nil {
				return err
			}
			if err := waitFor(ectx, tr, engine.EventNotified); err != nil {
				return err
			}
			if o.RefundEvery > 0 && i%o.RefundEvery == 0 {
				if err := api.do(ectx, http.MethodPost, "/v1/orders/"+string(id)+"/refunds", map[string]any{"amount_fen": o2.AmountFen}, nil); err != nil {
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
					name := string(step[0]) + "→" + string(step[1])
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
	rep := &BenchReport{Preloaded: o.Preload, Orders: o.Orders, Refunded: int(refunded.Load()), Concurrency: o.Concurrency, PayAPI: o.PayAPI,
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

// measureCeiling runs the parts alone: SQL transactions of the same shape
// as Apply's, and JetStream publish+consume round trips.
func measureCeiling(ctx context.Context, rep *BenchReport, store *engine.Store, js jetstream.JetStream, txs, events, conc int) error {
	sqlTime, err := store.MeasureSQLCeiling(ctx, txs, conc) // the same shape as Apply's, in tables of its own
	if err != nil {
		return fmt.Errorf("ceiling, SQL: %w", err)
	}
	rep.Ceiling.Transactions, rep.Ceiling.SQLSeconds = txs, sqlTime.Seconds()

	trips := 2 * events
	_ = js.DeleteStream(ctx, "BENCH_CEILING") // left by a run that was stopped
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_CEILING", Subjects: []string{"bench.ceiling"}, Storage: jetstream.FileStorage}); err != nil {
		return err
	}
	defer js.DeleteStream(context.Background(), "BENCH_CEILING")
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH_CEILING", jetstream.ConsumerConfig{Durable: "ceiling", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(trips) {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	start := time.Now()
	pg, pctx := errgroup.WithContext(ctx)
	pg.SetLimit(conc)
	data := []byte(strings.Repeat("x", 1200))
	for i := range trips {
		pg.Go(func() error {
			_, err := js.Publish(pctx, "bench.ceiling", data, jetstream.WithMsgID(fmt.Sprintf("c%d", i)))
			return err
		})
	}
	if err := pg.Wait(); err != nil {
		return fmt.Errorf("ceiling, NATS: %w", err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("ceiling, NATS: %d of %d consumed", got.Load(), trips)
	}
	rep.Ceiling.RoundTrips, rep.Ceiling.NATSSeconds = trips, time.Since(start).Seconds()
	rep.Ceiling.OrdersPerS = float64(rep.Orders) / (rep.Ceiling.SQLSeconds + rep.Ceiling.NATSSeconds)
	return nil
}

// databaseBytes is the database's size on disk: the SQLite file with its
// write-ahead log, or PostgreSQL's pg_database_size; 0 when unknown.
func databaseBytes(ctx context.Context, store *engine.Store, dbURL string) int64 {
	if store.Dialect() == engine.Postgres { // engine.Open chose PostgreSQL for this URL
		n, _ := store.DatabaseSize(ctx)
		return n
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(dbURL, "sqlite:"), "?")
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
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

func printBench(w io.Writer, r *BenchReport) {
	fmt.Fprintf(w, "%d orders (%d refunded), concurrency %d, pay API %s, %d preloaded: %.1f orders/s (%.2f s)\n",
		r.Orders, r.Refunded, r.Concurrency, r.PayAPI, r.Preloaded, r.OrdersPerS, r.Seconds)
	keys := make([]string, 0, len(r.Latency))
	for k := range r.Latency {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "latency (ms)            p50     p90     p99     max")
	for _, k := range keys {
		p := r.Latency[k]
		fmt.Fprintf(w, "  %-20s %7.1f %7.1f %7.1f %7.1f\n", k, p.P50, p.P90, p.P99, p.Max)
	}
	fmt.Fprintf(w, "WeChat calls per order %.2f, peak RSS %.0f MiB, DB %.1f MiB, event stream %.1f MiB\n",
		r.WeChatCallsPerOrder, r.PeakRSSMiB, float64(r.DBBytes)/(1<<20), float64(r.StreamBytes)/(1<<20))
	if n := len(r.HeapMiB); n > 0 {
		fmt.Fprintf(w, "memory every 10 s: RSS %.0f → %.0f MiB, Go heap live %.0f → %.0f MiB (%d samples)\n",
			r.RSSMiB[0], r.RSSMiB[n-1], r.HeapMiB[0], r.HeapMiB[n-1], n)
	}
	fmt.Fprintf(w, "ceiling: %d SQL transactions in %.2f s + %d JetStream round trips in %.2f s = %.1f orders/s\n",
		r.Ceiling.Transactions, r.Ceiling.SQLSeconds, r.Ceiling.RoundTrips, r.Ceiling.NATSSeconds, r.Ceiling.OrdersPerS)
	fmt.Fprintf(w, "ratio = engine orders/s ÷ ceiling orders/s = %.2f\n", r.Ratio)
}

// preloadOrders fills the store with n paid orders and one event each, in
// batches of 10,000 rows per transaction.
func preloadOrders(ctx context.Context, dsn string, n int) error {
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	return store.PreloadPaidOrders(ctx, n)
}
