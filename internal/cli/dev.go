package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/demoshop"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/books"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// devCommand runs everything in one process.
func devCommand() *cobra.Command {
	var s stack.Settings
	var o stack.DevOptions
	var orders, concurrency int
	var chaos float64
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded NATS, SQLite, the WeChat simulator, engine, workers and API",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB, gHTTP, gRates, gStuck, gEngine, gWorkers, gSecret, gNATSUsers, gFailover, gBooks, gWebhook)
	f := cmd.Flags()
	f.IntVar(&o.NATSPort, "nats-port", natsembed.DefaultPort, "embedded NATS port (-1: any free port)")
	f.StringVar(&o.SimAddr, "sim-addr", "127.0.0.1:8443", "where the WeChat simulator listens")
	f.StringVar(&o.SimBackupAddr, "sim-backup-addr", "", "where the simulator's second site, WeChat Pay's backup host, listens (default: a free port); pay calls fail over to it unless --wechat-backup-url off")
	f.Var(&o.Sim.Outage, "outage", "take a simulator site's pay calls down from the start: SITE:MODE[:DURATION], e.g. primary:502:30s (sites primary, backup; modes refuse, 502, hang)")
	f.Float64Var(&o.Sim.TimeScale, "time-scale", 0.01, "the simulator's time scale (1 = WeChat's real delays)")
	f.IntVar(&orders, "demo", 0, "drive N orders through the simulator, print a summary and exit (0 when all is right)")
	f.IntVar(&concurrency, "demo-concurrency", 16, "concurrent orders of the demo")
	f.BoolVar(&o.Sim.BillsAtOnce, "sim-bills-now", true, "the simulator serves a day's bills at once, today's as it stands (WeChat: after 10:00 the next day)")
	o.Sim.Faults.RegisterFlags(f)
	f.StringVar(&o.DemoShopAddr, "demo-shop-addr", "127.0.0.1:8082", "where the demo shop (/demo/) listens (WXFLOW_DEMO_SHOP_ADDR)")
	f.StringVar(&o.DemoShopJSSDK, "demo-shop-jssdk", demoshop.DefaultJSSDK, "where the demo shop's page loads WeChat's JS-SDK: a URL, or a file it serves such as npm's weixin-js-sdk/index.js (WXFLOW_DEMO_SHOP_JSSDK)")
	f.Float64Var(&chaos, "chaos", 0, "the simulator fails this share of API calls in every way, duplicates every notification, reorders and drops this share")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// dev's own defaults: text logs for a person, a quick expiry and
		// reconciliation so the demo's orders end in seconds.
		s.LogFormat = cmp.Or(s.LogFormat, os.Getenv("WXFLOW_LOG"), "text")
		if !f.Changed("expiry-interval") && os.Getenv("WXFLOW_EXPIRY_INTERVAL") == "" {
			s.ExpiryInterval = 500 * time.Millisecond
		}
		for _, name := range []string{"reconcile-payment-after", "reconcile-refund-after"} {
			if !f.Changed(name) && os.Getenv(flags.env[name]) == "" {
				_ = f.Set(name, "3s")
			}
		}
		// A shop's developer's webhook receiver is on this machine.
		if !f.Changed("webhook-allow-private") && os.Getenv("WXFLOW_WEBHOOK_ALLOW_PRIVATE") == "" {
			s.WebhookAllowPrivate = true
		}
		// The books: today's every 10 s against the simulator's bill of the
		// day so far, and a closed day's once its bill is ready at dev's time
		// scale (10 h after midnight, scaled).
		if !f.Changed("books-every") && os.Getenv("WXFLOW_BOOKS_EVERY") == "" && o.Sim.BillsAtOnce {
			_ = f.Set("books-every", "10s")
		}
		if !f.Changed("books-ready-after") && os.Getenv("WXFLOW_BOOKS_READY_AFTER") == "" && o.Sim.TimeScale > 0 {
			_ = f.Set("books-ready-after", (time.Duration(float64(10*time.Hour)*min(o.Sim.TimeScale, 1)) + time.Minute).String())
		}
		if err := flags.load(&s); err != nil {
			return err
		}
		if err := stack.CheckAdminToken(&s); err != nil { // unset: dev makes one
			return err
		}
		log := s.Logger()
		if orders > 0 && !f.Changed("log-level") && os.Getenv("WXFLOW_LOG_LEVEL") == "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		if chaos > 0 {
			o.Sim.Faults = sim.Chaos(chaos, o.Sim.Faults.Seed)
		}
		// The defaults give way when taken; a port the user chose does not.
		o.FreePorts = !f.Changed("nats-port") && !f.Changed("sim-addr") && !f.Changed("http") && os.Getenv("WXFLOW_HTTP_ADDR") == "" &&
			!f.Changed("public-addr") && os.Getenv("WXFLOW_PUBLIC_ADDR") == ""
		if env := os.Getenv("WXFLOW_DEMO_SHOP_ADDR"); env != "" && !f.Changed("demo-shop-addr") {
			o.DemoShopAddr = env
		}
		if env := os.Getenv("WXFLOW_DEMO_SHOP_JSSDK"); env != "" && !f.Changed("demo-shop-jssdk") {
			o.DemoShopJSSDK = env
		}
		// The demo shop's default address gives way too, whatever else was chosen.
		o.DemoShopFreePort = !f.Changed("demo-shop-addr") && os.Getenv("WXFLOW_DEMO_SHOP_ADDR") == ""
		if !o.DemoShopFreePort {
			o.FreePorts = false
		}
		// No rate limit on a laptop unless one is asked for.
		o.Unlimited = !f.Changed("public-rate") && !f.Changed("shop-rate") && os.Getenv("WXFLOW_PUBLIC_RATE") == "" && os.Getenv("WXFLOW_SHOP_RATE") == ""
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		st, err := stack.StartDev(ctx, &s, o, log)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "wxflow dev is running\n  API        %s  (internal: POST /v1/orders …, /metrics)\n  shop key   %s  (shop %s: Authorization: Bearer <key>; also in %s)\n  admin      %s/admin/  (token %s)\n  public     %s  (WeChat's notifications only)\n  simulator  %s  (trust %s)\n  NATS       %s\n  data       %s\n",
			st.APIURL, st.ShopKey, stack.DemoShop, stack.ShopKeyFile(s.DataDir, stack.DemoShop), st.APIURL, st.AdminToken, st.PublicURL, st.SimURL, filepath.Join(s.MerchantDir, sim.CAFile), st.NATSURL, s.DataDir)
		fmt.Fprintf(out, "  demo shop  %s  (a shop's pages: OAuth, wx.config, wx.chooseWXPay, refund; docs/API.md)\n", st.DemoShopURL)
		fmt.Fprintf(out, "  pay backup %s  (the simulator's second site; POST /sim/outage takes either site down)\n", st.SimBackupURL)
		if orders == 0 {
			fmt.Fprintln(out, "Ctrl-C stops it.")
			return stoppedByUser(cmd.Context(), st.Wait())
		}
		start := time.Now()
		// The demo spreads its orders over every merchant dev serves (a
		// data folder of one merchant: that one), forges notifications
		// across them, and checks that nothing crossed.
		reg, err := wechat.LoadRegistry(s.MerchantDir, s.MerchantName)
		if err != nil {
			return fmt.Errorf("demo: the merchants: %w", err)
		}
		dc := demo.Config{Orders: orders, Concurrency: concurrency, APIURL: st.APIURL, NotifyURL: st.PublicURL, ShopKey: st.ShopKey,
			SimURL: st.SimURL, SimClient: st.Sim.Client(), Forge: true, Registry: reg, WechatPayKeys: st.Sim.Keys().WechatPayKeys, Events: st.Conns.JS}
		results := demo.Run(ctx, dc)
		ok := demo.PrintSummary(out, results, time.Since(start))
		if l, err := demo.AuditLedger(ctx, dc, results); err != nil || !l.OK() {
			fmt.Fprintln(out, l, err)
			ok = false
		} else {
			fmt.Fprintln(out, l)
		}
		c, err := demo.AuditCrossings(ctx, dc, results)
		fmt.Fprintln(out, c)
		for _, f := range c.Found {
			fmt.Fprintln(out, "  CROSSING", f)
		}
		if err != nil || !c.OK() {
			if err != nil {
				fmt.Fprintln(out, "crossings:", err)
			}
			ok = false
		}
		if !printAllDemoBooks(ctx, out, st.Books) {
			ok = false
		}
		cancel()
		_ = st.Wait()
		if !ok {
			return errors.New("demo: some orders did not end right, the books disagree, a forged notification was accepted, or something crossed merchants")
		}
		return nil
	}
	return cmd
}

// printDemoBooks runs today's books after the demo (the simulator serves the
// bill of the day so far) and says whether every trade matched.
// printAllDemoBooks prints each merchant's books of today; false when any
// has a discrepancy.
func printAllDemoBooks(ctx context.Context, out io.Writer, all []*books.Books) bool {
	ok := true
	for _, b := range all {
		if !printDemoBooks(ctx, out, b) {
			ok = false
		}
	}
	return ok
}

func printDemoBooks(ctx context.Context, out io.Writer, b *books.Books) bool {
	day := engine.DayOf(time.Now())
	var r engine.BooksResult
	var err error
	failures := 0
	for range 30 { // the preview of the day may hold the day's lease for a moment
		r, err = b.RunDay(ctx, day)
		if err == nil {
			break
		}
		if !errors.Is(err, books.ErrBusy) { // a download refused five times over (a chaos run): try again
			if failures++; failures == 3 {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		fmt.Fprintf(out, "books of %s, %s: %v\n", b.Merchant(), day, err)
		return false
	}
	fmt.Fprintf(out, "books of %s, %s (today so far): %d payments and %d refunds at WeChat; %d matched, %d discrepancies",
		b.Merchant(), day, r.Totals.WechatPayments, r.Totals.WechatRefunds, r.Counts[engine.BooksMatched], r.Discrepancies())
	if n := b.Repaired.Load(); n > 0 {
		fmt.Fprintf(out, "; the books queried %d orders WeChat's bill showed and wxflow had not heard of", n)
	}
	fmt.Fprintf(out, " (wxflow books today --data …)\n")
	return r.Discrepancies() == 0
}
