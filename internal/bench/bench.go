// Package bench measures wxflow: the CPU time its own processes spend per
// order, orders per second and the latency of each transition of the whole
// lifecycle against the simulator (serving the dev merchants; the orders
// spread round-robin over those that take orders), beside a ceiling
// measured in the same run on the same NATS and database
// (docs/PERFORMANCE.md). `wxflow bench` prints its [Report].
//
// wxflow runs as the processes of a deployment, each a subcommand of the
// wxflow binary started by the bench: `wxflow nats`, `wxflow engine`,
// `wxflow api` and `wxflow worker` (all kinds in one process, or one process
// per kind). The simulator and the driver (the shop creating orders, its
// payers paying) run in the bench's own process, so their CPU is not
// counted as wxflow's. The bench reads each child's CPU time (user +
// system) from /proc before and after the run: Linux only.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// Report is what `wxflow bench --json` prints. Durations are in
// milliseconds, rates per second, CPU in milliseconds of CPU time (user +
// system) per order driven through the lifecycle.
type Report struct {
	Preloaded   int     `json:"preloaded"`                     // orders in the table before the run
	Orders      int     `json:"orders"`                        // orders driven through create → … → notified
	Refunded    int     `json:"refunded"`                      // of which refunded in full afterwards
	Warmup      int     `json:"warmup"`                        // orders run first, not measured
	Concurrency int     `json:"concurrency"`                   // orders in flight at most
	PayAPI      string  `json:"pay_api"`                       // v2, v3 or mixed
	TargetRate  float64 `json:"target_orders_per_s,omitempty"` // orders started per second, when paced
	Workers     string  `json:"workers"`                       // all: one worker process; each: one per kind
	Engines     int     `json:"engines"`                       // engine processes
	// Merchants are the merchants the orders went to, round-robin (two
	// orders in a row each: a v2 and a v3 one when mixed), and
	// OrdersByMerchant how many of the measured orders each had.
	Merchants        []string       `json:"merchants"`
	OrdersByMerchant map[string]int `json:"orders_by_merchant"`
	Seconds          float64        `json:"seconds"`      // wall time of the measured run
	OrdersPerS       float64        `json:"orders_per_s"` // whole lifecycles per second
	// Latency of each transition (time between the events' commits), and of
	// created → notified, keyed FROM_TO in plain ASCII (created_notified).
	Latency map[string]Percentiles `json:"latency_ms"`

	// CPUMSPerOrder is wxflow's CPU per order: its engine, API and worker
	// processes together, the NATS server apart.
	CPUMSPerOrder float64 `json:"cpu_ms_per_order"`
	// CPUMSPerOrderByKind is the same by process kind (engine, api,
	// workers), and the NATS server's (nats) when the bench started it.
	CPUMSPerOrderByKind map[string]float64 `json:"cpu_ms_per_order_by_kind"`
	// DriverCPUMSPerOrder is the bench's own process, the simulator and the
	// driver: not wxflow's, given to show what the machine spent besides.
	DriverCPUMSPerOrder float64 `json:"driver_cpu_ms_per_order"`
	// Processes are the children, each with its CPU time in the run.
	Processes []Process `json:"processes"`
	// IdleCPUMSPerS is each process kind's CPU with no order in flight, in
	// ms per second, measured for IdleSeconds after the warm-up: the
	// tickers, pulls and heartbeats every order pays a share of, the
	// larger the slower the orders come.
	IdleCPUMSPerS map[string]float64 `json:"idle_cpu_ms_per_s"`
	IdleSeconds   float64            `json:"idle_s"`

	// WeChatCallsPerOrder counts every HTTP call to the simulator per order.
	WeChatCallsPerOrder float64 `json:"wechat_calls_per_order"`
	// PeakRSSMiB is each process kind's peak resident memory (VmHWM).
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"`
	// Intervals sample the run every 10 s: flat CPU per order and latency
	// over a long run mean no cost grows with the orders done.
	Intervals   []Interval `json:"intervals"`
	DBBytes     int64      `json:"db_bytes"`
	StreamBytes uint64     `json:"stream_bytes"` // the events stream

	// Ceiling is the unavoidable work of the same orders, measured in the
	// same run on the same NATS and database.
	Ceiling Ceiling `json:"ceiling"`
	// Ratio = ceiling CPU per order ÷ wxflow's CPU per order: the headline
	// figure (1 would be wxflow spending nothing beyond what it must).
	Ratio float64 `json:"ratio"`
	// RatioWithNATS counts the NATS server's CPU on both sides (during the
	// run, and during the ceiling's round trips); 0 when NATS was not the bench's.
	RatioWithNATS float64 `json:"ratio_with_nats"`

	// Signer is the merchant's RSA signer of this build: go (crypto/rsa) or
	// openssl (built with -tags openssl).
	Signer     string     `json:"rsa_signer"`
	ClockTicks int64      `json:"clock_ticks_per_s"` // the unit of /proc's CPU times (AT_CLKTCK)
	LoadAvg    [2]float64 `json:"load_avg"`          // the machine's 1-minute load average at the start and the end
	Warnings   []string   `json:"warnings,omitempty"`
}

// Process is one child of the run.
type Process struct {
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_s"` // in the measured run
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// Interval is one sample of a run: what happened since the previous one.
type Interval struct {
	At             float64 `json:"at_s"`   // since the start of the run
	Orders         int64   `json:"orders"` // finished in the interval
	OrdersPerS     float64 `json:"orders_per_s"`
	CPUMSPerOrder  float64 `json:"cpu_ms_per_order"` // wxflow's (engine, api, workers)
	NATSMSPerOrder float64 `json:"nats_cpu_ms_per_order"`
	// CreatedNotified is the created → notified latency of the orders
	// finished in the interval.
	CreatedNotified Percentiles        `json:"created_notified_ms"`
	RSSMiB          map[string]float64 `json:"rss_mib"` // by process kind, at the sample
}

// Ceiling is the merchant-side work WeChat's protocol makes unavoidable for
// the run's orders (signatures, verifications, decryptions, XML and JSON),
// the SQL transactions and the JetStream round trips their lifecycle
// needs, done without HTTP and without wxflow's engine, in a process of
// its own (`wxflow bench ceiling`) that reads its own CPU time (getrusage).
type Ceiling struct {
	CPUMSPerOrder         float64 `json:"cpu_ms_per_order"` // the three parts together
	ProtocolCPUMSPerOrder float64 `json:"protocol_cpu_ms_per_order"`
	SQLCPUMSPerOrder      float64 `json:"sql_cpu_ms_per_order"`
	NATSCPUMSPerOrder     float64 `json:"nats_cpu_ms_per_order"` // the client's side of the round trips
	// NATSServerCPUMSPerOrder is the NATS server's CPU during the round trips.
	NATSServerCPUMSPerOrder float64        `json:"nats_server_cpu_ms_per_order"`
	Transactions            int            `json:"transactions"`
	RoundTrips              int            `json:"round_trips"`
	EventsPerOrder          float64        `json:"events_per_order"`
	ProtocolSeconds         float64        `json:"protocol_s"`
	SQLSeconds              float64        `json:"sql_s"`
	NATSSeconds             float64        `json:"nats_s"`
	Counts                  protocolCounts `json:"protocol_ops"` // what the protocol part did, over all orders
}

// ErrEnginesNeedPostgres: several engines share a PostgreSQL store (they
// take turns at the relay there); on SQLite a deployment has one engine.
var ErrEnginesNeedPostgres = errors.New("bench: several engines need PostgreSQL (--db postgres://…): on SQLite a deployment runs one engine")

// Options of a run. Executable and DataDir are required.
type Options struct {
	Orders, Concurrency, RefundEvery, Preload int
	// Warmup orders run before the measure begins (connections, caches,
	// consumers); 0: max(Concurrency, 10).
	Warmup int
	// Rate, when positive, starts orders at this many per second (at most
	// Concurrency in flight) instead of as fast as Concurrency allows.
	Rate    float64
	PayAPI  string // v2, v3 or mixed
	DataDir string // the run's folder: SQLite, NATS, keys, the children's logs
	// NATSURL and DBURL name a running NATS and database; empty: a `wxflow
	// nats` child, and SQLite in DataDir. A NATS of its own is not measured.
	NATSURL, DBURL string
	// Workers is "all" (one `wxflow worker all`, the default) or "each"
	// (one process per worker kind, as the Procfile runs them).
	Workers string
	// Engines is how many `wxflow engine` processes run (sharing the
	// command stream, taking turns at the relay); 0: one. More than one
	// needs PostgreSQL (ErrEnginesNeedPostgres).
	Engines int
	// Merchants is how many merchants the orders spread over, round-robin:
	// the first of OrderMerchants(); 0: all of them. The simulator always
	// serves every dev merchant, and the bench's shop acts for all.
	Merchants int
	// Executable is the wxflow binary the children run (os.Executable for
	// `wxflow bench`); Env is added to their environment.
	Executable string
	Env        []string
	// ProfileDir, when set, gets each child's CPU profile of the measured
	// run (<name>.cpu.prof) and a heap profile at its end (<name>.heap.prof).
	ProfileDir string
	// Interval between samples; 0: 10 s.
	Interval time.Duration
	// Idle is how long the processes are watched with no order in flight,
	// after the warm-up; 0: 3 s.
	Idle     time.Duration
	Progress bool // draw a progress bar on stderr
}

// ErrMerchants reports an Options.Merchants beyond the dev merchants that take orders.
var ErrMerchants = errors.New("bench: merchants")

// OrderMerchants are the merchants of the simulator's dev set
// (sim.DevMerchants) that take orders, in its order: two direct merchants
// and two sub-merchants of one provider (the provider takes none).
// Options.Merchants takes the first of them.
func OrderMerchants() []string {
	var out []string
	for _, sp := range sim.DevMerchants() {
		if sp.Kind != wechat.MerchantProvider {
			out = append(out, sp.Name)
		}
	}
	return out
}

func (o *Options) check() error {
	switch {
	case o.Executable == "" || o.DataDir == "":
		return errors.New("bench: Executable and DataDir are required")
	case o.Orders < 1 || o.Concurrency < 1 || o.Preload < 0 || o.RefundEvery < 0 || o.Rate < 0 || o.Warmup < 0 || o.Engines < 0:
		return errors.New("bench: orders and concurrency must be positive; preload, refund-every, rate, warmup and engines not negative")
	case o.Merchants < 0 || o.Merchants > len(OrderMerchants()):
		return fmt.Errorf("%w: %d, want 1 to %d", ErrMerchants, o.Merchants, len(OrderMerchants()))
	case o.PayAPI != "v2" && o.PayAPI != "v3" && o.PayAPI != "mixed":
		return fmt.Errorf("bench: pay API %q: want v2, v3 or mixed", o.PayAPI)
	case o.Workers != "" && o.Workers != "all" && o.Workers != "each":
		return fmt.Errorf("bench: workers %q: want all or each", o.Workers)
	case o.Engines > 1 && !strings.HasPrefix(o.DBURL, "postgres://") && !strings.HasPrefix(o.DBURL, "postgresql://"):
		return ErrEnginesNeedPostgres
	}
	return nil
}

// Run starts the deployment's processes, drives the warm-up and then the
// measured orders, stops the deployment, runs the ceiling on the same NATS
// and database, and stops NATS. Every child is stopped whatever happens
// (and killed by the kernel if the bench dies first).
func Run(ctx context.Context, o Options) (*Report, error) {
	if errUnsupported != nil {
		return nil, errUnsupported
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	o.Workers, o.Engines, o.Merchants = cmp.Or(o.Workers, "all"), cmp.Or(o.Engines, 1), cmp.Or(o.Merchants, len(OrderMerchants()))
	if o.Warmup == 0 {
		o.Warmup = max(o.Concurrency, 10)
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 3 * time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &run{o: o, hz: clockTicks(), rep: &Report{Preloaded: o.Preload, Orders: o.Orders, Warmup: o.Warmup, Concurrency: o.Concurrency,
		PayAPI: o.PayAPI, TargetRate: o.Rate, Workers: o.Workers, Engines: o.Engines, Merchants: OrderMerchants()[:o.Merchants]}}
	r.rep.ClockTicks, r.rep.Signer = r.hz, wechat.SignerBackend()
	r.rep.LoadAvg[0] = loadAvg()
	logDir := filepath.Join(o.DataDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	r.ps = &parts{exe: o.Executable, env: o.Env, logDir: logDir, profileDir: o.ProfileDir, hz: r.hz, onExit: cancel}
	var bg errgroup.Group // the simulator
	defer func() {
		if r.nc != nil {
			r.nc.Close()
		}
		if r.store != nil {
			r.store.Close()
		}
		cancel(nil)
		_ = bg.Wait()
		_ = r.ps.stopAll()
	}()
	// A part that ended by itself cancels ctx with the reason: that is the error then.
	failed := func(err error) error {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return err
	}
	if err := r.start(ctx, &bg); err != nil {
		return nil, failed(err)
	}
	if err := r.measure(ctx); err != nil {
		return nil, failed(err)
	}
	if err := r.ceiling(ctx); err != nil {
		return nil, failed(err)
	}
	if err := r.ps.stopAll(); err != nil {
		r.rep.Warnings = append(r.rep.Warnings, err.Error())
	}
	r.rep.LoadAvg[1] = loadAvg()
	return r.rep, nil
}

// run is one bench run in progress.
type run struct {
	o        Options
	hz       int64
	rep      *Report
	ps       *parts
	s        stack.Settings
	sim      *stack.Sim
	store    *engine.Store
	nc       *nats.Conn
	drv      *driver
	natsPart *part // nil with an external NATS
	// metricsURLs are the children's /metrics, for the calls to WeChat.
	metricsURLs []string
	work0       engine.WorkCount
}

// start brings up the simulator, NATS, the engine, the API and the
// workers, and waits until each serves.
func (r *run) start(ctx context.Context, bg *errgroup.Group) error {
	o := r.o
	r.s = stack.Settings{DataDir: o.DataDir, DBURL: o.DBURL, NATSURL: o.NATSURL}
	if r.s.NATSURL == "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		r.s.NATSURL = "nats://127.0.0.1:" + strconv.Itoa(port)
		if r.natsPart, err = r.ps.start(KindNATS, "nats", "nats", "--data", o.DataDir, "--port", strconv.Itoa(port),
			"--no-auth", "--name", "wxflow-bench", "--log-level", "warn"); err != nil {
			return err
		}
	}
	r.s.Resolve()
	if o.Preload > 0 {
		if err := preload(ctx, r.s.DBURL, o.Preload); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	// The simulator, its payer paying at once, in this process: the dev
	// merchants, one folder each in merchantDir.
	merchantDir := filepath.Join(o.DataDir, "sim")
	simulator, err := stack.NewSim(sim.Config{KeysDir: merchantDir, Merchants: sim.DevMerchants(), TimeScale: 0.001, Retain: 10_000,
		Logger: slog.New(slog.DiscardHandler)}, "127.0.0.1:0", false)
	if err != nil {
		return err
	}
	r.sim = simulator
	bg.Go(func() error { return simulator.Run(ctx) })
	bg.Go(func() error { return simulator.Serve(ctx, simulator.Listener) })

	// The shop, acting for every merchant that takes orders, and its key.
	if r.store, err = engine.Open(ctx, r.s.DBURL); err != nil {
		return err
	}
	secret, err := r.s.ServerSecret()
	if err != nil {
		return err
	}
	shopKey, _, err := stack.EnsureShop(ctx, r.store, secret, "bench", OrderMerchants(), stack.ShopKeyFile(o.DataDir, "bench"))
	if err != nil {
		return err
	}

	ports := make([]int, 3) // the API's two listeners, the first engine's metrics
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	apiAddr, publicAddr := addr(ports[0]), addr(ports[1])
	common := []string{"--data", o.DataDir, "--log-level", "warn", "--nats", r.s.NATSURL}
	wechatArgs := []string{"--merchant-dir", merchantDir, "--wechat-url", simulator.URL,
		"--wechat-ca", filepath.Join(merchantDir, sim.CAFile), "--wechat-backup-url", "off"}
	type ready struct {
		p    *part
		what string
		f    func(context.Context) error
	}
	var waits []ready
	if r.natsPart != nil {
		waits = append(waits, ready{r.natsPart, "NATS", dialable(strings.TrimPrefix(r.s.NATSURL, "nats://"))})
	}
	probe := &http.Client{Timeout: 2 * time.Second}
	for i := range o.Engines {
		name, port := "engine", ports[2]
		if o.Engines > 1 {
			name = "engine " + strconv.Itoa(i+1)
		}
		if i > 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		eng, err := r.ps.start(KindEngine, name, append(append([]string{"engine"}, common...), "--db", r.s.DBURL,
			"--expiry-interval", "1s", "--reconcile-payment-after", "1h", "--reconcile-refund-after", "1h", "--metrics-addr", addr(port))...)
		if err != nil {
			return err
		}
		u := "http://" + addr(port) + "/metrics"
		r.metricsURLs = append(r.metricsURLs, u)
		waits = append(waits, ready{eng, name, httpOK(probe, u)})
	}
	api, err := r.ps.start(KindAPI, "api", append(append(append([]string{"api"}, common...), "--db", r.s.DBURL, "--http", apiAddr,
		"--public-addr", publicAddr, "--shop-rate", "+Inf", "--public-rate", "+Inf", "--no-admin"), wechatArgs...)...)
	if err != nil {
		return err
	}
	r.metricsURLs = append(r.metricsURLs, "http://"+apiAddr+"/metrics")
	waits = append(waits, ready{api, "the API", httpOK(probe, "http://"+publicAddr+"/healthz")})
	kinds := []string{stack.WorkerAll}
	if o.Workers == "each" {
		all := stack.WorkerKinds()
		kinds = all[:len(all)-1] // every kind but "all"
	}
	for _, kind := range kinds {
		port, err := freePort()
		if err != nil {
			return err
		}
		w, err := r.ps.start(KindWorkers, "worker "+kind, append(append(append([]string{"worker", kind}, common...),
			"--db", r.s.DBURL, "--public-addr", publicAddr, "--metrics-addr", addr(port)), wechatArgs...)...)
		if err != nil {
			return err
		}
		u := "http://" + addr(port) + "/metrics"
		r.metricsURLs = append(r.metricsURLs, u)
		waits = append(waits, ready{w, "worker " + kind, httpOK(probe, u)})
	}
	for _, w := range waits {
		if err := waitReady(ctx, w.p, w.what, w.f); err != nil {
			return err
		}
	}

	// The driver: the shop over HTTP, its events over NATS, the payer at the simulator.
	if r.nc, err = nats.Connect(r.s.NATSURL, nats.Name("wxflow bench driver")); err != nil {
		return fmt.Errorf("NATS: %w", err)
	}
	api2 := &demo.Client{Base: "http://" + apiAddr, Key: shopKey, HTTP: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}}
	payer := &demo.Client{Base: simulator.URL, HTTP: simulator.Client()}
	r.drv = newDriver(api2, payer, o.PayAPI, o.RefundEvery, r.rep.Merchants)
	if _, err := r.drv.follow(r.nc); err != nil {
		return err
	}
	return nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// drive runs n orders, at most Concurrency at once (and Rate a second when set).
func (r *run) drive(ctx context.Context, prefix string, n int, record bool, each func()) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(r.o.Concurrency)
	start := time.Now()
	for i := range n {
		if r.o.Rate > 0 && record {
			due := start.Add(time.Duration(float64(i) / r.o.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ectx.Done():
				}
			}
		}
		if ectx.Err() != nil {
			break
		}
		eg.Go(func() error {
			if err := r.drv.order(ectx, prefix, i, record); err != nil {
				return err
			}
			if each != nil {
				each()
			}
			return nil
		})
	}
	return eg.Wait()
}

// snapshot is what the bench reads of the processes at one moment.
type snapshot struct {
	at   time.Time
	cpu  map[string]time.Duration // by kind
	self time.Duration
	done int64
}

func (r *run) snap() snapshot {
	return snapshot{at: time.Now(), cpu: r.ps.cpuByKind(), self: selfCPU(), done: r.drv.done.Load()}
}

// wxflowCPU is the CPU of the engine, API and workers together.
func wxflowCPU(cpu map[string]time.Duration) time.Duration {
	return cpu[KindEngine] + cpu[KindAPI] + cpu[KindWorkers]
}

// calls sums wxflow_wechat_calls_total over the children's metrics.
func (r *run) calls(ctx context.Context) float64 {
	client := &http.Client{Timeout: 5 * time.Second}
	total := 0.0
	for _, u := range r.metricsURLs {
		total += scrapeCounter(ctx, client, u, "wxflow_wechat_calls_total")
	}
	return total
}

// measure drives the warm-up, then the measured orders, reading every
// child's CPU before and after and sampling the run every Interval.
func (r *run) measure(ctx context.Context) error {
	o, rep := r.o, r.rep
	if err := r.drive(ctx, "w", o.Warmup, false, nil); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	idle0 := r.snap()
	select {
	case <-time.After(o.Idle):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	idle1 := r.snap()
	rep.IdleSeconds = idle1.at.Sub(idle0.at).Seconds()
	rep.IdleCPUMSPerS = map[string]float64{}
	for k, v := range idle1.cpu {
		rep.IdleCPUMSPerS[k] = float64((v - idle0.cpu[k]).Microseconds()) / 1000 / rep.IdleSeconds
	}
	var err error
	if r.work0, err = r.store.CountWork(ctx); err != nil {
		return err
	}
	calls0 := r.calls(ctx)
	if o.ProfileDir != "" {
		for _, k := range []string{KindNATS, KindEngine, KindAPI, KindWorkers} {
			for _, p := range r.ps.byKind(k) {
				p.signal(profileSignal)
			}
		}
	}
	procCPU0 := map[*part]time.Duration{}
	for _, k := range []string{KindNATS, KindEngine, KindAPI, KindWorkers} {
		for _, p := range r.ps.byKind(k) {
			procCPU0[p] = p.cpu(r.hz)
		}
	}
	first := r.snap()

	var bar *mpb.Bar
	var progress *mpb.Progress
	if o.Progress {
		progress = mpb.New(mpb.WithOutput(os.Stderr))
		bar = progress.AddBar(int64(o.Orders), mpb.PrependDecorators(decor.Name("orders "), decor.CountersNoUnit("%d/%d")),
			mpb.AppendDecorators(decor.AverageSpeed(0, "%.0f/s")))
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	prev := first // the latest sample
	sampling.Go(func() {
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
			now := r.snap()
			rep.Intervals = append(rep.Intervals, interval(first, prev, now, r.drv.takeInterval(), r.ps.memByKind("VmRSS:")))
			prev = now
		}
	})
	var each func()
	if bar != nil {
		each = func() { bar.Increment() }
	}
	err = r.drive(ctx, "", o.Orders, true, each)
	last := r.snap()
	stopSampling()
	sampling.Wait()
	if err == nil && len(rep.Intervals) > 0 && last.done > prev.done {
		// The run's tail, shorter than an interval.
		rep.Intervals = append(rep.Intervals, interval(first, prev, last, r.drv.takeInterval(), r.ps.memByKind("VmRSS:")))
	}
	if progress != nil {
		if err != nil {
			bar.Abort(false)
		}
		progress.Wait()
	}
	if err != nil {
		return err
	}

	took := last.at.Sub(first.at)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(o.Orders) }
	rep.Seconds, rep.OrdersPerS = took.Seconds(), float64(o.Orders)/took.Seconds()
	rep.Refunded = int(r.drv.v2Ref.Load() + r.drv.v3Ref.Load())
	rep.OrdersByMerchant = r.drv.byMerchant()
	rep.Latency = r.drv.latencies()
	rep.CPUMSPerOrder = per(wxflowCPU(last.cpu) - wxflowCPU(first.cpu))
	rep.CPUMSPerOrderByKind = map[string]float64{}
	for k, v := range last.cpu {
		rep.CPUMSPerOrderByKind[k] = per(v - first.cpu[k])
	}
	rep.DriverCPUMSPerOrder = per(last.self - first.self)
	rep.PeakRSSMiB = r.ps.memByKind("VmHWM:")
	for _, k := range []string{KindNATS, KindEngine, KindAPI, KindWorkers} {
		for _, p := range r.ps.byKind(k) {
			rep.Processes = append(rep.Processes, Process{Kind: k, Name: p.name, CPUSeconds: (p.cpu(r.hz) - procCPU0[p]).Seconds(),
				PeakRSSMiB: processMemMiB(p.cmd.Process.Pid, "VmHWM:")})
		}
	}
	rep.WeChatCallsPerOrder = (r.calls(ctx) - calls0) / float64(o.Orders)
	rep.DBBytes = databaseBytes(ctx, r.store, r.s.DBURL)
	if js, err := jetstream.New(r.nc); err == nil {
		if stream, err := js.Stream(ctx, engine.EventStream); err == nil {
			if info, err := stream.Info(ctx); err == nil {
				rep.StreamBytes = info.State.Bytes
			}
		}
	}
	return nil
}

// interval is the sample now, against the previous one.
func interval(first, prev, now snapshot, lat Percentiles, rss map[string]float64) Interval {
	in := Interval{At: now.at.Sub(first.at).Seconds(), Orders: now.done - prev.done, CreatedNotified: lat, RSSMiB: rss}
	if secs := now.at.Sub(prev.at).Seconds(); secs > 0 {
		in.OrdersPerS = float64(in.Orders) / secs
	}
	if in.Orders > 0 {
		in.CPUMSPerOrder = float64((wxflowCPU(now.cpu) - wxflowCPU(prev.cpu)).Microseconds()) / 1000 / float64(in.Orders)
		in.NATSMSPerOrder = float64((now.cpu[KindNATS] - prev.cpu[KindNATS]).Microseconds()) / 1000 / float64(in.Orders)
	}
	return in
}

// ceiling stops the deployment, then runs `wxflow bench ceiling` on the
// same NATS and database with the work the run's orders needed.
func (r *run) ceiling(ctx context.Context) error {
	if err := r.ps.stopKinds(KindAPI, KindWorkers, KindEngine); err != nil {
		r.rep.Warnings = append(r.rep.Warnings, err.Error())
	}
	work1, err := r.store.CountWork(ctx)
	if err != nil {
		return err
	}
	rep := r.rep
	events, txs := work1.Events-r.work0.Events, work1.Transactions-r.work0.Transactions
	rep.Ceiling.EventsPerOrder = float64(events) / float64(rep.Orders)
	// The ceiling signs as the first direct merchant (its folder in the
	// simulator's layout): a sub-merchant's calls are signed with its
	// provider's keys, the same work.
	spec := CeilingSpec{MerchantDir: filepath.Join(r.o.DataDir, "sim", OrderMerchants()[0]), NATSURL: r.s.NATSURL, DBURL: r.s.DBURL, Concurrency: r.o.Concurrency,
		V2Orders: int(r.drv.v2.Load()), V3Orders: int(r.drv.v3.Load()), V2Refunds: int(r.drv.v2Ref.Load()), V3Refunds: int(r.drv.v3Ref.Load()),
		Transactions: txs, Events: events}
	if r.natsPart != nil {
		spec.NATSPID = r.natsPart.cmd.Process.Pid
	}
	res, err := r.runCeiling(ctx, spec)
	if err != nil {
		return err
	}
	c := &rep.Ceiling
	per := func(s float64) float64 { return s * 1000 / float64(rep.Orders) }
	c.ProtocolCPUMSPerOrder, c.SQLCPUMSPerOrder, c.NATSCPUMSPerOrder = per(res.ProtocolCPU), per(res.SQLCPU), per(res.NATSCPU)
	c.CPUMSPerOrder = c.ProtocolCPUMSPerOrder + c.SQLCPUMSPerOrder + c.NATSCPUMSPerOrder
	c.NATSServerCPUMSPerOrder = per(res.NATSServerCPU)
	c.Transactions, c.RoundTrips, c.Counts = txs, res.RoundTrips, res.Counts
	c.ProtocolSeconds, c.SQLSeconds, c.NATSSeconds = res.ProtocolSeconds, res.SQLSeconds, res.NATSSeconds
	if rep.CPUMSPerOrder > 0 {
		rep.Ratio = c.CPUMSPerOrder / rep.CPUMSPerOrder
	}
	if n := rep.CPUMSPerOrderByKind[KindNATS]; r.natsPart != nil && rep.CPUMSPerOrder+n > 0 {
		rep.RatioWithNATS = (c.CPUMSPerOrder + c.NATSServerCPUMSPerOrder) / (rep.CPUMSPerOrder + n)
	}
	return nil
}

// runCeiling runs `wxflow bench ceiling` with spec on its stdin and reads
// its result from its stdout.
func (r *run) runCeiling(ctx context.Context, spec CeilingSpec) (*CeilingResult, error) {
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(r.ps.logDir, "ceiling.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, r.o.Executable, "bench", "ceiling")
	cmd.Env = childEnv(r.o.Env)
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr()
	out, err := cmd.Output()
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("ceiling: %w: %s", err, strings.TrimSpace(string(tail)))
	}
	var res CeilingResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("ceiling: its answer: %w", err)
	}
	return &res, nil
}

// loadAvg is the machine's 1-minute load average (/proc/loadavg); 0 when unknown.
func loadAvg() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
