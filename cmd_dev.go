package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/natsembed"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// devOptions configure `wxflow dev`.
type devOptions struct {
	NATSPort    int           // embedded NATS port; -1 for any free port
	NATSURL     string        // an external NATS (a cluster, in tests) instead of the embedded one
	SimAddr     string        // where the simulator listens
	TimeScale   float64       // the simulator's time scale
	Expiry      time.Duration // how often expired orders are closed and quiet ones reconciled
	Reconcile   time.Duration // how quiet an order waiting on WeChat is before it is queried
	Demo        int           // orders the demo drives; 0: keep running
	Concurrency int           // the demo's concurrent shops
	MaxDeliver  int           // deliveries of an event before a worker dead-letters it
	Faults      sim.Faults
	SimRetain   int // orders the simulator remembers (0: all); bench bounds it so its memory stays flat
}

// devStack is everything of `wxflow dev`, running in one process.
type devStack struct {
	APIURL, SimURL string
	AdminToken     string
	SimClient      *http.Client
	Sim            *sim.Sim
	Store          *engine.Store
	NATS           *natsembed.Server
	API            *api.Server
}

// startDev starts embedded NATS, SQLite, the simulator, the engine, every
// worker and the API, and returns once all of them accept work. Everything
// stops when ctx ends; wait on the returned group.
func startDev(ctx context.Context, s *settings, o devOptions, log *slog.Logger) (*devStack, *errgroup.Group, error) {
	s.resolve()
	var ns *natsembed.Server // nil with an external NATS; Stop is then a no-op
	if o.NATSURL != "" {
		s.NATSURL = o.NATSURL
	} else {
		var err error
		ns, err = natsembed.Start(natsembed.Config{Port: o.NATSPort, StoreDir: filepath.Join(s.DataDir, "nats"), ServerName: "wxflow-dev"})
		if err != nil {
			return nil, nil, err
		}
		if err := ns.WriteURLFile(s.DataDir); err != nil {
			ns.Stop()
			return nil, nil, err
		}
		s.NATSURL = ns.ClientURL()
	}
	st := &devStack{NATS: ns}
	g, gctx := errgroup.WithContext(ctx)
	cleanup := func() {}
	fail := func(err error) (*devStack, *errgroup.Group, error) {
		cleanup()
		ns.Stop()
		return nil, nil, err
	}

	// The simulator, with its keys in <data>/sim: the merchant wxflow uses.
	s.MerchantDir = filepath.Join(s.DataDir, "sim")
	simulator, err := sim.New(sim.Config{KeysDir: s.MerchantDir, TimeScale: o.TimeScale, Faults: o.Faults, Logger: log.With("component", "sim"),
		Retain: o.SimRetain})
	if err != nil {
		return fail(err)
	}
	simLn, err := net.Listen("tcp", o.SimAddr)
	if err != nil {
		return fail(fmt.Errorf("simulator: %w", err))
	}
	st.Sim, st.SimURL = simulator, "https://"+simLn.Addr().String()
	st.SimClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: simulator.RootCAs()},
		MaxIdleConnsPerHost: 64}} // kept open: a TLS handshake per call would cost more than the call
	s.WechatURL, s.WechatCA = st.SimURL, filepath.Join(s.MerchantDir, sim.CAFile)

	apiLn, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		simLn.Close()
		return fail(fmt.Errorf("API: %w", err))
	}
	s.HTTPAddr = apiLn.Addr().String()
	s.PublicURL = "http://" + s.HTTPAddr
	st.APIURL = s.PublicURL

	store, err := engine.Open(ctx, s.DBURL)
	if err != nil {
		simLn.Close()
		apiLn.Close()
		return fail(err)
	}
	st.Store = store
	cleanup = func() { simLn.Close(); apiLn.Close(); store.Close() }
	nc, js, err := connectNATS(ctx, s, "dev", log)
	if err != nil {
		return fail(err)
	}
	metrics := api.NewMetrics()
	deadlines, err := s.deadlines()
	if err != nil {
		nc.Close()
		return fail(err)
	}
	wc, err := newWechatClients(s, metrics)
	if err != nil {
		nc.Close()
		return fail(err)
	}
	eng, err := engine.New(engine.Config{ExpiryInterval: o.Expiry, Logger: log, Observer: metrics,
		Reconcile: engine.ReconcileConfig{Interval: o.Expiry, PaymentDelay: o.Reconcile, RefundDelay: o.Reconcile}}, store, nc, js)
	if err != nil {
		nc.Close()
		return fail(err)
	}
	if s.AdminToken == "" {
		s.AdminToken = strings.TrimPrefix(engine.NewID("dev"), "dev_") // dev only: printed at start
	}
	st.AdminToken = s.AdminToken
	srv, err := api.New(api.Config{Merchant: wc.Merchant, Store: store, NC: nc, JS: js, V2: wc.V2, V3: wc.V3,
		Tickets: &tokens.Reader{AppID: wc.Merchant.AppID, NC: nc, JS: js}, OAuthBaseURL: st.SimURL, Logger: log,
		AdminToken: s.AdminToken, Metrics: metrics, Deadlines: deadlines})
	if err != nil {
		nc.Close()
		return fail(err)
	}
	st.API = srv
	metrics.ObserveDeployment(store, js, srv)

	g.Go(func() error { return simulator.Run(gctx) })
	g.Go(func() error { return simulator.Serve(gctx, simLn) })
	g.Go(func() error { return eng.Run(gctx) })
	for _, h := range workers.All(workers.Deps{Payments: wc.Pay, MP: wc.MP, Codes: codeBucket(ctx, js), Logger: log}) {
		g.Go(func() error {
			return workers.Run(gctx, js, h, workers.LoopConfig{Logger: log, MaxDeliver: o.MaxDeliver, BackoffMax: 2 * time.Second})
		})
	}
	refresher := &tokens.Refresher{MP: wc.MP, AppID: wc.Merchant.AppID, NC: nc, JS: js, Logger: log}
	g.Go(func() error { return refresher.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, apiLn) })
	g.Go(func() error {
		<-gctx.Done()
		time.Sleep(100 * time.Millisecond) // let the others drain first
		nc.Drain()
		ns.Stop()
		store.Close()
		return nil
	})
	return st, g, nil
}

func devCommand() *cobra.Command {
	var s settings
	var o devOptions
	var chaos float64
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded NATS, SQLite, the WeChat simulator, engine, workers and API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.LogFormat = cmp.Or(s.LogFormat, "text")
			log := s.logger("dev")
			if o.Demo > 0 && s.LogLevel == "info" {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			if chaos > 0 {
				o.Faults = sim.Chaos(chaos, o.Faults.Seed)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			st, g, err := startDev(ctx, &s, o, log)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wxflow dev is running\n  API        %s  (POST /v1/orders …)\n  admin      %s/admin/  (token %s)\n  simulator  %s  (trust %s)\n  NATS       %s\n  data       %s\n",
				st.APIURL, st.APIURL, st.AdminToken, st.SimURL, filepath.Join(s.MerchantDir, sim.CAFile), s.NATSURL, s.DataDir)
			if o.Demo == 0 {
				fmt.Fprintln(out, "Ctrl-C stops it.")
				return g.Wait()
			}
			start := time.Now()
			dc := demoConfig{Orders: o.Demo, Concurrency: o.Concurrency, APIURL: st.APIURL, SimURL: st.SimURL, SimClient: st.SimClient}
			results := runDemo(ctx, dc)
			ok := printDemoSummary(out, results, time.Since(start))
			if l, err := auditLedger(ctx, dc, results); err != nil || !l.ok() {
				fmt.Fprintln(out, l, err)
				ok = false
			} else {
				fmt.Fprintln(out, l)
			}
			cancel()
			_ = g.Wait()
			if !ok {
				return fmt.Errorf("demo: some orders did not reach the state they should")
			}
			return nil
		},
	}
	s.register(cmd.Flags())
	f := cmd.Flags()
	f.IntVar(&o.NATSPort, "nats-port", natsembed.DefaultPort, "embedded NATS port (-1: any free port)")
	f.StringVar(&o.SimAddr, "sim-addr", "127.0.0.1:8443", "where the WeChat simulator listens")
	f.Float64Var(&o.TimeScale, "time-scale", 0.01, "the simulator's time scale (1 = WeChat's real delays)")
	f.DurationVar(&o.Expiry, "expiry-interval", 500*time.Millisecond, "how often expired orders are closed and quiet ones reconciled")
	f.DurationVar(&o.Reconcile, "reconcile-after", 3*time.Second, "how quiet an order waiting on WeChat is before it is queried")
	f.IntVar(&o.Demo, "demo", 0, "drive N orders through the simulator, print a summary and exit (0 when all is right)")
	f.IntVar(&o.Concurrency, "demo-concurrency", 16, "concurrent orders of the demo")
	o.Faults.RegisterFlags(f)
	f.Float64Var(&chaos, "chaos", 0, "the simulator fails this share of API calls in every way, duplicates every notification, reorders and drops this share")
	return cmd
}
