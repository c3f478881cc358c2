package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestOutage runs the demo while WeChat Pay's primary host goes down three
// times, once in each way (its pay calls cut without an answer, answered a
// bare 502, held without an answer), and comes back after each. During an
// outage every pay call must be served by the backup host (the simulator's
// second site, on the same ledger); after it, by the primary again. Every
// order must end in its right state, WeChat's ledger must agree with
// wxflow's to the fen (nothing lost, nothing paid or refunded twice) and
// verify must be clean.
func TestOutage(t *testing.T) {
	batch := 14
	if testing.Short() {
		batch = 7
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "error",
		WechatTimeout: 2 * time.Second, WechatProbeAfter: 300 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 2*time.Second, 2*time.Second
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{DuplicateNotify: true, Seed: 11}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	if st.SimBackupURL == "" || st.SimBackupURL == st.SimURL {
		t.Fatalf("dev wired no backup site: %q", st.SimBackupURL)
	}

	// Orders run in batches, one after another, until the outages are over.
	cfg := demo.Config{Orders: batch, Concurrency: 16, APIURL: st.APIURL, NotifyURL: st.PublicURL, ShopKey: st.ShopKey,
		SimURL: st.SimURL, SimClient: st.Sim.Client(), Timeout: 120 * time.Second}
	var (
		mu      sync.Mutex
		results []demo.Result
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rs := demo.Run(ctx, cfg)
			mu.Lock()
			results = append(results, rs...)
			mu.Unlock()
		}
	}()

	// served counts the pay calls each host answered, by wxflow's metrics
	// and by the simulator's own count of the calls each site let through.
	served := func(host string) float64 { return payCalls(t, st, host) }
	siteServed := func(site sim.Site) int {
		for _, o := range st.Sim.Outages() {
			if o.Site == site {
				return o.Served
			}
		}
		return -1
	}
	grows := func(host string, from float64, by float64) {
		t.Helper()
		enginetest.WaitFor(t, 90*time.Second, func() error {
			if got := served(host); got < from+by {
				return errorf("%s served %.0f pay calls, want %.0f", host, got, from+by)
			}
			return nil
		})
	}
	grows("primary", 0, 10)
	if b := served("backup"); b != 0 {
		t.Fatalf("the backup served %.0f calls before any outage", b)
	}
	for _, mode := range []sim.OutageMode{sim.OutageRefuse, sim.Outage502, sim.OutageHang} {
		if err := st.Sim.SetOutage(sim.Outage{Site: sim.SitePrimary, Mode: mode}); err != nil {
			t.Fatal(err)
		}
		grows("backup", served("backup"), 6) // calls in flight at the switch have ended
		primary, site := served("primary"), siteServed(sim.SitePrimary)
		grows("backup", served("backup"), 10)
		if p, sp := served("primary"), siteServed(sim.SitePrimary); p != primary || sp != site {
			t.Errorf("%s outage: the primary served %.0f pay calls (its site counts %d) while it was down", mode, p-primary, sp-site)
		}
		if err := st.Sim.SetOutage(sim.Outage{Site: sim.SitePrimary, Mode: sim.OutageNone}); err != nil {
			t.Fatal(err)
		}
		grows("primary", served("primary"), 10) // back after one probe
		t.Logf("%s outage: served by the primary %.0f, by the backup %.0f", mode, served("primary"), served("backup"))
	}
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	for _, r := range results {
		if !r.OK() {
			t.Errorf("order #%d %s (%s %s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Auth, r.Got, r.Want, r.Err)
		}
	}
	checkLedgers(t, ctx, st, results)
	l, err := demo.AuditLedger(ctx, demo.Config{APIURL: st.APIURL, ShopKey: st.ShopKey, SimURL: st.SimURL, SimClient: st.Sim.Client()}, results)
	if err != nil || !l.OK() {
		t.Errorf("%v (%v)", l, err)
	}
	runVerify(t, ctx, s.DataDir, st.NATSURL)

	injected := st.Sim.Snapshot().FaultsInjected
	for _, kind := range []string{"outage_refuse", "outage_502", "outage_hang"} {
		if injected[kind] == 0 {
			t.Errorf("no pay call met the %s: %v", kind, injected)
		}
	}
	resp, err := http.Get(st.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`host="backup",outcome="2xx"`, `wxflow_wechat_host_state{host="primary"} 0`, `wxflow_wechat_host_state{host="backup"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(string(body), `wxflow_wechat_host_opened_total{host="primary"}`) || strings.Contains(string(body), `wxflow_wechat_host_opened_total{host="primary"} 0`) {
		t.Error("/metrics does not show the primary's breaker opening")
	}
	t.Logf("%d orders; pay calls served by the primary %.0f, by the backup %.0f; faults %v", len(results), served("primary"), served("backup"), injected)
}

// payCalls sums the WeChat Pay calls host answered with a 2xx, from the
// deployment's metrics (wxflow_wechat_calls_total by api, host, outcome).
func payCalls(t *testing.T, st *stack.Dev, host string) float64 {
	t.Helper()
	mfs, err := st.Conns.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "wxflow_wechat_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			api := labels["api"]
			pay := strings.HasPrefix(api, "/pay/") || strings.HasPrefix(api, "/secapi/") || strings.HasPrefix(api, "/v3/")
			if pay && labels["host"] == host && labels["outcome"] == "2xx" {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
