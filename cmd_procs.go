package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// simCommand runs the WeChat simulator alone (docs/SIMULATOR.md).
func simCommand() *cobra.Command {
	var addr, keys, logFormat string
	var cfg sim.Config
	var chaos float64
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the WeChat simulator (HTTPS; keys and its CA in --keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := settings{LogFormat: logFormat, LogLevel: "info"}
			cfg.KeysDir, cfg.Logger = keys, s.logger("sim")
			if chaos > 0 {
				cfg.Faults = sim.Chaos(chaos, cfg.Faults.Seed)
			}
			simulator, err := sim.New(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			m := simulator.Keys().Merchant
			fmt.Fprintf(cmd.OutOrStdout(), "WeChat simulator on https://%s\n  appid %s, mchid %s, keys in %s\n  trust %s\n",
				ln.Addr(), m.AppID, m.MchID, keys, filepath.Join(keys, sim.CAFile))
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return simulator.Run(ctx) })
			g.Go(func() error { return simulator.Serve(ctx, ln) })
			return g.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8443", "listen address")
	f.StringVar(&keys, "keys", "data/sim", "key folder: created on first start, reused afterwards")
	f.StringVar(&logFormat, "log", "text", "log format: text or json")
	f.BoolVar(&cfg.Strict, "strict", false, "check openids and https notify URLs as WeChat does")
	f.Float64Var(&cfg.TimeScale, "time-scale", 1, "scale of WeChat's delays (retries, token life, refund settlement)")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", 7200*time.Second, "access_token and jsapi_ticket lifetime")
	cfg.Faults.RegisterFlags(f)
	f.Float64Var(&chaos, "chaos", 0, "fail this share of API calls in every way, duplicate every notification, reorder and drop this share (replaces the other fault flags)")
	return cmd
}

// migrateCommand applies the migrations and exits.
func migrateCommand() *cobra.Command {
	var s settings
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the SQL migrations to the database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.resolve()
			store, err := engine.Open(cmd.Context(), s.DBURL)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return store.Close()
		},
	}
	s.register(cmd.Flags())
	return cmd
}

// engineCommand runs the command intake, the outbox relay and the expiry.
func engineCommand() *cobra.Command {
	var s settings
	var reconcile engine.ReconcileConfig
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the engine: command intake, outbox relay, order expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, log := cmd.Context(), s.logger("engine")
			store, nc, js, closeAll, err := openDeployment(ctx, &s, "engine", log)
			if err != nil {
				return err
			}
			defer closeAll()
			metrics := api.NewMetrics()
			serveMetrics(ctx, s.MetricsAddr, metrics, log)
			eng, err := engine.New(engine.Config{Logger: log, Observer: metrics, Reconcile: reconcile}, store, nc, js)
			if err != nil {
				return err
			}
			log.Info("engine running", "db", redactDSN(s.DBURL), "nats", s.NATSURL)
			return eng.Run(ctx)
		},
	}
	s.register(cmd.Flags())
	f := cmd.Flags()
	f.DurationVar(&reconcile.PaymentDelay, "reconcile-payment-after", 0, "query WeChat about an order signed and quiet this long (default 1m)")
	f.DurationVar(&reconcile.RefundDelay, "reconcile-refund-after", 0, "query WeChat about a refund pending and quiet this long (default 2m)")
	return cmd
}

// apiCommand runs the HTTP API.
func apiCommand() *cobra.Command {
	var s settings
	var noAdmin bool
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API: the shop API and WeChat's notification endpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.AdminToken == "" && !noAdmin {
				return errors.New("set WXFLOW_ADMIN_TOKEN for the admin page and API, or pass --no-admin")
			}
			if noAdmin {
				s.AdminToken = ""
			}
			ctx, log := cmd.Context(), s.logger("api")
			store, nc, js, closeAll, err := openDeployment(ctx, &s, "api", log)
			if err != nil {
				return err
			}
			defer closeAll()
			metrics := api.NewMetrics()
			deadlines, err := s.deadlines()
			if err != nil {
				return err
			}
			wc, err := newWechatClients(&s, metrics)
			if err != nil {
				return err
			}
			_, _, oauth := s.wechatHosts()
			srv, err := api.New(api.Config{Merchant: wc.Merchant, Store: store, NC: nc, JS: js, V2: wc.V2, V3: wc.V3,
				Tickets: &tokens.Reader{AppID: wc.Merchant.AppID, NC: nc, JS: js}, OAuthBaseURL: oauth, Logger: log,
				AdminToken: s.AdminToken, Metrics: metrics, Deadlines: deadlines})
			if err != nil {
				return err
			}
			metrics.ObserveDeployment(store, js, srv)
			ln, err := net.Listen("tcp", s.HTTPAddr)
			if err != nil {
				return err
			}
			log.Info("API listening", "url", "http://"+ln.Addr().String(), "public_url", s.PublicURL)
			return srv.Run(ctx, ln)
		},
	}
	s.register(cmd.Flags())
	cmd.Flags().BoolVar(&noAdmin, "no-admin", false, "serve no admin page or API")
	return cmd
}

// workerCommand runs one worker kind, or all of them.
func workerCommand() *cobra.Command {
	var s settings
	cmd := &cobra.Command{
		Use:       "worker KIND",
		Short:     "Run a worker: authorize, prepay, sign, query, close, refund, tokens (the shared token refresher), or all",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"authorize", "prepay", "sign", "query", "close", "refund", "tokens", "all"},
		RunE: func(cmd *cobra.Command, args []string) error {
			s.resolve()
			log := s.logger("worker-" + args[0])
			ctx := cmd.Context()
			nc, js, err := connectNATS(ctx, &s, "worker "+args[0], log)
			if err != nil {
				return err
			}
			defer nc.Drain()
			metrics := api.NewMetrics()
			serveMetrics(ctx, s.MetricsAddr, metrics, log)
			wc, err := newWechatClients(&s, metrics)
			if err != nil {
				return err
			}
			var run []workers.Handler
			for _, h := range workers.All(workers.Deps{Payments: wc.Pay, MP: wc.MP, Codes: codeBucket(ctx, js), Logger: log}) {
				if args[0] == "all" || h.Name() == args[0] {
					run = append(run, h)
				}
			}
			refresh := args[0] == "tokens" || args[0] == "all"
			if len(run) == 0 && !refresh {
				return fmt.Errorf("unknown worker %q", args[0])
			}
			g, ctx := errgroup.WithContext(ctx)
			if refresh {
				r := &tokens.Refresher{MP: wc.MP, AppID: wc.Merchant.AppID, NC: nc, JS: js, Logger: log}
				g.Go(func() error { return r.Run(ctx) })
			}
			g.Go(func() error { return runWorkers(ctx, js, run, s.WorkerLanes, log) })
			return g.Wait()
		},
	}
	s.register(cmd.Flags())
	return cmd
}

func runWorkers(ctx context.Context, js jetstream.JetStream, hs []workers.Handler, lanes int, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, h := range hs {
		log.Info("worker running", "worker", h.Name(), "lanes", lanes)
		g.Go(func() error { return workers.Run(ctx, js, h, workers.LoopConfig{Logger: log, Concurrency: lanes}) })
	}
	return g.Wait()
}

// redactDSN hides a password in a database URL for logs.
func redactDSN(dsn string) string {
	if i, j := strings.Index(dsn, "://"), strings.LastIndex(dsn, "@"); i >= 0 && j > i {
		return dsn[:i+3] + "…" + dsn[j:]
	}
	return dsn
}

// openDeployment opens the store and connects to NATS, as every process
// does at start; closeAll drains NATS and closes the store.
func openDeployment(ctx context.Context, s *settings, name string, log *slog.Logger) (*engine.Store, *nats.Conn, jetstream.JetStream, func(), error) {
	s.resolve()
	store, err := engine.Open(ctx, s.DBURL)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	nc, js, err := connectNATS(ctx, s, name, log)
	if err != nil {
		store.Close()
		return nil, nil, nil, nil, err
	}
	return store, nc, js, func() { _ = nc.Drain(); store.Close() }, nil
}
