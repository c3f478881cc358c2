package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestChaos runs orders against WeChat on a very bad day (sim.Chaos at 20%):
// a fifth of the calls fail as SYSTEMERROR, HTTP 502, no answer, a slow
// answer or an answer lost after the call was applied; every notification
// is sent twice, a fifth late and a fifth never. Every order must still end
// right, WeChat's ledger must agree with wxflow's, and verify be clean.
func TestChaos(t *testing.T) {
	orders := 84
	if testing.Short() {
		orders = 28
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn", WechatTimeout: 1500 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	faults := sim.Chaos(0.2, 13)
	faults.SlowDelay = 500 * time.Millisecond
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 2*time.Second, 2*time.Second
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01, Faults: faults}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })

	results := demo.Run(ctx, demo.Config{Orders: orders, Concurrency: 16, APIURL: st.APIURL, NotifyURL: st.PublicURL, ShopKey: st.ShopKey, SimURL: st.SimURL,
		SimClient: st.Sim.Client(), Timeout: 120 * time.Second, Forge: true})
	for _, r := range results {
		if !r.OK() {
			t.Errorf("order #%d %s (%s %s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.PayAPI, r.Got, r.Want, r.Err)
		}
	}
	checkLedgers(t, ctx, st, results)
	l, err := demo.AuditLedger(ctx, demo.Config{APIURL: st.APIURL, ShopKey: st.ShopKey, SimURL: st.SimURL, SimClient: st.Sim.Client()}, results)
	if err != nil || !l.OK() || l.ForgedSent == 0 {
		t.Errorf("%v (%v)", l, err)
	}
	t.Log(l)
	runVerify(t, ctx, s.DataDir, st.NATSURL)

	injected := st.Sim.Snapshot().FaultsInjected
	for _, kind := range []string{"system_error", "http_502", "timeout", "slow_answer", "lost_answer", "notify_dropped", "notify_reordered", "notify_duplicated"} {
		if injected[kind] == 0 {
			t.Errorf("no %s fault was injected: %v", kind, injected)
		}
	}
	newCodes := 0
	for _, r := range results {
		newCodes += r.NewCodes
	}
	t.Logf("%d orders (%d made again: their code spent by a lost answer), faults injected: %v", orders, newCodes, injected)
}
