package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/jmoiron/sqlx"
)

// The store's books (migration 00008): bills as downloaded, their rows, the
// result of each day, and the lease that lets one process run a day.

// Bill kinds kept in the bills table.
const (
	BillTradeAll  = "trade_all"  // the ALL trade bill, which the books compare
	BillFundBasic = "fund_basic" // the BASIC account's fund-flow bill, kept for the record
)

// BillCopy is a bill as the books worker downloaded it, with its rows in
// wxflow's words.
type BillCopy struct {
	Merchant string
	Day      Day
	Kind     string // BillTradeAll or BillFundBasic
	API      string // "v2" or "v3": how it was downloaded
	// Data is the bill as WeChat printed it (decompressed): kept as is.
	Data []byte
	SHA1 string
	// Final is true when WeChat made the bill after the day ended.
	Final        bool
	DownloadedAt time.Time
	// NoBill is true when WeChat said no bill exists (an empty day).
	NoBill bool
	// Trades are the trade bill's rows (none for a fund-flow bill).
	Trades []BillTrade
}

// StoredBill is a bill the store keeps, without its bytes.
type StoredBill struct {
	Merchant     string    `json:"merchant" db:"merchant"`
	Day          Day       `json:"day" db:"day"`
	Kind         string    `json:"kind" db:"kind"`
	SHA1         string    `json:"sha1" db:"sha1"`
	API          string    `json:"api" db:"api"`
	Size         int64     `json:"size" db:"size"`
	Rows         int       `json:"rows" db:"row_count"`
	Final        bool      `json:"final" db:"final"`
	DownloadedAt time.Time `json:"downloaded_at" db:"downloaded_at"`
}

// SaveBill keeps a bill (once per distinct content: bills are immutable)
// and, for a trade bill, makes its rows the day's rows. Of the previews of
// a day still running (not Final), only the latest is kept: a preview every
// few seconds would otherwise keep a copy of the day per trade.
func (s *Store) SaveBill(ctx context.Context, b BillCopy) error {
	if b.NoBill {
		return nil
	}
	if _, err := ParseDay(string(b.Day)); err != nil {
		return err
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(b.Data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("engine: save bill: %w", storeError(err))
	}
	defer done()
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO bills (merchant, day, kind, sha1, api, data, size, row_count, final, downloaded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (merchant, day, kind, sha1) DO NOTHING`),
		b.Merchant, b.Day, b.Kind, b.SHA1, b.API, z.Bytes(), len(b.Data), len(b.Trades), b.Final, b.DownloadedAt.UTC()); err != nil {
		return fmt.Errorf("engine: save bill: %w", storeError(err))
	}
	if !b.Final {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM bills WHERE merchant = ? AND day = ? AND kind = ? AND final = ? AND sha1 <> ?`),
			b.Merchant, b.Day, b.Kind, false, b.SHA1); err != nil {
			return fmt.Errorf("engine: save bill: %w", storeError(err))
		}
	}
	if b.Kind == BillTradeAll {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM bill_rows WHERE merchant = ? AND day = ?`), b.Merchant, b.Day); err != nil {
			return fmt.Errorf("engine: save bill rows: %w", storeError(err))
		}
		for i, t := range b.Trades {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO bill_rows (merchant, day, line, sha1, refund, at, out_trade_no,
				transaction_id, out_refund_no, refund_id, amount_fen, fee_milli_fen, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				b.Merchant, b.Day, i+1, b.SHA1, t.Refund, t.At.UTC(), t.OutTradeNo, t.TransactionID, t.OutRefundNo, t.RefundID,
				t.AmountFen, t.FeeMilliFen, t.Status); err != nil {
				return fmt.Errorf("engine: save bill rows: %w", storeError(err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("engine: save bill: %w", storeError(err))
	}
	return nil
}

// Bills lists the bills kept for a merchant's day, oldest download first.
func (s *Store) Bills(ctx context.Context, merchant string, day Day) ([]StoredBill, error) {
	var out []StoredBill
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT merchant, day, kind, sha1, api, size, row_count, final, downloaded_at
		FROM bills WHERE merchant = ? AND day = ? ORDER BY downloaded_at, kind`), merchant, day)
	for i := range out {
		out[i].DownloadedAt = out[i].DownloadedAt.UTC()
	}
	return out, err
}

// BillData returns a kept bill's bytes, as WeChat printed them.
func (s *Store) BillData(ctx context.Context, merchant string, day Day, kind, sha1 string) ([]byte, error) {
	var z []byte
	err := s.db.GetContext(ctx, &z, s.db.Rebind(`SELECT data FROM bills WHERE merchant = ? AND day = ? AND kind = ? AND sha1 = ?`),
		merchant, day, kind, sha1)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// RunBooks keeps the bill, reconciles the day with it and stores the
// result, replacing the day's last one: re-running a day whose store and
// bill did not change gives the same result (only its run time and count
// move). The lines carry the repairs to make (the books worker makes them).
func (s *Store) RunBooks(ctx context.Context, b BillCopy, now time.Time) (BooksResult, error) {
	if err := s.SaveBill(ctx, b); err != nil {
		return BooksResult{}, err
	}
	f, err := s.booksFacts(ctx, b.Merchant, b.Day, b.Trades)
	if err != nil {
		return BooksResult{}, fmt.Errorf("engine: books %s %s: %w", b.Merchant, b.Day, err)
	}
	r := reconcile(b.Merchant, b.Day, b.Trades, f)
	r.Final, r.NoBill, r.BillSHA1 = b.Final, b.NoBill, b.SHA1
	r.RunAt, r.FirstRunAt, r.Runs = now.UTC(), now.UTC(), 1
	if prev, err := s.Books(ctx, b.Merchant, b.Day); err == nil {
		r.FirstRunAt, r.Runs = prev.FirstRunAt, prev.Runs+1
	} else if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	if err := s.saveBooks(ctx, r); err != nil {
		return r, err
	}
	return r, nil
}

// saveBooks stores a day's result, replacing the last.
func (s *Store) saveBooks(ctx context.Context, r BooksResult) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = s.execWrite(ctx, s.db.Rebind(`INSERT INTO books (merchant, day, status, final, bill_sha1, matched, discrepancies, result,
		first_run_at, run_at, runs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (merchant, day) DO UPDATE SET status = excluded.status, final = excluded.final, bill_sha1 = excluded.bill_sha1,
		matched = excluded.matched, discrepancies = excluded.discrepancies, result = excluded.result, run_at = excluded.run_at,
		runs = excluded.runs`),
		r.Merchant, r.Day, r.Status, r.Final, r.BillSHA1, r.Counts[BooksMatched], r.Discrepancies(), string(raw),
		r.FirstRunAt.UTC(), r.RunAt.UTC(), r.Runs)
	if err != nil {
		return fmt.Errorf("engine: save books: %w", storeError(err))
	}
	return nil
}

// Books returns the stored result of a merchant's day; [ErrNotFound] when
// the day was never run.
func (s *Store) Books(ctx context.Context, merchant string, day Day) (BooksResult, error) {
	var raw string
	err := s.db.GetContext(ctx, &raw, s.db.Rebind(`SELECT result FROM books WHERE merchant = ? AND day = ?`), merchant, day)
	if errors.Is(err, sql.ErrNoRows) {
		return BooksResult{}, ErrNotFound
	}
	if err != nil {
		return BooksResult{}, err
	}
	var r BooksResult
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return r, fmt.Errorf("engine: books %s %s: %w", merchant, day, err)
	}
	return r, nil
}

// BooksDay is one line of the list of days: a day's status without its lines.
type BooksDay struct {
	Merchant      string    `json:"merchant" db:"merchant"`
	Day           Day       `json:"day" db:"day"`
	Status        string    `json:"status" db:"status"`
	Final         bool      `json:"final" db:"final"`
	Matched       int       `json:"matched" db:"matched"`
	Discrepancies int       `json:"discrepancies" db:"discrepancies"`
	RunAt         time.Time `json:"run_at" db:"run_at"`
	Runs          int       `json:"runs" db:"runs"`
}

// BooksDays lists the days run, the latest first (at most limit; 60 when 0).
func (s *Store) BooksDays(ctx context.Context, merchant string, limit int) ([]BooksDay, error) {
	if limit <= 0 {
		limit = 60
	}
	q := `SELECT merchant, day, status, final, matched, discrepancies, run_at, runs FROM books`
	var args []any
	if merchant != "" {
		q += ` WHERE merchant = ?`
		args = append(args, merchant)
	}
	q += fmt.Sprintf(` ORDER BY day DESC, merchant LIMIT %d`, limit)
	var out []BooksDay
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...)
	for i := range out {
		out[i].RunAt = out[i].RunAt.UTC()
	}
	return out, err
}

// BooksDiscrepancies sums the discrepancies of the stored books of the days
// since since (that day included), by bucket.
func (s *Store) BooksDiscrepancies(ctx context.Context, since Day) (map[BooksKind]int, error) {
	var raws []string
	if err := s.db.SelectContext(ctx, &raws, s.db.Rebind(`SELECT result FROM books WHERE day >= ? AND discrepancies > 0`), since); err != nil {
		return nil, err
	}
	out := map[BooksKind]int{}
	for _, raw := range raws {
		var r BooksResult
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, err
		}
		for k, n := range r.Counts {
			if k.Discrepancy() {
				out[k] += n
			}
		}
	}
	return out, nil
}

// HasTrades reports whether wxflow recorded a payment (by its time at
// WeChat, or, before paid_at was kept, by when it was recorded) or a refund
// asked for on the merchant's day.
func (s *Store) HasTrades(ctx context.Context, merchant string, day Day) (bool, error) {
	start, end := day.Start(), day.End()
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT
		(SELECT COUNT(*) FROM (SELECT 1 FROM orders WHERE merchant = ? AND paid_at >= ? AND paid_at < ? LIMIT 1) p) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM orders o JOIN order_events e ON e.order_id = o.id WHERE o.merchant = ? AND o.paid_at IS NULL
			AND e.type = ? AND e.at >= ? AND e.at < ? LIMIT 1) q) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.merchant = ? AND r.created_at >= ?
			AND r.created_at < ? LIMIT 1) r)`), merchant, start, end, merchant, EventNotified, start, end, merchant, start, end)
	return n > 0, err
}

// booksFacts gathers what the day's books need from the store.
func (s *Store) booksFacts(ctx context.Context, merchant string, day Day, trades []BillTrade) (booksFacts, error) {
	f := booksFacts{orders: map[string]booksOrder{}, refunds: map[string]booksRefund{}, elsewhere: map[string]Day{}}
	var tradeNos, refundNos []string
	for _, t := range trades {
		tradeNos = append(tradeNos, t.OutTradeNo)
		if t.Refund {
			refundNos = append(refundNos, t.OutRefundNo)
		}
	}
	start, end := day.Start(), day.End()
	// wxflow's payments of the day: by WeChat's time, or (orders paid before
	// paid_at was kept) by the time their payment was recorded.
	var paid []string
	if err := s.db.SelectContext(ctx, &paid, s.db.Rebind(`SELECT out_trade_no FROM orders WHERE merchant = ? AND paid_fen > 0
		AND paid_at >= ? AND paid_at < ?`), merchant, start, end); err != nil {
		return f, err
	}
	var before []string
	if err := s.db.SelectContext(ctx, &before, s.db.Rebind(`SELECT o.out_trade_no FROM orders o JOIN order_events e ON e.order_id = o.id
		WHERE o.merchant = ? AND o.paid_fen > 0 AND o.paid_at IS NULL AND e.type = ? AND e.at >= ? AND e.at < ?`),
		merchant, EventNotified, start, end); err != nil {
		return f, err
	}
	f.dayPayments = dedupe(append(paid, before...))
	// wxflow's refunds settled and asked for on the day; and those asked the
	// day before, settled after it ended, and not in its bill (BooksLater).
	var refunded []string
	if err := s.db.SelectContext(ctx, &refunded, s.db.Rebind(`SELECT r.out_refund_no FROM refunds r JOIN orders o ON o.id = r.order_id
		WHERE o.merchant = ? AND r.state = ? AND r.created_at >= ? AND r.created_at < ?`), merchant, RefundSucceeded, start, end); err != nil {
		return f, err
	}
	prev := day.AddDays(-1)
	if _, err := s.Books(ctx, merchant, prev); err == nil {
		var carried []string
		if err := s.db.SelectContext(ctx, &carried, s.db.Rebind(`SELECT r.out_refund_no FROM refunds r JOIN orders o ON o.id = r.order_id
			WHERE o.merchant = ? AND r.state = ? AND r.created_at >= ? AND r.created_at < ? AND r.updated_at >= ?
			AND NOT EXISTS (SELECT 1 FROM bill_rows b WHERE b.merchant = o.merchant AND b.day = ? AND b.refund = ? AND b.out_refund_no = r.out_refund_no)`),
			merchant, RefundSucceeded, prev.Start(), start, start, prev, true); err != nil {
			return f, err
		}
		refunded = append(refunded, carried...)
	} else if !errors.Is(err, ErrNotFound) {
		return f, err
	}
	f.dayRefunds = dedupe(refunded)
	// The refunds the bill or the day names, and every order they or the
	// bill name.
	if err := s.loadBooksRefunds(ctx, merchant, append(refundNos, f.dayRefunds...), &f); err != nil {
		return f, err
	}
	orderNos := append(append(tradeNos, f.dayPayments...), f.dayRefunds...)
	for _, r := range f.refunds {
		orderNos = append(orderNos, r.OutTradeNo)
	}
	if err := s.loadBooksOrders(ctx, merchant, orderNos, &f); err != nil {
		return f, err
	}
	// The day's own payments and refunds the bill lacks: in another day's bill?
	inBill := map[string]bool{}
	for _, t := range trades {
		inBill[t.key()] = true
	}
	var lookPay, lookRefund []string
	for _, no := range f.dayPayments {
		if !inBill["payment:"+no] {
			lookPay = append(lookPay, no)
		}
	}
	for _, no := range f.dayRefunds {
		if !inBill["refund:"+no] {
			lookRefund = append(lookRefund, no)
		}
	}
	for _, look := range []struct {
		refund bool
		col    string
		nos    []string
	}{{false, "out_trade_no", lookPay}, {true, "out_refund_no", lookRefund}} {
		for _, chunk := range chunks(look.nos) {
			var rows []struct {
				Day Day    `db:"day"`
				No  string `db:"no"`
			}
			q, args, err := sqlx.In(`SELECT day, `+look.col+` AS no FROM bill_rows WHERE merchant = ? AND day <> ? AND refund = ? AND `+look.col+` IN (?)`,
				merchant, day, look.refund, chunk)
			if err != nil {
				return f, err
			}
			if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
				return f, err
			}
			for _, r := range rows {
				f.elsewhere[BillTrade{Refund: look.refund, OutTradeNo: r.No, OutRefundNo: r.No}.key()] = r.Day
			}
		}
	}
	return f, nil
}

func (s *Store) loadBooksOrders(ctx context.Context, merchant string, nos []string, f *booksFacts) error {
	for _, chunk := range chunks(dedupe(nos)) {
		var out []booksOrder
		q, args, err := sqlx.In(`SELECT `+orderColumns+`, paid_at FROM orders WHERE merchant = ? AND out_trade_no IN (?)`, merchant, chunk)
		if err != nil {
			return err
		}
		if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...); err != nil {
			return err
		}
		for _, o := range out {
			fixOrder(&o.Order)
			f.orders[o.OutTradeNo] = o
		}
	}
	return nil
}

func (s *Store) loadBooksRefunds(ctx context.Context, merchant string, nos []string, f *booksFacts) error {
	for _, chunk := range chunks(dedupe(nos)) {
		var out []booksRefund
		q, args, err := sqlx.In(`SELECT r.out_refund_no, r.order_id, r.amount_fen, r.reason, r.state, r.refund_id, r.created_at,
			r.updated_at, o.out_trade_no FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.merchant = ? AND r.out_refund_no IN (?)`, merchant, chunk)
		if err != nil {
			return err
		}
		if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...); err != nil {
			return err
		}
		for _, r := range out {
			r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
			f.refunds[r.OutRefundNo] = r
		}
	}
	return nil
}

// chunks splits keys for IN lists the databases take (SQLite: 32,766 parameters).
func chunks(keys []string) [][]string {
	var out [][]string
	for len(keys) > 0 {
		n := min(len(keys), 500)
		out = append(out, keys[:n])
		keys = keys[n:]
	}
	return out
}

func dedupe(keys []string) []string {
	seen := map[string]bool{}
	out := keys[:0:0]
	for _, k := range keys {
		if k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// SameBooks reports whether two results say the same of their day (every
// field but when and how often they were run).
func SameBooks(a, b BooksResult) bool {
	a.RunAt, a.FirstRunAt, a.Runs = time.Time{}, time.Time{}, 0
	b.RunAt, b.FirstRunAt, b.Runs = time.Time{}, time.Time{}, 0
	return reflect.DeepEqual(a, b)
}

// TakeLease takes or renews the lease name for holder until now+ttl: true
// when holder has it (it was free, expired, or holder's already); false
// when another holder's lease runs. One statement, so two processes asking
// at once cannot both win.
func (s *Store) TakeLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	done, err := s.writerTurn(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO books_leases (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE books_leases.until < ? OR books_leases.holder = ?`), name, holder, now.Add(ttl).UTC(), now.UTC(), holder)
	if err != nil {
		return false, fmt.Errorf("engine: lease %s: %w", name, storeError(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseLease gives the lease up, if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.execWrite(ctx, s.db.Rebind(`DELETE FROM books_leases WHERE name = ? AND holder = ?`), name, holder)
}

// orderPaidAt is the time of an order's payment at WeChat: the payment's,
// or now when WeChat gave none.
func orderPaidAt(p *Payment, now time.Time) time.Time {
	if p == nil || p.PaidAt.IsZero() {
		return now.UTC()
	}
	return p.PaidAt.UTC()
}

// keepPaidAt records an order's payment time at WeChat, in the change's transaction.
func (s *Store) keepPaidAt(ctx context.Context, tx *sqlx.Tx, id OrderID, at time.Time) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE orders SET paid_at = ? WHERE id = ?`), at.UTC(), id)
	return err
}
