// Package books keeps wxflow's daily books with WeChat: for each Beijing
// day and merchant it downloads WeChat's trade bill (v3 with its SHA-1
// checked, or v2), parses it (workers/wechat/bill), hands its rows to the
// store's reconciliation (engine.Store.RunBooks) and makes the repairs the
// result asks for: an order WeChat's bill shows paid and wxflow does not is
// replayed, so its worker queries WeChat and records the answer (a
// notification that never came); a discrepancy no query can settle flags the
// order for a person.
//
// It runs every day once the bills are ready (10:00 Beijing time the next
// day, and a margin), under a lease in SQL so one process does each day, and
// on demand ([Books.RunDay], and NATS requests on [RunSubject] from `wxflow
// books DAY` and the admin page). Re-running a day is idempotent.
package books

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// Origin is the books' origin on wxflow.cmd.<verb>.books (engine/origin.go).
const Origin engine.Origin = "books"

// Sentinels for the cases callers handle.
var (
	// ErrNotReady: WeChat has not made the day's bill yet; try after 10:00
	// Beijing time the next day.
	ErrNotReady = errors.New("books: WeChat's bill of the day is not ready yet")
	// ErrBusy: another process holds the day's lease and is running its books.
	ErrBusy = errors.New("books: another process is running these books")
)

// Observer hears every run of the books and every repair (metrics); optional.
type Observer interface {
	BooksRun(r engine.BooksResult)
	BooksRepair(repair string)
	BooksFailed()
}

// Config configures [Books]. Zero durations take the defaults.
type Config struct {
	// Merchant is the merchant whose books these are (its Name in the store, its MchID in the bills).
	Merchant *wechat.Merchant
	V2       *v2.Client
	V3       *v3.Client
	// API downloads the bills: "v3" (the default: the download's SHA-1 is
	// checked against WeChat's signed answer) or "v2" (unsigned: the
	// summary's sums are the only check).
	API   string
	Store *engine.Store
	// JS publishes the repairs (as origin "books").
	JS       jetstream.JetStream
	Logger   *slog.Logger
	Observer Observer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ReadyAfter is how long after a day ends the daily run looks for its
	// bill (10h30m: WeChat makes it ready at 10:00). Before that, only a
	// run on demand asks.
	ReadyAfter time.Duration
	// Interval is how often the daily run looks for days to do (1 min).
	Interval time.Duration
	// LookBack is how many days back the daily run catches up (7).
	LookBack int
	// Recheck is how long after a run with repairs (queries) the day is run
	// again to see them settled (2 min), at most MaxRuns runs in all (6).
	Recheck time.Duration
	MaxRuns int
	// Preview, when positive, runs today's books that often: a preview
	// against a bill of the day so far. Only a simulator serves one
	// (sim.Config.BillsAtOnce); `wxflow dev` uses it. Default: off.
	Preview time.Duration
	// Attempts is how many downloads one run tries before it gives up (5):
	// a download cut short or corrupted (its SHA-1 does not match) is refused
	// and asked for again. Backoff is the first wait between them (1 s), doubled.
	Attempts int
	Backoff  time.Duration
	// LeaseTTL is how long a run may hold a day (10 min).
	LeaseTTL time.Duration
}

func (c *Config) defaults() error {
	if c.Merchant == nil || c.Store == nil || c.V2 == nil && c.V3 == nil {
		return errors.New("books: Merchant, Store and a v2 or v3 client are required")
	}
	if c.API == "" {
		c.API = "v3"
		if c.V3 == nil {
			c.API = "v2"
		}
	}
	if c.API != "v2" && c.API != "v3" || c.API == "v2" && c.V2 == nil || c.API == "v3" && c.V3 == nil {
		return fmt.Errorf("books: API %q: want v2 or v3, with its client", c.API)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.ReadyAfter, 10*time.Hour+30*time.Minute)
	set(&c.Interval, time.Minute)
	set(&c.Recheck, 2*time.Minute)
	set(&c.Backoff, time.Second)
	set(&c.LeaseTTL, 10*time.Minute)
	if c.LookBack <= 0 {
		c.LookBack = 7
	}
	if c.MaxRuns <= 0 {
		c.MaxRuns = 6
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	return nil
}

// Books runs one merchant's daily books. It is safe for concurrent use.
type Books struct {
	cfg    Config
	log    *slog.Logger
	holder string
	// Repaired counts the queries published since start (for `wxflow dev`'s summary).
	Repaired atomic.Int64
}

// New checks cfg.
func New(cfg Config) (*Books, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Books{cfg: cfg, log: cfg.Logger.With("component", "books", "merchant", cfg.Merchant.Name),
		holder: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))}, nil
}

// Merchant is the name of the merchant whose books these are.
func (b *Books) Merchant() string { return b.cfg.Merchant.Name }

// RunDay runs the books of day: it takes the day's lease (else [ErrBusy]),
// downloads the bill ([ErrNotReady] when WeChat has not made it), reconciles,
// stores the result and makes its repairs. A day still running (today) is a
// preview: its repairs are queries only, never flags (a payment of the last
// second may be in wxflow and not yet in the bill).
func (b *Books) RunDay(ctx context.Context, day engine.Day) (engine.BooksResult, error) {
	if _, err := engine.ParseDay(string(day)); err != nil {
		return engine.BooksResult{}, err
	}
	start := time.Now()
	lease := "books:" + b.cfg.Merchant.Name + ":" + string(day)
	ok, err := b.cfg.Store.TakeLease(ctx, lease, b.holder, b.cfg.Now(), b.cfg.LeaseTTL)
	if err != nil {
		return engine.BooksResult{}, err
	}
	if !ok {
		return engine.BooksResult{}, ErrBusy
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = b.cfg.Store.ReleaseLease(rctx, lease, b.holder)
	}()
	bc, err := b.fetch(ctx, day)
	if err != nil {
		if !errors.Is(err, ErrNotReady) && b.cfg.Observer != nil {
			b.cfg.Observer.BooksFailed()
		}
		return engine.BooksResult{}, err
	}
	if b.cfg.API == "v3" {
		b.keepFundFlow(ctx, day)
	}
	r, err := b.cfg.Store.RunBooks(ctx, bc, b.cfg.Now())
	if err != nil {
		if b.cfg.Observer != nil {
			b.cfg.Observer.BooksFailed()
		}
		return r, err
	}
	if b.cfg.Observer != nil {
		b.cfg.Observer.BooksRun(r)
	}
	level := slog.LevelInfo
	if !r.Final && r.Discrepancies() == 0 {
		level = slog.LevelDebug // a preview that found nothing: every few seconds in dev
	}
	b.log.Log(ctx, level, "books", "day", day, "status", r.Status, "final", r.Final, "matched", r.Counts[engine.BooksMatched],
		"discrepancies", r.Discrepancies(), "wechat_payments", r.Totals.WechatPayments, "wechat_refunds", r.Totals.WechatRefunds,
		"took", time.Since(start).Round(time.Millisecond))
	return r, b.repair(ctx, r)
}

// fetch downloads and parses the day's ALL bill, trying again a download
// cut short, corrupted or refused in passing.
func (b *Books) fetch(ctx context.Context, day engine.Day) (engine.BillCopy, error) {
	d, err := bill.ParseDate(string(day))
	if err != nil {
		return engine.BillCopy{}, err
	}
	bc := engine.BillCopy{Merchant: b.cfg.Merchant.Name, Day: day, Kind: engine.BillTradeAll, API: b.cfg.API}
	wait := b.cfg.Backoff
	for attempt := 1; ; attempt++ {
		bc.DownloadedAt = b.cfg.Now().UTC()
		bc.Final = !bc.DownloadedAt.Before(day.End())
		var data []byte
		data, err = b.download(ctx, d)
		switch {
		case errors.Is(err, wechat.ErrNoBill):
			bc.NoBill = true
			return bc, nil
		case errors.Is(err, wechat.ErrBillNotReady):
			return bc, fmt.Errorf("%w (%s)", ErrNotReady, day)
		case err == nil:
			var trades []engine.BillTrade
			if trades, err = b.read(data); err == nil {
				bc.Data, bc.SHA1, bc.Trades = data, bill.SHA1(data), trades
				return bc, nil
			}
			// A v2 bill is not signed: one that does not add up was cut
			// short or altered on the way, as a v3 one with the wrong SHA-1.
		case !wechat.IsRetryable(err):
			return bc, fmt.Errorf("books %s: %w", day, err)
		}
		b.log.Warn("books: bill download refused; asking again", "day", day, "attempt", attempt, "err", err)
		if attempt >= b.cfg.Attempts {
			return bc, fmt.Errorf("books %s: %d downloads failed, the last: %w", day, attempt, err)
		}
		select {
		case <-ctx.Done():
			return bc, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// download gets the ALL bill of day d through the configured API.
func (b *Books) download(ctx context.Context, d bill.Date) ([]byte, error) {
	if b.cfg.API == "v2" {
		return b.cfg.V2.DownloadBill(ctx, d, bill.All)
	}
	loc, err := b.cfg.V3.TradeBill(ctx, d, bill.All)
	if err != nil {
		return nil, err
	}
	return b.cfg.V3.DownloadBill(ctx, loc)
}

// read parses a bill into wxflow's words, refusing one of another merchant.
func (b *Books) read(data []byte) ([]engine.BillTrade, error) {
	p, err := bill.Parse(data)
	if err != nil {
		return nil, err
	}
	trades := make([]engine.BillTrade, 0, len(p.Rows))
	for i, r := range p.Rows {
		if r.MchID != b.cfg.Merchant.MchID {
			return nil, fmt.Errorf("%w: row %d is merchant %s's, not %s's", wechat.ErrForeign, i+1, r.MchID, b.cfg.Merchant.MchID)
		}
		t := engine.BillTrade{Refund: r.IsRefund(), At: r.TradeTime.UTC(), OutTradeNo: r.OutTradeNo, TransactionID: r.TransactionID,
			AmountFen: r.TotalFen, FeeMilliFen: int64(r.Fee), Status: r.TradeState}
		if t.Refund {
			t.OutRefundNo, t.RefundID, t.AmountFen, t.Status = r.OutRefundNo, r.RefundID, r.RequestedRefundFen, r.RefundStatus
		}
		trades = append(trades, t)
	}
	return trades, nil
}

// keepFundFlow keeps the day's fund-flow bill for the record; a failure is
// logged, not the run's.
func (b *Books) keepFundFlow(ctx context.Context, day engine.Day) {
	d, _ := bill.ParseDate(string(day))
	loc, err := b.cfg.V3.FundFlowBill(ctx, d, "BASIC")
	var data []byte
	if err == nil {
		data, err = b.cfg.V3.DownloadBill(ctx, loc)
	}
	if err == nil {
		_, err = bill.ParseFundFlow(data)
	}
	switch {
	case errors.Is(err, wechat.ErrNoBill):
		return
	case err != nil:
		b.log.Warn("books: fund-flow bill not kept", "day", day, "err", err)
		return
	}
	now := b.cfg.Now().UTC()
	if err := b.cfg.Store.SaveBill(ctx, engine.BillCopy{Merchant: b.cfg.Merchant.Name, Day: day, Kind: engine.BillFundBasic, API: "v3",
		Data: data, SHA1: bill.SHA1(data), Final: !now.Before(day.End()), DownloadedAt: now}); err != nil {
		b.log.Warn("books: fund-flow bill not kept", "day", day, "err", err)
	}
}

// repair publishes what the result asks: a replay (its worker queries
// WeChat) or a flag. A preview (a day still running) only queries.
func (b *Books) repair(ctx context.Context, r engine.BooksResult) error {
	if b.cfg.JS == nil {
		return nil
	}
	now := b.cfg.Now().UTC()
	var errs []error
	for _, l := range r.Lines {
		if l.OrderID == "" || l.Repair != engine.RepairQuery && (l.Repair != engine.RepairFlag || !r.Final) {
			continue
		}
		cmd := engine.Command{Origin: Origin, OrderID: l.OrderID, At: now, Actor: "books", Reason: "books " + string(r.Day) + ": " + l.Detail}
		if l.Repair == engine.RepairQuery {
			cmd.ID, cmd.Verb = engine.BooksReplayCommandID(l.OrderID, r.Day, now), engine.VerbReplay
		} else {
			key := l.OutTradeNo
			if l.Trade == "refund" {
				key = l.OutRefundNo
			}
			cmd.ID, cmd.Verb, cmd.Flag = engine.BooksFlagCommandID(l.Flag, l.OrderID, key), engine.VerbFlag, &engine.FlagInfo{Reason: l.Flag}
		}
		if _, err := engine.Publish(ctx, b.cfg.JS, cmd, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		if l.Repair == engine.RepairQuery {
			b.Repaired.Add(1)
		}
		if b.cfg.Observer != nil {
			b.cfg.Observer.BooksRepair(l.Repair)
		}
		b.log.Info("books: repair", "day", r.Day, "order_id", l.OrderID, "repair", l.Repair, "flag", l.Flag, "kind", l.Kind)
	}
	if len(errs) > 0 {
		return fmt.Errorf("books %s: repairs not published: %w", r.Day, errors.Join(errs...))
	}
	return nil
}
