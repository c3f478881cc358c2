package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// booksWorld is an engine on a clock, and the day under test: 2024-03-10.
type booksWorld struct {
	t     *testing.T
	e     *engine.Engine
	store *engine.Store
	clock *clock
	n     int
}

var booksDay = engine.Day("2024-03-10")

// at is a time of booksDay (or another day) in Beijing time: "09:15:02" or "2024-03-11 00:00:30".
func at(s string) time.Time {
	if len(s) == 8 {
		s = string(booksDay) + " " + s
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.FixedZone("CST", 8*3600))
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func newBooksWorld(t *testing.T, store *engine.Store) *booksWorld {
	t.Helper()
	_, nc, js := enginetest.StartNATS(t)
	c := newClock(at("08:00:00"))
	e, err := engine.New(engine.Config{Now: c.Now}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	return &booksWorld{t: t, e: e, store: store, clock: c}
}

func (w *booksWorld) apply(c engine.Command) {
	w.t.Helper()
	w.n++
	c.ID = fmt.Sprintf("%s:%s:%d", c.Verb, c.OrderID, w.n)
	if c.Actor == "" {
		c.Actor = "test"
	}
	res, err := w.e.Apply(context.Background(), c)
	if err != nil || !res.Applied {
		w.t.Fatalf("%s %s: %+v %v", c.Verb, c.OrderID, res, err)
	}
}

// signed makes an order waiting for its payer; its out_trade_no is the id.
func (w *booksWorld) signed(id engine.OrderID, fen int64) {
	w.t.Helper()
	w.apply(engine.Command{Verb: engine.VerbCreate, OrderID: id, Create: &engine.CreateOrder{Merchant: "m", OutTradeNo: string(id),
		Description: "d", AmountFen: fen, PayAPI: engine.PayV3, Client: engine.ClientJSAPI, OpenID: "o-" + string(id),
		ExpiresAt: at("23:59:59").Add(48 * time.Hour), RequestHash: "h-" + string(id)}})
	w.apply(engine.Command{Verb: engine.VerbPrepaid, OrderID: id, Prepaid: &engine.PrepaidInfo{PrepayID: "wx-" + string(id)}})
	w.apply(engine.Command{Verb: engine.VerbSigned, OrderID: id, Signed: &engine.SignedInfo{PayParams: engine.RawJSON(`{}`)}})
}

// paid makes an order paid at WeChat at the given time.
func (w *booksWorld) paid(id engine.OrderID, fen int64, when string) {
	w.t.Helper()
	w.signed(id, fen)
	w.apply(engine.Command{Verb: engine.VerbNotify, OrderID: id, At: at(when).Add(time.Second), Notify: &engine.Payment{
		TransactionID: "tx-" + string(id), AmountFen: fen, PaidAt: at(when), Source: engine.SourceNotification}})
}

// refund asks for a refund at the clock's time "asked", and settles it at "settled" ("" leaves it pending).
func (w *booksWorld) refund(id engine.OrderID, no string, fen int64, asked, settled string) {
	w.t.Helper()
	w.clock.now = at(asked)
	w.apply(engine.Command{Verb: engine.VerbRefund, OrderID: id, Refund: &engine.RefundAsk{OutRefundNo: no, AmountFen: fen}})
	if settled != "" {
		w.clock.now = at(settled)
		w.apply(engine.Command{Verb: engine.VerbRefunded, OrderID: id, Refunded: &engine.RefundDone{OutRefundNo: no, Succeeded: true, Source: engine.SourceNotification}})
	}
}

func pay(no string, fen int64, when string) engine.BillTrade {
	return engine.BillTrade{At: at(when), OutTradeNo: no, TransactionID: "tx-" + no, AmountFen: fen, FeeMilliFen: fen * 6, Status: "SUCCESS"}
}

func refunded(no, refundNo string, fen int64, when, status string) engine.BillTrade {
	return engine.BillTrade{Refund: true, At: at(when), OutTradeNo: no, TransactionID: "tx-" + no, OutRefundNo: refundNo, RefundID: "503-" + refundNo,
		AmountFen: fen, FeeMilliFen: -fen * 6, Status: status}
}

func line(r engine.BooksResult, trade, key string) engine.BooksLine {
	for _, l := range r.Lines {
		if l.Trade == trade && (l.OutTradeNo == key && trade == "payment" || l.OutRefundNo == key && trade == "refund") {
			return l
		}
	}
	return engine.BooksLine{Kind: "absent"}
}

// TestBooksBuckets: every trade and refund of the day lands in exactly one
// bucket, with the repair it needs.
func TestBooksBuckets(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		w := newBooksWorld(t, store)
		ctx := context.Background()
		w.paid("A", 8800, "09:15:02") // matched
		w.paid("B", 500, "10:00:00")  // the bill lacks it
		w.signed("C", 300)            // paid at WeChat, its notification lost
		w.signed("D", 200)            // closed in wxflow, paid at WeChat
		w.apply(engine.Command{Verb: engine.VerbClose, OrderID: "D", Close: &engine.CloseAsk{Confirmed: true}})
		w.paid("E", 1000, "11:00:00")                     // WeChat says another amount
		w.paid("F", 700, "11:30:00")                      // its refund's amount differs
		w.refund("F", "RF1", 300, "12:00:00", "12:00:05") //
		w.paid("G", 600, "12:30:00")                      // refund settled at WeChat, pending in wxflow
		w.refund("G", "RG1", 600, "13:00:00", "")         //
		w.paid("H", 400, "13:30:00")                      // refund asked before midnight, settled after
		w.refund("H", "RH1", 400, "23:59:00", "2024-03-11 00:00:30")
		w.paid("I", 800, "14:00:00")                      // refund settled, not in the bill
		w.refund("I", "RI1", 800, "15:00:00", "15:01:00") //
		w.paid("J", 900, "16:00:00")                      // WeChat has a refund of it nobody asked for
		w.paid("K", 100, "16:30:00")                      // refund processing in the bill, settled since
		w.refund("K", "RK1", 100, "17:00:00", "17:00:03") //
		w.paid("L", 100, "2024-03-09 23:59:59")           // the day before: not this day's
		trades := []engine.BillTrade{
			pay("A", 8800, "09:15:02"), pay("C", 300, "09:40:00"), pay("D", 200, "09:50:00"), pay("X", 50, "10:10:00"),
			pay("E", 1200, "11:00:00"), pay("F", 700, "11:30:00"), refunded("F", "RF1", 290, "12:00:00", "SUCCESS"),
			pay("G", 600, "12:30:00"), refunded("G", "RG1", 600, "13:00:00", "SUCCESS"), pay("H", 400, "13:30:00"),
			pay("I", 800, "14:00:00"), pay("J", 900, "16:00:00"), refunded("J", "RJ9", 100, "16:10:00", "SUCCESS"),
			pay("K", 100, "16:30:00"), refunded("K", "RK1", 100, "17:00:00", "PROCESSING"),
		}
		w.clock.now = at("2024-03-11 10:00:00")
		r, err := store.RunBooks(ctx, engine.BillCopy{Merchant: "m", Day: booksDay, Kind: engine.BillTradeAll, API: "v3",
			Data: []byte("bill"), SHA1: "s1", Final: true, DownloadedAt: w.clock.now, Trades: trades}, w.clock.now)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			trade, key string
			kind       engine.BooksKind
			repair     string
			flag       string
		}{
			{"payment", "A", engine.BooksMatched, "", ""},
			{"payment", "B", engine.BooksMissingAtWechat, engine.RepairFlag, engine.FlagBooksMissingAtWechat},
			{"payment", "C", engine.BooksMissingInWxflow, engine.RepairQuery, ""},
			{"payment", "D", engine.BooksMissingInWxflow, engine.RepairFlag, engine.FlagBooksUnrecordedPayment},
			{"payment", "X", engine.BooksMissingInWxflow, engine.RepairNone, ""},
			{"payment", "E", engine.BooksAmountDiffers, engine.RepairFlag, engine.FlagBooksAmountDiffers},
			{"payment", "F", engine.BooksMatched, "", ""},
			{"refund", "RF1", engine.BooksAmountDiffers, engine.RepairFlag, engine.FlagBooksAmountDiffers},
			{"payment", "G", engine.BooksMatched, "", ""},
			{"refund", "RG1", engine.BooksStateDiffers, engine.RepairQuery, ""},
			{"payment", "H", engine.BooksMatched, "", ""},
			{"refund", "RH1", engine.BooksLater, "", ""},
			{"payment", "I", engine.BooksMatched, "", ""},
			{"refund", "RI1", engine.BooksMissingAtWechat, engine.RepairFlag, engine.FlagBooksMissingAtWechat},
			{"payment", "J", engine.BooksMatched, "", ""},
			{"refund", "RJ9", engine.BooksMissingInWxflow, engine.RepairFlag, engine.FlagBooksUnknownRefund},
			{"payment", "K", engine.BooksMatched, "", ""},
			{"refund", "RK1", engine.BooksMatched, "", ""},
		}
		for _, tt := range want {
			l := line(r, tt.trade, tt.key)
			if l.Kind != tt.kind || l.Repair != tt.repair || l.Flag != tt.flag {
				t.Errorf("%s %s: %s repair %q flag %q (%s), want %s %q %q", tt.trade, tt.key, l.Kind, l.Repair, l.Flag, l.Detail, tt.kind, tt.repair, tt.flag)
			}
		}
		if len(r.Lines) != len(want) {
			t.Errorf("%d lines, want %d (one per trade and refund): %+v", len(r.Lines), len(want), r.Lines)
		}
		if l := line(r, "payment", "L"); l.Kind != "absent" {
			t.Errorf("the day before's payment is in this day's books: %+v", l)
		}
		if r.Status != engine.BooksUnbalanced || r.Discrepancies() != 9 || r.Counts[engine.BooksMatched] != 8 || r.Counts[engine.BooksLater] != 1 {
			t.Errorf("status %s, counts %v", r.Status, r.Counts)
		}
		tot := r.Totals
		if tot.WechatPayments != 11 || tot.WechatRefunds != 4 || tot.WechatPaidFen != 8800+300+200+50+1200+700+600+400+800+900+100 ||
			tot.WechatRefundedFen != 290+600+100+100 || tot.WxflowPayments != 9 || tot.WxflowRefunds != 4 || tot.WxflowRefundedFen != 300+400+800+100 {
			t.Errorf("totals %+v", tot)
		}
		if tot.FeeMilliFen != (tot.WechatPaidFen-tot.WechatRefundedFen)*6 {
			t.Errorf("fees %d", tot.FeeMilliFen)
		}
		if has, err := store.HasTrades(ctx, "m", booksDay); err != nil || !has {
			t.Fatalf("HasTrades of the day: %v %v", has, err)
		}
		if has, err := store.HasTrades(ctx, "m", "2024-03-01"); err != nil || has {
			t.Fatalf("HasTrades of a day without: %v %v", has, err)
		}
		if n, err := store.BooksDiscrepancies(ctx, booksDay.AddDays(-7)); err != nil || n[engine.BooksMissingInWxflow] != 4 || n[engine.BooksMatched] != 0 {
			t.Fatalf("BooksDiscrepancies: %v %v", n, err)
		}
		if o, _ := store.Order(ctx, "A"); o.State != engine.Notified {
			t.Fatalf("RunBooks changed an order: %s", o.State)
		}

		// Re-running the day is idempotent: the same result, one more run.
		again, err := store.RunBooks(ctx, engine.BillCopy{Merchant: "m", Day: booksDay, Kind: engine.BillTradeAll, API: "v3",
			Data: []byte("bill"), SHA1: "s1", Final: true, DownloadedAt: w.clock.now, Trades: trades}, w.clock.now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !engine.SameBooks(r, again) || again.Runs != 2 || !again.FirstRunAt.Equal(r.FirstRunAt) {
			t.Fatalf("a re-run differs: runs %d", again.Runs)
		}
		stored, err := store.Books(ctx, "m", booksDay)
		if err != nil || !engine.SameBooks(stored, again) || stored.Runs != 2 {
			t.Fatalf("stored: %+v %v", stored, err)
		}
		bills, err := store.Bills(ctx, "m", booksDay)
		if err != nil || len(bills) != 1 || bills[0].Rows != len(trades) || !bills[0].Final {
			t.Fatalf("bills kept: %+v %v", bills, err)
		}
		if data, err := store.BillData(ctx, "m", booksDay, engine.BillTradeAll, "s1"); err != nil || string(data) != "bill" {
			t.Fatalf("bill data %q %v", data, err)
		}

		// The next day's books: H's refund, carried, is in its bill; and a
		// refund found in another day's bill is not missing from this one.
		next := booksDay.AddDays(1)
		nr, err := store.RunBooks(ctx, engine.BillCopy{Merchant: "m", Day: next, Kind: engine.BillTradeAll, API: "v3", Data: []byte("next"),
			SHA1: "s2", Final: true, Trades: []engine.BillTrade{refunded("H", "RH1", 400, "2024-03-11 00:00:01", "SUCCESS"),
				refunded("I", "RI1", 800, "2024-03-11 08:00:00", "SUCCESS")}}, w.clock.now)
		if err != nil {
			t.Fatal(err)
		}
		if l := line(nr, "refund", "RH1"); l.Kind != engine.BooksMatched || nr.Totals.WxflowRefunds != 1 {
			t.Fatalf("the carried refund on the next day: %+v, totals %+v", l, nr.Totals)
		}
		r3, err := store.RunBooks(ctx, engine.BillCopy{Merchant: "m", Day: booksDay, Kind: engine.BillTradeAll, API: "v3",
			Data: []byte("bill"), SHA1: "s1", Final: true, Trades: trades}, w.clock.now)
		if err != nil {
			t.Fatal(err)
		}
		if l := line(r3, "refund", "RI1"); l.Kind != engine.BooksMatched || l.Detail != "in the bill of 2024-03-11" {
			t.Fatalf("a refund in the next day's bill: %+v", l)
		}
	})
}

// TestBooksEmptyDay: a day WeChat has no bill for, and wxflow no trade, balances.
func TestBooksEmptyDay(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	r, err := store.RunBooks(context.Background(), engine.BillCopy{Merchant: "m", Day: booksDay, Kind: engine.BillTradeAll, NoBill: true, Final: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != engine.BooksBalanced || !r.NoBill || len(r.Lines) != 0 || r.Discrepancies() != 0 {
		t.Fatalf("%+v", r)
	}
	if bills, _ := store.Bills(context.Background(), "m", booksDay); len(bills) != 0 {
		t.Fatalf("a bill kept for an empty day: %+v", bills)
	}
	days, err := store.BooksDays(context.Background(), "", 0)
	if err != nil || len(days) != 1 || days[0].Status != engine.BooksBalanced {
		t.Fatalf("%+v %v", days, err)
	}
	if _, err := store.Books(context.Background(), "m", "2024-03-11"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a day never run: %v", err)
	}
}

// TestBooksLease: one holder at a time; it renews its own; a lapsed lease is free.
func TestBooksLease(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		now := time.Now()
		take := func(holder string, at time.Time) bool {
			t.Helper()
			ok, err := store.TakeLease(ctx, "books:m:2024-03-10", holder, at, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !take("a", now) || take("b", now.Add(time.Second)) || !take("a", now.Add(2*time.Second)) {
			t.Fatal("a takes, b is refused, a renews")
		}
		if take("b", now.Add(61*time.Second)) {
			t.Fatal("b took a's renewed lease")
		}
		if !take("b", now.Add(63*time.Second)) {
			t.Fatal("a lapsed lease is not free")
		}
		if err := store.ReleaseLease(ctx, "books:m:2024-03-10", "a"); err != nil {
			t.Fatal(err)
		}
		if take("a", now.Add(64*time.Second)) {
			t.Fatal("a released b's lease")
		}
		if err := store.ReleaseLease(ctx, "books:m:2024-03-10", "b"); err != nil {
			t.Fatal(err)
		}
		if !take("a", now.Add(65*time.Second)) {
			t.Fatal("a released lease is not free")
		}
	})
}

func TestDay(t *testing.T) {
	d, err := engine.ParseDay("2024-03-10")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Start().Equal(time.Date(2024, 3, 9, 16, 0, 0, 0, time.UTC)) || !d.End().Equal(time.Date(2024, 3, 10, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("%s runs %s – %s", d, d.Start(), d.End())
	}
	if engine.DayOf(time.Date(2024, 3, 10, 15, 59, 59, 0, time.UTC)) != d || engine.DayOf(time.Date(2024, 3, 10, 16, 0, 0, 0, time.UTC)) != "2024-03-11" {
		t.Fatal("DayOf is not Beijing's day")
	}
	if d.AddDays(-10) != "2024-02-29" || d.AddDays(1) != "2024-03-11" {
		t.Fatal("AddDays")
	}
	for _, bad := range []string{"2024-3-10", "20240310", "2024-02-30", "", "2024-03-10 "} {
		if _, err := engine.ParseDay(bad); err == nil {
			t.Errorf("ParseDay(%q) passed", bad)
		}
	}
}

// TestBooksKeepsOnePreview: of a day still running, only the latest bill is
// kept; WeChat's final bills are all kept.
func TestBooksKeepsOnePreview(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	ctx := context.Background()
	save := func(sha string, final bool) {
		t.Helper()
		if err := store.SaveBill(ctx, engine.BillCopy{Merchant: "m", Day: booksDay, Kind: engine.BillTradeAll, Data: []byte(sha), SHA1: sha,
			Final: final, DownloadedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	save("p1", false)
	save("p2", false)
	save("p2", false)
	if bills, _ := store.Bills(ctx, "m", booksDay); len(bills) != 1 || bills[0].SHA1 != "p2" {
		t.Fatalf("previews kept: %+v", bills)
	}
	save("f1", true)
	save("f2", true)
	save("p3", false)
	bills, _ := store.Bills(ctx, "m", booksDay)
	var shas []string
	for _, b := range bills {
		shas = append(shas, b.SHA1)
	}
	slices.Sort(shas)
	if fmt.Sprint(shas) != "[f1 f2 p3]" {
		t.Fatalf("bills kept: %v, want the final ones and the latest preview", shas)
	}
}
