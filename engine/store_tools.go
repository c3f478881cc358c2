package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// The store's methods for wxflow's tools (bench, verify): measurements and
// bulk loads that are no part of an order's life, kept here so that every
// SQL statement wxflow runs is the store's.

// WorkCount is how much the engine has written: event rows, and the
// transactions that wrote them (one command id each).
type WorkCount struct {
	Events       int `db:"events"`
	Transactions int `db:"txs"`
}

// CountWork counts the event rows and the commands that wrote them: the
// bench's measure of a run's work (the difference before and after it, as a
// running deployment's database holds other orders).
func (s *Store) CountWork(ctx context.Context) (WorkCount, error) {
	var w WorkCount
	err := s.db.GetContext(ctx, &w, "SELECT COUNT(*) AS events, COUNT(DISTINCT command_id) AS txs FROM order_events")
	return w, err
}

// DatabaseSize is the database's size on disk, in bytes: PostgreSQL's
// pg_database_size, or the SQLite file with its write-ahead log.
func (s *Store) DatabaseSize(ctx context.Context) (int64, error) {
	var n int64
	if s.dialect == Postgres {
		err := s.db.GetContext(ctx, &n, "SELECT pg_database_size(current_database())")
		return n, err
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// SentEvent is an event the relay marked as published.
type SentEvent struct {
	ID      string  `db:"id"`
	OrderID OrderID `db:"order_id"`
}

// EventsSentSince lists the events marked published at or after since, for
// wxflow verify to find each in the event stream.
func (s *Store) EventsSentSince(ctx context.Context, since time.Time) ([]SentEvent, error) {
	var out []SentEvent
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT e.id, e.order_id FROM order_events e JOIN outbox o ON o.event_id = e.id
		WHERE o.sent_at IS NOT NULL AND o.sent_at >= ?`), since.UTC())
	return out, err
}

// MeasureSQLCeiling runs txs transactions of the shape a command's needs
// (upsert one state row, insert two rows of 600 bytes), conc at a time, in
// tables of their own created for it and dropped afterwards (a running
// deployment's database keeps no trace), and returns how long they took:
// the bench's ceiling of what the SQL alone allows.
func (s *Store) MeasureSQLCeiling(ctx context.Context, txs, conc int) (time.Duration, error) {
	for _, q := range []string{`DROP TABLE IF EXISTS bench_state`, `DROP TABLE IF EXISTS bench_rows`,
		`CREATE TABLE bench_state (id TEXT PRIMARY KEY, version BIGINT, payload TEXT)`,
		`CREATE TABLE bench_rows (id TEXT PRIMARY KEY, ref TEXT, payload TEXT)`} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("engine: ceiling tables: %w", err)
		}
	}
	defer s.db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_state`)
	defer s.db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_rows`)
	payload := strings.Repeat("x", 600)
	upsert := s.db.Rebind(`INSERT INTO bench_state (id, version, payload) VALUES (?, 1, ?) ON CONFLICT (id) DO UPDATE SET version = bench_state.version + 1`)
	insert := s.db.Rebind(`INSERT INTO bench_rows (id, ref, payload) VALUES (?, ?, ?)`)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range txs {
		g.Go(func() error {
			tx, err := s.db.BeginTxx(gctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			id := fmt.Sprintf("b%d", i%max(1, txs/5))
			if _, err := tx.ExecContext(gctx, upsert, id, payload); err != nil {
				return err
			}
			for _, kind := range []string{"e", "o"} {
				if _, err := tx.ExecContext(gctx, insert, fmt.Sprintf("%s%d", kind, i), id, payload); err != nil {
					return err
				}
			}
			return tx.Commit()
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("engine: ceiling: %w", err)
	}
	return time.Since(start), nil
}

// PreloadPaidOrders inserts n paid orders of merchant "default", each with
// its one notified event, in transactions of 10,000: a large table for the
// bench to run against. Their ids are apart from an earlier preload's.
func (s *Store) PreloadPaidOrders(ctx context.Context, n int) error {
	now := time.Now().UTC()
	run := strconv.FormatInt(now.Unix()%10_000_000, 10) // ids of this preload, apart from an earlier one's
	for done := 0; done < n; {
		tx, err := s.db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		ins, err := tx.PreparexContext(ctx, s.db.Rebind(`INSERT INTO orders (id, merchant, out_trade_no, description, amount_fen, pay_api, client,
			openid, state, transaction_id, paid_fen, expires_at, created_at, updated_at, version)
			VALUES (?, 'default', ?, 'preload', 100, 'v2', 'jsapi', ?, 'notified', ?, 100, ?, ?, ?, 1)`))
		if err != nil {
			tx.Rollback()
			return err
		}
		ev, err := tx.PreparexContext(ctx, s.db.Rebind(`INSERT INTO order_events (id, order_id, seq, type, from_state, to_state, at,
			command_id, actor, reason, trace_id) VALUES (?, ?, 1, 'notified', 'signed', 'notified', ?, ?, 'preload', 'paid, source query', '')`))
		if err != nil {
			tx.Rollback()
			return err
		}
		for end := min(done+10000, n); done < end; done++ {
			id := fmt.Sprintf("o_pre%s_%09d", run, done)
			if _, err := ins.ExecContext(ctx, id, fmt.Sprintf("PRE%s%09d", run, done), "oPRELOAD", fmt.Sprintf("42%s%09d", run, done), now, now, now); err != nil {
				tx.Rollback()
				return err
			}
			if _, err := ev.ExecContext(ctx, "evt_"+id, id, now, "preload:"+id); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
