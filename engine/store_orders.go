package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The store's reads of orders, their history and refunds.

const orderColumns = `id, merchant, out_trade_no, description, amount_fen, pay_api, client, openid, oauth_code,
	login_code, client_ip, state, prepay_id, pay_params, transaction_id, paid_fen, refunded_fen, expires_at,
	created_at, updated_at, version, flags, flag, fail_code, fail_reason, shop, appid`

// orderRow is an order with the columns only the engine reads.
type orderRow struct {
	Order
	RequestHash    string `db:"request_hash"`
	CloseRequested bool   `db:"close_requested"`
	// ReconcileAttempts and ReconcileAt are the reconciler's schedule of the
	// order: how often it asked WeChat since the order entered its state, and
	// when it asks next (nil: never).
	ReconcileAttempts int        `db:"reconcile_attempts"`
	ReconcileAt       *time.Time `db:"reconcile_at"`
	// RefundDueAt is when the engine sends the order's next queued refund
	// (refundqueue.go); nil while none is queued or one is at WeChat.
	RefundDueAt *time.Time `db:"refund_due_at"`
}

func fixOrder(o *Order) {
	o.ExpiresAt, o.CreatedAt, o.UpdatedAt = o.ExpiresAt.UTC(), o.CreatedAt.UTC(), o.UpdatedAt.UTC()
}

func (s *Store) getOrderRow(ctx context.Context, q sqlx.QueryerContext, where string, args ...any) (orderRow, error) {
	var r orderRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind("SELECT "+orderColumns+", request_hash, close_requested, reconcile_attempts, reconcile_at, refund_due_at FROM orders WHERE "+where), args...)
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
	// Merchant keeps only one merchant's orders when set.
	Merchant      string
	States        []State
	UpdatedBefore time.Time
	Flagged       bool
	Limit         int // 100 when 0
}

// Orders lists orders, oldest update first.
func (s *Store) Orders(ctx context.Context, f OrderFilter) ([]Order, error) {
	var where []string
	var args []any
	if f.Merchant != "" {
		where = append(where, "merchant = ?")
		args = append(args, f.Merchant)
	}
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

// refundColumns are the columns of a Refund.
const refundColumns = `out_refund_no, order_id, amount_fen, reason, state, refund_id, seq, sent_at, settled_at,
	error_code, error_message, created_at, updated_at`

// Refunds lists an order's refunds in the order they were asked (and are
// sent to WeChat in).
func (s *Store) Refunds(ctx context.Context, id OrderID) ([]Refund, error) {
	return s.refundsOf(ctx, s.db, id)
}

func (s *Store) refundsOf(ctx context.Context, q sqlx.QueryerContext, id OrderID) ([]Refund, error) {
	var out []Refund
	err := sqlx.SelectContext(ctx, q, &out, s.db.Rebind(`SELECT `+refundColumns+` FROM refunds WHERE order_id = ? ORDER BY seq`), id)
	for i := range out {
		fixRefund(&out[i])
	}
	return out, err
}

// RefundByOutRefundNo returns one refund.
func (s *Store) RefundByOutRefundNo(ctx context.Context, outRefundNo string) (Refund, error) {
	return s.refundByOutRefundNo(ctx, s.db, outRefundNo)
}

func (s *Store) refundByOutRefundNo(ctx context.Context, q sqlx.QueryerContext, outRefundNo string) (Refund, error) {
	var r Refund
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+refundColumns+` FROM refunds WHERE out_refund_no = ?`), outRefundNo)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	fixRefund(&r)
	return r, err
}

// Outcome returns what became of a command id, if the engine saw it.
func (s *Store) Outcome(ctx context.Context, commandID string) (Result, bool, error) {
	var c struct {
		OrderID OrderID     `db:"order_id"`
		Applied bool        `db:"applied"`
		Code    RefusalCode `db:"code"`
		Reason  string      `db:"reason"`
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

// CountOrders counts every order.
func (s *Store) CountOrders(ctx context.Context) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, "SELECT COUNT(*) FROM orders")
	return n, err
}

// expiredOrders lists up to limit orders in states that may be closed whose
// expires_at is before now and whose closing is not under way, soonest
// expired first.
func (s *Store) expiredOrders(ctx context.Context, closable []State, now time.Time, limit int) ([]OrderID, error) {
	args := make([]any, 0, len(closable)+2)
	for _, st := range closable {
		args = append(args, st)
	}
	args = append(args, now.UTC(), limit)
	var ids []OrderID
	err := s.db.SelectContext(ctx, &ids, s.db.Rebind(`SELECT id FROM orders WHERE state IN (?`+strings.Repeat(", ?", len(closable)-1)+`)
		AND expires_at < ? AND close_requested = FALSE ORDER BY expires_at LIMIT ?`), args...)
	return ids, err
}

// dueAsk is an order whose reconciler ask is due, with what its next
// schedule depends on.
type dueAsk struct {
	ID        OrderID   `db:"id"`
	State     State     `db:"state"`
	Attempts  int       `db:"reconcile_attempts"`
	ExpiresAt time.Time `db:"expires_at"`
}

// dueAsks lists up to limit orders whose reconciler ask is due at now, the
// longest due first (the partial index orders_reconcile_due).
func (s *Store) dueAsks(ctx context.Context, now time.Time, limit int) ([]dueAsk, error) {
	var out []dueAsk
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, state, reconcile_attempts, expires_at FROM orders
		WHERE reconcile_at IS NOT NULL AND reconcile_at <= ? ORDER BY reconcile_at LIMIT ?`), now.UTC(), limit)
	for i := range out {
		out[i].ExpiresAt = out[i].ExpiresAt.UTC()
	}
	return out, err
}

// rescheduleAsk records that the reconciler asked about an order once more
// and when it asks next (nil: never), unless the order has left the state
// it was asked about in or was asked about meanwhile (another engine).
func (s *Store) rescheduleAsk(ctx context.Context, d dueAsk, next *time.Time) error {
	return s.execWrite(ctx, s.db.Rebind(`UPDATE orders SET reconcile_attempts = ?, reconcile_at = ?
		WHERE id = ? AND state = ? AND reconcile_attempts = ?`), d.Attempts+1, next, d.ID, d.State, d.Attempts)
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
