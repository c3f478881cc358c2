package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3" // SQLite driver "sqlite3"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/wxflow/wxflow/schema"
)

// ErrNotFound: no such order or refund.
var ErrNotFound = errors.New("engine: not found")

// Store is wxflow's SQL state: orders, their history, commands seen,
// refunds and the outbox. The same queries run on SQLite and PostgreSQL
// (sqlx rebinds the placeholders). It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect string // "sqlite3" or "pgx"
	// writeTurn (SQLite only) lets this process's writers take turns before
	// they reach SQLite: SQLite lets one writer in at a time and has the
	// others poll with growing sleeps (1, 2, 5, 10… ms) in its busy handler,
	// which made every contended commit wait milliseconds for nothing.
	writeTurn chan struct{}
}

// Open connects to dsn and applies the migrations. "postgres://…" or
// "postgresql://…" selects PostgreSQL; "sqlite:PATH" or a plain path selects
// SQLite (WAL, a busy timeout, immediate write transactions, foreign keys).
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = "pgx"
		s.db, err = sqlx.Open("pgx", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(16)
		}
	} else {
		path := strings.TrimPrefix(dsn, "sqlite:")
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("engine: %w", err)
			}
		}
		s.dialect = "sqlite3"
		s.writeTurn = make(chan struct{}, 1)
		s.db, err = sqlx.Open("sqlite3", sqliteDSN(path))
		if err == nil {
			s.db.SetMaxOpenConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("engine: open store: %w", err)
	}
	// Keep every connection open: database/sql keeps only two idle by default,
	// so a burst closed the others and the next one paid for a new connection
	// (a PostgreSQL backend, or an SQLite handle with its pragmas) and lost
	// its cache of prepared statements.
	s.db.SetMaxIdleConns(s.db.Stats().MaxOpenConnections)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("engine: open store: %w", err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// beginWrite starts a write transaction, after this process's other writers
// on SQLite; done must be called once the transaction has ended.
func (s *Store) beginWrite(ctx context.Context) (tx *sqlx.Tx, done func(), err error) {
	done, err = s.writerTurn(ctx)
	if err != nil {
		return nil, nil, err
	}
	if tx, err = s.db.BeginTxx(ctx, nil); err != nil {
		done()
		return nil, nil, err
	}
	return tx, done, nil
}

// execWrite runs one writing statement, after this process's other writers
// on SQLite.
func (s *Store) execWrite(ctx context.Context, query string, args ...any) error {
	done, err := s.writerTurn(ctx)
	if err != nil {
		return err
	}
	defer done()
	_, err = s.db.ExecContext(ctx, query, args...)
	return err
}

func (s *Store) writerTurn(ctx context.Context) (done func(), err error) {
	if s.writeTurn == nil {
		return func() {}, nil
	}
	select {
	case s.writeTurn <- struct{}{}:
		return func() { <-s.writeTurn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sqliteDSN is the driver's DSN for "PATH[?options]": WAL, a 10 s busy
// timeout, immediate write transactions, foreign keys, and a cache of
// prepared statements per connection (preparing took a fifth of the
// intake's time: wxflow runs the same few dozen queries over and over).
// Options given in the URL (e.g. "?_busy_timeout=200") win over these.
func sqliteDSN(pathAndQuery string) string {
	path, query, _ := strings.Cut(pathAndQuery, "?")
	q, _ := url.ParseQuery(query)
	for k, v := range map[string]string{"_journal_mode": "WAL", "_busy_timeout": "10000", "_foreign_keys": "on",
		"_txlock": "immediate", "_synchronous": "NORMAL", "_stmt_cache_size": "64"} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	return "file:" + path + "?" + q.Encode()
}

// Errors of the store that callers handle: wait and try again, or tell an
// operator. Nothing was written when Apply returns one of them.
var (
	// ErrStoreBusy: another writer held the database past the busy timeout.
	ErrStoreBusy = errors.New("engine: store busy (locked by another writer)")
	// ErrStoreFull: the disk holding the database is full.
	ErrStoreFull = errors.New("engine: store full (no space left for the database)")
)

// storeError tells a busy or full database apart, wrapping the driver's error.
func storeError(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return fmt.Errorf("%w: %w", ErrStoreBusy, err)
		case sqlite3.ErrFull:
			return fmt.Errorf("%w: %w", ErrStoreFull, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "53100" || pe.Code == "53000") { // disk_full, insufficient_resources
		return fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	if err != nil && strings.Contains(err.Error(), "database is locked") {
		return fmt.Errorf("%w: %w", ErrStoreBusy, err)
	}
	return err
}

// Migrate applies the embedded migrations that are not applied yet.
func (s *Store) Migrate(ctx context.Context) error {
	dialect, fsys := goose.DialectSQLite3, schema.SQLite()
	var opts []goose.ProviderOption
	if s.dialect == "pgx" {
		dialect, fsys = goose.DialectPostgres, schema.Postgres()
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("engine: migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("engine: migrations: %w", err)
	}
	// Processes started together race to migrate SQLite (PostgreSQL has the
	// session lock): the loser's transaction rolls back, and it tries again.
	for attempt := 0; ; attempt++ {
		_, err = p.Up(ctx)
		if err == nil || attempt == 10 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("engine: migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the database for tools (verification, benchmarks).
func (s *Store) DB() *sqlx.DB { return s.db }

const orderColumns = `id, merchant, out_trade_no, description, amount_fen, pay_api, client, openid, oauth_code,
	login_code, client_ip, state, prepay_id, pay_params, transaction_id, paid_fen, refunded_fen, expires_at,
	created_at, updated_at, version, flag, fail_code, fail_reason`

// orderRow is an order with the columns only the engine reads.
type orderRow struct {
	Order
	RequestHash    string `db:"request_hash"`
	CloseRequested bool   `db:"close_requested"`
}

func fixOrder(o *Order) {
	o.ExpiresAt, o.CreatedAt, o.UpdatedAt = o.ExpiresAt.UTC(), o.CreatedAt.UTC(), o.UpdatedAt.UTC()
}

func (s *Store) getOrderRow(ctx context.Context, q sqlx.QueryerContext, where string, args ...any) (orderRow, error) {
	var r orderRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind("SELECT "+orderColumns+", request_hash, close_requested FROM orders WHERE "+where), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	fixOrder(&r.Order)
	return r, err
}

// Order returns one order.
func (s *Store) Order(ctx context.Context, id OrderID) (Order, error) {
	r, err := s.getOrderRow(ctx, s.db, "id = ?", id)
	return r.Order, err
}

// OrderByOutTradeNo finds a merchant's order by its WeChat number, as
// notifications name it.
func (s *Store) OrderByOutTradeNo(ctx context.Context, merchant, outTradeNo string) (Order, error) {
	r, err := s.getOrderRow(ctx, s.db, "merchant = ? AND out_trade_no = ?", merchant, outTradeNo)
	return r.Order, err
}

// OrderFilter selects orders for lists; zero fields do not filter.
type OrderFilter struct {
	States        []State
	UpdatedBefore time.Time
	Flagged       bool
	Limit         int // 100 when 0
}

// Orders lists orders, oldest update first.
func (s *Store) Orders(ctx context.Context, f OrderFilter) ([]Order, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(",?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if !f.UpdatedBefore.IsZero() {
		where = append(where, "updated_at < ?")
		args = append(args, f.UpdatedBefore.UTC())
	}
	if f.Flagged {
		where = append(where, "flag <> ''")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := "SELECT " + orderColumns + " FROM orders"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY updated_at LIMIT %d", f.Limit)
	var out []Order
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("engine: orders: %w", err)
	}
	for i := range out {
		fixOrder(&out[i])
	}
	return out, nil
}

// CountByState counts orders in each state.
func (s *Store) CountByState(ctx context.Context) (map[State]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT state, COUNT(*) FROM orders GROUP BY state")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st State
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// HistoryEntry is one line of an order's timeline: an applied event, or a
// command that was refused (Applied false, with its code and reason).
type HistoryEntry struct {
	At        time.Time `json:"at" db:"at"`
	Applied   bool      `json:"applied" db:"applied"`
	Type      string    `json:"type" db:"type"` // the event type, or the refused command's verb
	From      State     `json:"from,omitempty" db:"from_state"`
	To        State     `json:"to,omitempty" db:"to_state"`
	Seq       int64     `json:"seq,omitempty" db:"seq"`
	EventID   string    `json:"event_id,omitempty" db:"event_id"`
	CommandID string    `json:"command_id" db:"command_id"`
	Actor     string    `json:"actor,omitempty" db:"actor"`
	Code      string    `json:"code,omitempty" db:"code"`
	Reason    string    `json:"reason,omitempty" db:"reason"`
}

// History returns an order's timeline, oldest first.
func (s *Store) History(ctx context.Context, id OrderID) ([]HistoryEntry, error) {
	var out []HistoryEntry
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`
		SELECT at, TRUE AS applied, type, from_state, to_state, seq, id AS event_id, command_id, actor, '' AS code, reason
		  FROM order_events WHERE order_id = ?
		UNION ALL
		SELECT at, FALSE AS applied, verb AS type, '' AS from_state, '' AS to_state, 0 AS seq, '' AS event_id, id AS command_id, actor, code, reason
		  FROM commands WHERE order_id = ? AND applied = FALSE
		ORDER BY at, seq`), id, id)
	if err != nil {
		return nil, fmt.Errorf("engine: history: %w", err)
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

// Refunds lists an order's refunds, oldest first.
func (s *Store) Refunds(ctx context.Context, id OrderID) ([]Refund, error) {
	var out []Refund
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT out_refund_no, order_id, amount_fen, reason, state, refund_id,
		created_at, updated_at FROM refunds WHERE order_id = ? ORDER BY created_at, out_refund_no`), id)
	return out, err
}

// RefundByOutRefundNo returns one refund.
func (s *Store) RefundByOutRefundNo(ctx context.Context, outRefundNo string) (Refund, error) {
	var r Refund
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT out_refund_no, order_id, amount_fen, reason, state, refund_id,
		created_at, updated_at FROM refunds WHERE out_refund_no = ?`), outRefundNo)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// Outcome returns what became of a command id, if the engine saw it.
func (s *Store) Outcome(ctx context.Context, commandID string) (Result, bool, error) {
	var c struct {
		OrderID OrderID `db:"order_id"`
		Applied bool    `db:"applied"`
		Code    string  `db:"code"`
		Reason  string  `db:"reason"`
	}
	err := s.db.GetContext(ctx, &c, s.db.Rebind("SELECT order_id, applied, code, reason FROM commands WHERE id = ?"), commandID)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	res := Result{Applied: c.Applied, Code: c.Code, Reason: c.Reason}
	res.Order, _ = s.Order(ctx, c.OrderID)
	return res, true, nil
}

// isBusy reports a write conflict worth retrying the transaction for.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") ||
		strings.Contains(msg, "could not serialize") || strings.Contains(msg, "deadlock detected") ||
		errors.Is(err, errVersionConflict) || strings.Contains(msg, "duplicate key") && strings.Contains(msg, "commands_pkey")
}

// RefundByOutRefundNoTx reads a refund inside a transaction.
func (s *Store) RefundByOutRefundNoTx(ctx context.Context, q sqlx.QueryerContext, outRefundNo string) (Refund, error) {
	var r Refund
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT out_refund_no, order_id, amount_fen, reason, state, refund_id,
		created_at, updated_at FROM refunds WHERE out_refund_no = ?`), outRefundNo)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// OpenRaw connects to a PostgreSQL DSN without migrating: for tools and tests
// that manage schemas.
func OpenRaw(ctx context.Context, dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// pendingRefund is the refund an order in Refunding waits for.
func (s *Store) pendingRefund(ctx context.Context, q sqlx.QueryerContext, id OrderID) (Refund, error) {
	var r Refund
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT out_refund_no, order_id, amount_fen, reason, state, refund_id,
		created_at, updated_at FROM refunds WHERE order_id = ? AND state = ?`), id, RefundPending)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("engine: order %s is refunding without a pending refund: %w", id, ErrNotFound)
	}
	return r, err
}

// OrdersByOpenID lists a payer's orders, newest first.
func (s *Store) OrdersByOpenID(ctx context.Context, openid string, limit int) ([]Order, error) {
	var out []Order
	err := s.db.SelectContext(ctx, &out, s.db.Rebind("SELECT "+orderColumns+" FROM orders WHERE openid = ? ORDER BY created_at DESC LIMIT ?"), openid, limit)
	for i := range out {
		fixOrder(&out[i])
	}
	return out, err
}
