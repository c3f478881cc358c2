package books_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/books"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/sim/simtest"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// clock is the time of the simulator, the clients, the engine and the books.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(s string) {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.FixedZone("CST", 8*3600))
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// world is WeChat (the simulator) and wxflow (a store, an engine applying
// commands by hand, NATS) on one clock, and the books between them.
type world struct {
	t        *testing.T
	clock    *clock
	sim      *sim.Sim
	simURL   string
	http     *http.Client
	merchant *wechat.Merchant
	v2       *v2.Client
	v3       *v3.Client
	store    *engine.Store
	engine   *engine.Engine
	nc       *nats.Conn
	n        int
	// repairs are the commands the books published, by verb.
	mu      sync.Mutex
	repairs []engine.Command
}

const day = engine.Day("2024-03-10")

func newWorld(t *testing.T, faults sim.Faults) *world {
	t.Helper()
	w := &world{t: t, clock: &clock{}}
	w.clock.Set("2024-03-10 09:00:00")
	keys := t.TempDir()
	w.sim, w.simURL, w.http = simtest.Start(t, sim.Config{KeysDir: keys, Now: w.clock.Now, TimeScale: 1, RefundDelay: 1000 * time.Hour,
		Faults: faults, Logger: slog.New(slog.DiscardHandler)})
	var err error
	if w.merchant, err = wechat.LoadMerchant("default", keys); err != nil {
		t.Fatal(err)
	}
	if w.v2, err = v2.NewClient(v2.Config{BaseURL: w.simURL, Merchant: w.merchant, HTTPClient: w.http, RootCAs: w.sim.RootCAs()}); err != nil {
		t.Fatal(err)
	}
	if w.v3, err = v3.NewClient(v3.Config{BaseURL: w.simURL, Merchant: w.merchant, HTTPClient: w.http, Now: w.clock.Now}); err != nil {
		t.Fatal(err)
	}
	w.store = enginetest.OpenSQLite(t)
	var js jetstream.JetStream
	_, w.nc, js = enginetest.StartNATS(t)
	if w.engine, err = engine.New(engine.Config{Now: w.clock.Now}, w.store, w.nc, js); err != nil {
		t.Fatal(err)
	}
	sub, err := w.nc.Subscribe("wxflow.cmd.*.books", func(m *nats.Msg) {
		var c engine.Command
		if json.Unmarshal(m.Data, &c) == nil {
			w.mu.Lock()
			w.repairs = append(w.repairs, c)
			w.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return w
}

func (w *world) books(api string) *books.Books {
	w.t.Helper()
	js, err := jetstream.New(w.nc)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := books.New(books.Config{Merchant: w.merchant, V2: w.v2, V3: w.v3, API: api, Store: w.store, JS: js, Now: w.clock.Now,
		Backoff: time.Millisecond, Attempts: 3})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) apply(c engine.Command) {
	w.t.Helper()
	w.n++
	c.ID, c.Actor, c.At = fmt.Sprintf("%s:%s:%d", c.Verb, c.OrderID, w.n), "test", w.clock.Now()
	res, err := w.engine.Apply(context.Background(), c)
	if err != nil || !res.Applied {
		w.t.Fatalf("%s %s: %+v %v", c.Verb, c.OrderID, res, err)
	}
}

// order makes an order in wxflow (signed) and at WeChat (prepaid); its id
// is its out_trade_no.
func (w *world) order(id string, fen int64) string {
	w.t.Helper()
	prepay, err := w.v3.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "d", OutTradeNo: id, TotalFen: fen, OpenID: "o-" + id,
		NotifyURL: "http://127.0.0.1:1/notify"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.apply(engine.Command{Verb: engine.VerbCreate, OrderID: engine.OrderID(id), Create: &engine.CreateOrder{Merchant: "default", OutTradeNo: id,
		Description: "d", AmountFen: fen, PayAPI: engine.PayV3, Client: engine.ClientJSAPI, OpenID: "o-" + id,
		ExpiresAt: w.clock.Now().Add(72 * time.Hour), RequestHash: "h-" + id}})
	w.apply(engine.Command{Verb: engine.VerbPrepaid, OrderID: engine.OrderID(id), Prepaid: &engine.PrepaidInfo{PrepayID: prepay}})
	w.apply(engine.Command{Verb: engine.VerbSigned, OrderID: engine.OrderID(id), Signed: &engine.SignedInfo{PayParams: engine.RawJSON(`{}`)}})
	return prepay
}

// payAtWechat is the payer paying (WeChat's side only).
func (w *world) payAtWechat(prepay string) {
	w.t.Helper()
	resp, err := w.http.Post(w.simURL+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+prepay+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("pay: %v %v", err, resp)
	}
	resp.Body.Close()
}

// recordPayment is wxflow hearing of the payment, as WeChat reports it.
func (w *world) recordPayment(id string) {
	w.t.Helper()
	tx, err := w.v3.QueryByOutTradeNo(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	paidAt, _ := time.Parse(time.RFC3339, tx.SuccessTime)
	w.apply(engine.Command{Verb: engine.VerbNotify, OrderID: engine.OrderID(id), Notify: &engine.Payment{TransactionID: tx.TransactionID,
		AmountFen: tx.Amount.Total, PaidAt: paidAt, Source: engine.SourceQuery}})
}

func (w *world) commands() []engine.Command {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]engine.Command(nil), w.repairs...)
}

func find(r engine.BooksResult, trade, key string) engine.BooksLine {
	for _, l := range r.Lines {
		if l.Trade == trade && (trade == "payment" && l.OutTradeNo == key || trade == "refund" && l.OutRefundNo == key) {
			return l
		}
	}
	return engine.BooksLine{Kind: "absent"}
}

// TestBooksDay: a day of trades at WeChat and in wxflow, reconciled from
// the simulator's real bill: a payment wxflow never heard of (its
// notification dropped, no reconciler) is queried; a payment wxflow has
// that the bill lacks and a refund whose amount differs are flagged; the
// fees are WeChat's; a re-run is the same result; the v2 bill gives the same.
func TestBooksDay(t *testing.T) {
	w := newWorld(t, sim.Faults{})
	ctx := context.Background()
	// Matched: paid at WeChat, recorded in wxflow; a refund of it settled on both sides.
	p := w.order("T-MATCHED", 8800)
	w.clock.Set("2024-03-10 09:15:02")
	w.payAtWechat(p)
	w.recordPayment("T-MATCHED")
	w.clock.Set("2024-03-10 18:02:05")
	if _, err := w.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: "T-MATCHED", OutRefundNo: "R-MATCHED", TotalFen: 8800, RefundFen: 3000}); err != nil {
		t.Fatal(err)
	}
	w.apply(engine.Command{Verb: engine.VerbRefund, OrderID: "T-MATCHED", Refund: &engine.RefundAsk{OutRefundNo: "R-MATCHED", AmountFen: 3000}})
	w.sim.SettleRefund("R-MATCHED")
	w.apply(engine.Command{Verb: engine.VerbRefunded, OrderID: "T-MATCHED", Refunded: &engine.RefundDone{OutRefundNo: "R-MATCHED", Succeeded: true, Source: engine.SourceQuery}})
	// Never heard of: WeChat took the money, the notification was lost, no reconciler asked.
	w.clock.Set("2024-03-10 10:00:00")
	lost := w.order("T-LOST", 1234)
	w.payAtWechat(lost)
	// In wxflow, not at WeChat: a payment recorded that WeChat's bill lacks.
	w.order("T-GHOST", 500)
	w.apply(engine.Command{Verb: engine.VerbNotify, OrderID: "T-GHOST", Notify: &engine.Payment{TransactionID: "4200000000GHOST",
		AmountFen: 500, PaidAt: w.clock.Now(), Source: engine.SourceQuery}})
	// A refund amount that differs: WeChat refunded 300, wxflow asked 290.
	diff := w.order("T-DIFF", 1000)
	w.payAtWechat(diff)
	w.recordPayment("T-DIFF")
	w.clock.Set("2024-03-10 11:00:00")
	if _, err := w.v3.Refund(ctx, v3.RefundRequest{OutTradeNo: "T-DIFF", OutRefundNo: "R-DIFF", TotalFen: 1000, RefundFen: 300}); err != nil {
		t.Fatal(err)
	}
	w.apply(engine.Command{Verb: engine.VerbRefund, OrderID: "T-DIFF", Refund: &engine.RefundAsk{OutRefundNo: "R-DIFF", AmountFen: 290}})
	w.sim.SettleRefund("R-DIFF")
	w.apply(engine.Command{Verb: engine.VerbRefunded, OrderID: "T-DIFF", Refunded: &engine.RefundDone{OutRefundNo: "R-DIFF", Succeeded: true, Source: engine.SourceQuery}})

	b := w.books("v3")
	// Not before WeChat has made the bill: 10:00 the next day.
	w.clock.Set("2024-03-11 09:59:00")
	if _, err := b.RunDay(ctx, day); !errors.Is(err, books.ErrNotReady) {
		t.Fatalf("before 10:00: %v", err)
	}
	if _, err := w.store.Books(ctx, "default", day); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a result stored before the bill: %v", err)
	}
	w.clock.Set("2024-03-11 10:30:00")
	r, err := b.RunDay(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		trade, key string
		kind       engine.BooksKind
		repair     string
	}{
		{"payment", "T-MATCHED", engine.BooksMatched, ""},
		{"refund", "R-MATCHED", engine.BooksMatched, ""},
		{"payment", "T-LOST", engine.BooksMissingInWxflow, engine.RepairQuery},
		{"payment", "T-GHOST", engine.BooksMissingAtWechat, engine.RepairFlag},
		{"payment", "T-DIFF", engine.BooksMatched, ""},
		{"refund", "R-DIFF", engine.BooksAmountDiffers, engine.RepairFlag},
	} {
		if l := find(r, tt.trade, tt.key); l.Kind != tt.kind || l.Repair != tt.repair {
			t.Errorf("%s %s: %s %q (%s), want %s %q", tt.trade, tt.key, l.Kind, l.Repair, l.Detail, tt.kind, tt.repair)
		}
	}
	if !r.Final || r.Status != engine.BooksUnbalanced || len(r.Lines) != 6 {
		t.Fatalf("final %v status %s, %d lines", r.Final, r.Status, len(r.Lines))
	}
	// WeChat's fees at 0.60%, per row: 52.8 → 53, 7.404 → 7, 6, and -18 and -1.8 → -2 given back.
	if got, want := r.Totals.FeeMilliFen, int64((53+7+6-18-2)*1000); got != want {
		t.Errorf("fees %d, want %d", got, want)
	}
	if r.Totals.WechatPaidFen != 8800+1234+1000 || r.Totals.WxflowPaidFen != 8800+500+1000 || r.Totals.WechatRefundedFen != 3300 {
		t.Errorf("totals %+v", r.Totals)
	}
	// The repairs, published as the books: a replay of T-LOST, flags of T-GHOST and T-DIFF.
	enginetest.WaitFor(t, 10*time.Second, func() error {
		if len(w.commands()) < 3 {
			return fmt.Errorf("%d repairs published", len(w.commands()))
		}
		return nil
	})
	got := map[string]string{}
	for _, c := range w.commands() {
		flag := ""
		if c.Flag != nil {
			flag = c.Flag.Reason
		}
		got[string(c.OrderID)] = string(c.Verb) + " " + flag
	}
	want := map[string]string{"T-LOST": "replay ", "T-GHOST": "flag " + engine.FlagBooksMissingAtWechat, "T-DIFF": "flag " + engine.FlagBooksAmountDiffers}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("repair of %s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	// Re-running is idempotent; the flags are one command each, whatever the runs.
	again, err := b.RunDay(ctx, day)
	if err != nil || !engine.SameBooks(r, again) || again.Runs != 2 {
		t.Fatalf("re-run: %v runs %d same %v", err, again.Runs, engine.SameBooks(r, again))
	}
	bills, err := w.store.Bills(ctx, "default", day)
	if err != nil || len(bills) != 2 || bills[0].API != "v3" {
		t.Fatalf("bills kept (the trade bill once, the fund-flow bill): %+v %v", bills, err)
	}
	// The v2 bill is the same bytes, and the same books.
	viaV2, err := w.books("v2").RunDay(ctx, day)
	if err != nil || !engine.SameBooks(r, viaV2) {
		t.Fatalf("via v2: %v, same %v", err, engine.SameBooks(r, viaV2))
	}
	// The query worker's answer recorded, T-LOST matches on the next run.
	w.recordPayment("T-LOST")
	after, err := b.RunDay(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if l := find(after, "payment", "T-LOST"); l.Kind != engine.BooksMatched {
		t.Fatalf("T-LOST after its query: %+v", l)
	}
	due, err := b.Due(ctx)
	if err != nil || len(due) != 6 || due[5] == day {
		t.Fatalf("days due on 2024-03-11 (the six before, not the one run and settled): %v %v", due, err)
	}
}

// TestBooksEmptyDay: a day without trades has no bill at WeChat; its books
// balance, and nothing is an error.
func TestBooksEmptyDay(t *testing.T) {
	w := newWorld(t, sim.Faults{})
	w.clock.Set("2024-03-11 11:00:00")
	for _, api := range []string{"v3", "v2"} {
		r, err := w.books(api).RunDay(context.Background(), day)
		if err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		if !r.NoBill || r.Status != engine.BooksBalanced || len(r.Lines) != 0 || !r.Final {
			t.Fatalf("%s: %+v", api, r)
		}
	}
}

// TestBooksRefuseCorruptedDownloads: a download whose SHA-1 is not the one
// WeChat signed is refused and asked for again; when every one is, the run
// fails and stores nothing.
func TestBooksRefuseCorruptedDownloads(t *testing.T) {
	w := newWorld(t, sim.Faults{CorruptBillRate: 1, Seed: 3})
	p := w.order("T-1", 100)
	w.payAtWechat(p)
	w.recordPayment("T-1")
	w.clock.Set("2024-03-11 11:00:00")
	b := w.books("v3")
	ctx := context.Background()
	if _, err := b.RunDay(ctx, day); !errors.Is(err, wechat.ErrBillHash) {
		t.Fatalf("every download corrupted: %v", err)
	}
	if n := w.sim.Snapshot().FaultsInjected["bill_corrupted"]; n != 3 {
		t.Fatalf("%d downloads tried, want 3", n)
	}
	if _, err := w.store.Books(ctx, "default", day); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a result stored from a corrupted bill: %v", err)
	}
	// Half of them corrupted: the run gets there.
	resp, err := w.http.Post(w.simURL+"/sim/faults", "application/json", strings.NewReader(`{"corrupt_bill_rate":0.5,"seed":11}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b = w.books("v3")
	var r engine.BooksResult
	for range 5 { // three attempts a run, each corrupted with a chance of one half
		if r, err = b.RunDay(ctx, day); err == nil {
			break
		}
	}
	if err != nil || r.Status != engine.BooksBalanced {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestBooksLease: a day another process is running is not run twice.
func TestBooksLease(t *testing.T) {
	w := newWorld(t, sim.Faults{})
	w.clock.Set("2024-03-11 11:00:00")
	ok, err := w.store.TakeLease(context.Background(), "books:default:"+string(day), "another process", w.clock.Now(), time.Minute)
	if err != nil || !ok {
		t.Fatal(err)
	}
	if _, err := w.books("v3").RunDay(context.Background(), day); !errors.Is(err, books.ErrBusy) {
		t.Fatalf("a day leased elsewhere: %v", err)
	}
}

// TestBooksRunOnDemand: a request on RunSubject runs the day and answers.
func TestBooksRunOnDemand(t *testing.T) {
	w := newWorld(t, sim.Faults{})
	w.clock.Set("2024-03-11 11:00:00")
	b := w.books("v3")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, w.nc) }()
	defer func() { cancel(); <-done }()
	ask := func(body string) books.RunReply {
		t.Helper()
		var reply books.RunReply
		enginetest.WaitFor(t, 10*time.Second, func() error {
			m, err := w.nc.Request(books.RunSubject("default"), []byte(body), 5*time.Second)
			if err != nil {
				return err
			}
			return json.Unmarshal(m.Data, &reply)
		})
		return reply
	}
	if r := ask(`{"day":"2024-03-10"}`); r.Code != "ok" || r.Status != engine.BooksBalanced {
		t.Fatalf("%+v", r)
	}
	if r := ask(`{"day":"2024-03-12"}`); r.Code != "error" || !strings.Contains(r.Error, "INVALID_REQUEST") {
		t.Fatalf("a day to come: %+v", r)
	}
	for _, bad := range []string{`{"day":"10/03/2024"}`, `not json`, `{"day":"2024-03-10' OR 1=1"}`} {
		if r := ask(bad); r.Code != "error" {
			t.Fatalf("%s: %+v", bad, r)
		}
	}
}
