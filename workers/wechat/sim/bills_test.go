package sim_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// billClock is a settable clock shared by the simulator and the clients.
type billClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *billClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *billClock) Set(s string)        { c.mu.Lock(); defer c.mu.Unlock(); c.now = beijingAt(s) }
func (c *billClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }
func beijingAt(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, bill.Beijing())
	if err != nil {
		panic(err)
	}
	return t
}

// billWorld is a simulator on a settable clock and both pay clients.
type billWorld struct {
	sim   *sim.Sim
	clock *billClock
	url   string
	http  *http.Client
	v2    *v2.Client
	v3    *v3.Client
}

func newBillWorld(t *testing.T, cfg sim.Config) *billWorld {
	t.Helper()
	w := &billWorld{clock: &billClock{}}
	w.clock.Set("2024-03-10 09:00:00")
	cfg.KeysDir, cfg.Now, cfg.TimeScale = t.TempDir(), w.clock.Now, 1
	cfg.RefundDelay = 1000 * time.Hour // settled by hand, at the time the test says
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.sim = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = s.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	w.url = srv.URL
	m, err := wechat.LoadMerchant("default", cfg.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	w.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	if w.v2, err = v2.NewClient(v2.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, RootCAs: s.RootCAs()}); err != nil {
		t.Fatal(err)
	}
	if w.v3, err = v3.NewClient(v3.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, Now: w.clock.Now}); err != nil {
		t.Fatal(err)
	}
	return w
}

// pays makes an order (v3) and pays it at the given Beijing time.
func (w *billWorld) pays(t *testing.T, outTradeNo string, fen int64, at string) {
	t.Helper()
	id, err := w.v3.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "wxflow-测试商品", OutTradeNo: outTradeNo, TotalFen: fen,
		OpenID: "oTEST-" + outTradeNo, NotifyURL: "http://127.0.0.1:1/notify"})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Set(at)
	resp, err := w.http.Post(w.url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+id+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pay: %v %v", err, resp)
	}
	resp.Body.Close()
}

func (w *billWorld) refunds(t *testing.T, outTradeNo, outRefundNo string, total, fen int64, at string) {
	t.Helper()
	w.clock.Set(at)
	if _, err := w.v3.Refund(context.Background(), v3.RefundRequest{OutTradeNo: outTradeNo, OutRefundNo: outRefundNo, TotalFen: total, RefundFen: fen}); err != nil {
		t.Fatal(err)
	}
}

// v3Bill applies for and downloads a trade bill.
func (w *billWorld) v3Bill(t *testing.T, d bill.Date, typ bill.Type) ([]byte, error) {
	t.Helper()
	loc, err := w.v3.TradeBill(context.Background(), d, typ)
	if err != nil {
		return nil, err
	}
	return w.v3.DownloadBill(context.Background(), loc)
}

// The worked example's day, played through the simulator: two payments and
// a partial refund on 2024-03-10, at 0.60%.
func exampleDay(t *testing.T, w *billWorld) {
	w.pays(t, "wxflow-20240310-0001", 8800, "2024-03-10 09:15:02")
	w.pays(t, "wxflow-20240310-0002", 1234, "2024-03-10 14:40:51")
	w.refunds(t, "wxflow-20240310-0001", "wxflow-R-20240310-0001", 8800, 3000, "2024-03-10 18:02:05")
	w.clock.Set("2024-03-10 18:02:08")
	if !w.sim.SettleRefund("wxflow-R-20240310-0001") {
		t.Fatal("settle")
	}
}

func TestBillsFromTheLedger(t *testing.T) {
	w := newBillWorld(t, sim.Config{})
	exampleDay(t, w)
	day := bill.NewDate(2024, 3, 10)
	ctx := context.Background()

	// Not before 10:00 the next day, Beijing time.
	for _, at := range []string{"2024-03-10 23:59:59", "2024-03-11 09:59:59"} {
		w.clock.Set(at)
		if _, err := w.v3Bill(t, day, bill.All); !errors.Is(err, wechat.ErrBillNotReady) {
			t.Fatalf("v3 at %s: %v", at, err)
		}
		if _, err := w.v2.DownloadBill(ctx, day, bill.All); !errors.Is(err, wechat.ErrBillNotReady) || !wechat.IsRetryable(err) {
			t.Fatalf("v2 at %s: %v", at, err)
		}
	}
	w.clock.Set("2024-03-11 10:00:00")
	v3all, err := w.v3Bill(t, day, bill.All)
	if err != nil {
		t.Fatal(err)
	}
	v2all, err := w.v2.DownloadBill(ctx, day, bill.All)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v2all, v3all) {
		t.Fatal("v2 and v3 give different bytes for the same bill")
	}
	b, err := bill.Parse(v3all)
	if err != nil {
		t.Fatal(err)
	}
	want := bill.Summary{Count: 3, SettlementFen: 10034, RefundFen: 3000, Fee: bill.FeeFromFen(42), TotalFen: 10034, RequestedRefundFen: 3000}
	if b.Type != bill.All || b.Legacy || b.Summary != want {
		t.Fatalf("ALL bill: %s legacy %v summary %+v", b.Type, b.Legacy, b.Summary)
	}
	r := b.Rows[2]
	if !r.IsRefund() || r.OutRefundNo != "wxflow-R-20240310-0001" || r.RefundStatus != "SUCCESS" || r.Fee.String() != "-0.18000" ||
		!r.TradeTime.Equal(beijingAt("2024-03-10 18:02:05")) || r.TransactionID != b.Rows[0].TransactionID || r.Body != "wxflow-测试商品" {
		t.Fatalf("refund row: %+v", r)
	}
	if !bytes.HasPrefix(v3all, []byte("\uFEFF交易时间,")) || !bytes.HasSuffix(v3all, []byte("\r\n`3,`100.34,`30.00,`0.00,`0.42000,`100.34,`30.00\r\n")) {
		t.Fatalf("not WeChat's shape: %q", v3all)
	}
	success, err := w.v3Bill(t, day, bill.Success)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := bill.Parse(success); err != nil || b.Type != bill.Success || len(b.Rows) != 2 || b.Summary.Fee.String() != "0.60000" {
		t.Fatalf("SUCCESS bill: %+v %v", b, err)
	}
	refund, err := w.v3Bill(t, day, bill.Refund)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := bill.Parse(refund)
	if err != nil || rb.Type != bill.Refund || len(rb.Rows) != 1 {
		t.Fatalf("REFUND bill: %+v %v", rb, err)
	}
	if rr := rb.Rows[0]; !rr.TradeTime.Equal(beijingAt("2024-03-10 09:15:02")) || !rr.RefundRequestedAt.Equal(beijingAt("2024-03-10 18:02:05")) ||
		!rr.RefundSucceededAt.Equal(beijingAt("2024-03-10 18:02:08")) {
		t.Fatalf("REFUND row times: %+v", rr)
	}

	// A day without trades has no bill; tomorrow and older than three months are not days.
	w.clock.Set("2024-03-11 12:00:00")
	if _, err := w.v3Bill(t, bill.NewDate(2024, 3, 9), bill.All); !errors.Is(err, wechat.ErrNoBill) {
		t.Fatalf("v3 empty day: %v", err)
	}
	if _, err := w.v2.DownloadBill(ctx, bill.NewDate(2024, 3, 9), bill.All); !errors.Is(err, wechat.ErrNoBill) || wechat.IsRetryable(err) {
		t.Fatalf("v2 empty day: %v", err)
	}
	for _, d := range []bill.Date{bill.NewDate(2024, 3, 12), bill.NewDate(2023, 12, 1)} {
		if _, err := w.v3Bill(t, d, bill.All); wechat.CodeOf(err) != "INVALID_REQUEST" {
			t.Fatalf("v3 %s: %v", d, err)
		}
		if _, err := w.v2.DownloadBill(ctx, d, bill.All); wechat.CodeOf(err) != "invalid bill_date" {
			t.Fatalf("v2 %s: %v", d, err)
		}
	}

	// A bill is made once: a refund of the day settled after 10:00 the
	// next day stays PROCESSING in it, and every download is the same bytes.
	w.clock.Set("2024-03-10 23:30:00")
	w.refunds(t, "wxflow-20240310-0002", "wxflow-R-20240310-0002", 1234, 1234, "2024-03-10 23:30:00")
	w.clock.Set("2024-03-11 11:00:00")
	first, err := w.v3Bill(t, day, bill.All)
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SettleRefund("wxflow-R-20240310-0002")
	w.clock.Set("2024-03-11 12:00:00")
	second, err := w.v3Bill(t, day, bill.All)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("the bill changed after it was made: %v", err)
	}
	if !bytes.Contains(second, []byte("`wxflow-R-20240310-0002,`12.34,`0.00,`ORIGINAL,`PROCESSING,")) {
		t.Fatalf("the late refund: %q", second)
	}

	// The fund-flow bill: each payment in less its fee, each refund out.
	loc, err := w.v3.FundFlowBill(ctx, day, "BASIC")
	if err != nil {
		t.Fatal(err)
	}
	data, err := w.v3.DownloadBill(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	ff, err := bill.ParseFundFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	if s := ff.Summary; s.IncomeCount != 2 || s.IncomeFen != 8800-53+1234-7 || s.ExpenseCount != 2 || s.ExpenseFen != 3000-18+1234-7 {
		t.Fatalf("fund flow: %+v", s)
	}
	if _, err := w.v3.FundFlowBill(ctx, day, "FEES"); !errors.Is(err, wechat.ErrNoBill) {
		t.Fatalf("the FEES account: %v", err)
	}
}

// TestBillsAtOnce: with BillsAtOnce, today's bill is there as it stands.
func TestBillsAtOnce(t *testing.T) {
	w := newBillWorld(t, sim.Config{BillsAtOnce: true})
	w.pays(t, "T-1", 100, "2024-03-10 09:15:02")
	data, err := w.v3Bill(t, bill.NewDate(2024, 3, 10), bill.All)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := bill.Parse(data); err != nil || len(b.Rows) != 1 {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := w.v2.DownloadBill(context.Background(), bill.NewDate(2024, 3, 11), bill.All); wechat.CodeOf(err) != "invalid bill_date" {
		t.Fatalf("tomorrow: %v", err)
	}
}

// TestBillDownloadRefusals: a corrupted download is refused by its hash; a
// download URL works for one merchant, signed, for minutes, and the client
// sends its Authorization to WeChat's host whatever host the URL names.
func TestBillDownloadRefusals(t *testing.T) {
	w := newBillWorld(t, sim.Config{Faults: sim.Faults{CorruptBillRate: 1, Seed: 1}})
	exampleDay(t, w)
	w.clock.Set("2024-03-11 10:00:00")
	ctx := context.Background()
	loc, err := w.v3.TradeBill(ctx, bill.NewDate(2024, 3, 10), bill.All)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.v3.DownloadBill(ctx, loc); !errors.Is(err, wechat.ErrBillHash) || !wechat.IsRetryable(err) {
		t.Fatalf("corrupted download: %v", err)
	}
	if n := w.sim.Snapshot().FaultsInjected["bill_corrupted"]; n != 1 {
		t.Fatalf("bill_corrupted %d", n)
	}
	if _, err := w.http.Post(w.url+"/sim/faults", "application/json", strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	}
	elsewhere := loc
	elsewhere.DownloadURL = strings.Replace(loc.DownloadURL, w.url[len("https://"):], "evil.example", 1)
	if data, err := w.v3.DownloadBill(ctx, elsewhere); err != nil || bill.SHA1(data) != strings.ToLower(loc.HashValue) {
		t.Fatalf("a URL naming another host: %v", err)
	}
	badPath := loc
	badPath.DownloadURL = strings.Replace(loc.DownloadURL, "/v3/billdownload/file", "/v3/pay/transactions/jsapi", 1)
	if _, err := w.v3.DownloadBill(ctx, badPath); !errors.Is(err, wechat.ErrMalformed) {
		t.Fatalf("a URL with another path: %v", err)
	}
	wrongHash := loc
	wrongHash.HashValue = strings.Repeat("0", 40)
	if _, err := w.v3.DownloadBill(ctx, wrongHash); !errors.Is(err, wechat.ErrBillHash) {
		t.Fatalf("a hash that does not match: %v", err)
	}
	// Unsigned, or signed by someone else: refused.
	resp, err := w.http.Get(loc.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Wechatpay-Signature") != "" {
		t.Fatalf("unsigned download: HTTP %d %s", resp.StatusCode, body)
	}
	// The URL expires after five minutes: apply again.
	w.clock.Add(6 * time.Minute)
	if _, err := w.v3.DownloadBill(ctx, loc); wechat.CodeOf(err) != "" && !wechat.IsRetryable(err) || err == nil {
		t.Fatalf("an expired URL: %v", err)
	}
}
