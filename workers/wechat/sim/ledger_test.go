package sim_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// instance is one run of a simulator on a folder, stoppable mid-test so
// the next one can start on the same folder.
type instance struct {
	sim  *sim.Sim
	url  string
	http *http.Client
	v3   *v3.Client
	stop func()
}

func startOn(t *testing.T, dir string, cfg sim.Config) *instance {
	t.Helper()
	cfg.KeysDir, cfg.LedgerDir = dir, dir
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = s.ServerTLSConfig()
	srv.StartTLS()
	in := &instance{sim: s, url: srv.URL}
	stopped := false
	in.stop = func() {
		if !stopped {
			stopped = true
			srv.Close()
			cancel()
			<-done
		}
	}
	t.Cleanup(in.stop)
	in.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	m, err := wechat.LoadMerchant("default", dir)
	if err != nil {
		t.Fatal(err)
	}
	if in.v3, err = v3.NewClient(v3.Config{BaseURL: in.url, Merchant: m, HTTPClient: in.http, Now: cfg.Now}); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *instance) pay(t *testing.T, prepayID string) {
	t.Helper()
	resp, err := in.http.Post(in.url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+prepayID+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sim pay: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestLedgerSurvivesRestart: a restarted simulator remembers every order
// and refund, as WeChat does. Before the ledger, a refund of an order paid
// before a restart of `wxflow dev` met ORDERNOTEXIST, and wxflow recorded
// it as a refund WeChat had closed.
func TestLedgerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// Refunds stay PROCESSING (an hour at scale 1) until settled by hand;
	// the clock moves by hand too (WeChat wants a minute between two
	// refunds of an order).
	clk := &billClock{}
	clk.Set("2024-03-10 09:00:00")
	cfg := sim.Config{TimeScale: 1, RefundDelay: time.Hour, Now: clk.Now}
	a := startOn(t, dir, cfg)
	paid := v3.PrepayRequest{Description: "wxflow-测试", OutTradeNo: "L-0001", TotalFen: 900, OpenID: "oL1", NotifyURL: "http://127.0.0.1:1/notify"}
	id, err := a.v3.PrepayJSAPI(ctx, paid)
	if err != nil {
		t.Fatal(err)
	}
	a.pay(t, id)
	before, err := a.v3.QueryByOutTradeNo(ctx, "L-0001")
	if err != nil || before.TradeState != "SUCCESS" {
		t.Fatalf("query: %+v %v", before, err)
	}
	if _, err := a.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: "L-0001", OutRefundNo: "LR-0001", TotalFen: 900, RefundFen: 300}); err != nil {
		t.Fatal(err)
	}
	unpaid := v3.PrepayRequest{Description: "later", OutTradeNo: "L-0002", TotalFen: 100, OpenID: "oL2", NotifyURL: "http://127.0.0.1:1/notify"}
	unpaidID, err := a.v3.PrepayJSAPI(ctx, unpaid)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()

	b := startOn(t, dir, cfg)
	after, err := b.v3.QueryByOutTradeNo(ctx, "L-0001")
	if err != nil || after.TradeState != "REFUND" || after.TransactionID != before.TransactionID || after.SuccessTime != before.SuccessTime {
		t.Fatalf("after the restart: %+v %v (before: %+v)", after, err, before)
	}
	if r, err := b.v3.QueryRefund(ctx, "LR-0001"); err != nil || r.Status != "PROCESSING" {
		t.Fatalf("refund after the restart: %+v %v", r, err)
	}
	if !b.sim.SettleRefund("LR-0001") {
		t.Fatal("the refund processing before the restart cannot settle")
	}
	clk.Add(2 * time.Minute)
	if r, err := b.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: "L-0001", OutRefundNo: "LR-0002", TotalFen: 900, RefundFen: 600}); err != nil || r.Status != "PROCESSING" {
		t.Fatalf("a refund of an order paid before the restart: %+v %v", r, err)
	}
	if _, err := b.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: "L-0001", OutRefundNo: "LR-0003", TotalFen: 900, RefundFen: 1}); wechat.CodeOf(err) != "NOT_ENOUGH" {
		t.Fatalf("refunding past the payment after the restart: %v", err)
	}
	if again, err := b.v3.PrepayJSAPI(ctx, unpaid); err != nil || again != unpaidID {
		t.Fatalf("the same prepay after the restart: %q %v, want %q", again, err, unpaidID)
	}
	other := unpaid
	other.TotalFen = 101
	if _, err := b.v3.PrepayJSAPI(ctx, other); wechat.CodeOf(err) != "OUT_TRADE_NO_USED" {
		t.Fatalf("other parameters for a number used before the restart: %v", err)
	}
	b.pay(t, unpaidID)
	tx2, err := b.v3.QueryByOutTradeNo(ctx, "L-0002")
	if err != nil || tx2.TransactionID == "" || tx2.TransactionID == before.TransactionID {
		t.Fatalf("a payment after the restart has transaction id %q (the first: %q): %v", tx2.TransactionID, before.TransactionID, err)
	}
	b.stop()

	// A process killed mid-write leaves a torn last line: it is skipped.
	f, err := os.OpenFile(filepath.Join(dir, sim.LedgerFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"order":{"api":"v3","out_trade_no":"L-TORN"`)
	f.Close()
	c := startOn(t, dir, cfg)
	if r, err := c.v3.QueryRefund(ctx, "LR-0001"); err != nil || r.Status != "SUCCESS" {
		t.Fatalf("the settled refund after a second restart: %+v %v", r, err)
	}
	if _, err := c.v3.QueryByOutTradeNo(ctx, "L-TORN"); !errors.Is(err, wechat.ErrOrderNotExist) {
		t.Fatalf("the torn line was read: %v", err)
	}
	st := c.sim.Snapshot()
	if len(st.Orders) != 2 || len(st.Refunds) != 2 {
		t.Fatalf("after compaction: %d orders, %d refunds", len(st.Orders), len(st.Refunds))
	}
	c.stop()
	if raw, _ := os.ReadFile(filepath.Join(dir, sim.LedgerFile)); strings.Count(string(raw), "\n") < 4 {
		t.Fatalf("the ledger lost lines: %q", raw)
	}
	if st, err := os.Stat(filepath.Join(dir, sim.LedgerFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger mode: %v %v", st, err)
	}
}

// TestLedgerRefusesAGarbledLine: a line in the middle that does not read
// is not a torn write but a damaged file: the simulator refuses to start
// rather than forget what came after it.
func TestLedgerRefusesAGarbledLine(t *testing.T) {
	dir := t.TempDir()
	if _, err := sim.EnsureKeys(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sim.LedgerFile), []byte("not json\n{\"seq\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.New(sim.Config{KeysDir: dir, LedgerDir: dir}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("started on a garbled ledger: %v", err)
	}
}
