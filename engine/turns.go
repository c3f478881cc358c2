package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Several engine processes may share one PostgreSQL and one NATS. What each
// of an engine's loops does when another engine runs it too:
//
//   - intake: the command stream's durable consumer is a work queue shared by
//     every engine, so each command goes to one of them. Applying one is
//     idempotent on its own: the command id is recorded once (a primary key),
//     the order's row is locked (FOR UPDATE) and written only at the version
//     read, and an order's events are unique by (order_id, seq).
//   - the outbox relay, the expiry, the reconciler and the refund queue take
//     turns: each round runs while its engine holds the round's turn, a
//     PostgreSQL advisory lock (below). The relay would be correct without it
//     (Nats-Msg-Id is the event id), but two relays reading the same rows
//     would publish each event twice and count on JetStream's duplicate
//     window (10 min) to drop the copy; the expiry and the refund queue
//     would be correct too (one close command id per order; a refund is sent
//     only while it is the order's next queued one), but both engines would
//     race for the same orders, the loser's refusals written to the history.
//     The reconciler is not idempotent across engines (its command id names
//     its round), so two at once would ask WeChat about an order twice.
//   - the stream watch only reads: every engine measures and warns.
//   - the shop feeds (shopfeed.go): every engine makes the feeds missing,
//     each with the same configuration, and deletes those of shops gone;
//     one made or deleted by another engine first is no error.
//
// The turn is a transaction-scoped advisory lock, not the KV lease of the
// token refresher: PostgreSQL drops the lock the moment the holder's
// connection ends (a killed process's socket is closed by its kernel), so
// another engine takes over at its next round instead of after a lease's
// TTL (30 s, the lease bucket's), and the lock lives beside the rows it
// guards. A holder that hangs without dying loses it after turnHoldLimit
// (PostgreSQL ends its idle transaction); what it still does then is
// covered by the idempotence above. On SQLite there is one engine per
// database and no turn is taken.

// turn names a loop that runs in one engine at a time.
type turn string

const (
	turnRelay     turn = "relay"
	turnExpiry    turn = "expiry"
	turnReconcile turn = "reconcile"
	turnRefunds   turn = "refunds"
)

// turnHoldLimit is the longest a turn is held without the holder's
// transaction hearing from it: PostgreSQL then ends the holder's session and
// the lock is free.
const turnHoldLimit = 60 * time.Second

// errTurnTaken: another engine holds the turn; nothing was done.
var errTurnTaken = errors.New("engine: another engine holds this turn")

// pgLockNotAvailable is the SQLSTATE of a lock wait past lock_timeout.
const pgLockNotAvailable = "55P03"

// takeTurn runs fn while this process holds the turn name among the
// processes sharing the store. wait 0 gives up at once when another holds
// it; a positive wait queues behind the holder for that long. Either way,
// not getting the turn is errTurnTaken and fn does not run. On SQLite fn
// simply runs. The lock is scoped to the database and schema, so
// deployments sharing a server in other schemas do not wait on each other.
func (s *Store) takeTurn(ctx context.Context, name turn, wait time.Duration, fn func() error) error {
	if s.dialect != Postgres {
		return fn()
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("turn %s: %w", name, err)
	}
	defer tx.Rollback()
	set := fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", turnHoldLimit.Milliseconds())
	if wait > 0 {
		set += fmt.Sprintf("; SET LOCAL lock_timeout = %d", max(1, wait.Milliseconds()))
	}
	if _, err := tx.ExecContext(ctx, set); err != nil {
		return fmt.Errorf("turn %s: %w", name, err)
	}
	// One 64-bit key per schema and turn.
	const key = `('x' || left(md5(current_database() || '.' || current_schema() || '.wxflow.turn.' || $1), 16))::bit(64)::bigint`
	got := false
	if wait > 0 {
		_, err = tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+key+")", string(name))
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && pe.Code == pgLockNotAvailable:
		case err != nil:
			return fmt.Errorf("turn %s: %w", name, err)
		default:
			got = true
		}
	} else if err := tx.GetContext(ctx, &got, "SELECT pg_try_advisory_xact_lock("+key+")", string(name)); err != nil {
		return fmt.Errorf("turn %s: %w", name, err)
	}
	if !got {
		return errTurnTaken
	}
	ferr := fn()
	// Ending the transaction releases the lock; it wrote nothing, so a
	// failed commit (the session ended past turnHoldLimit) loses nothing.
	_ = tx.Commit()
	return ferr
}

// roundInTurn runs one round of a loop the engines share, under its turn,
// and returns how much the round did: 0 when another engine holds the turn.
func (s *Store) roundInTurn(ctx context.Context, name turn, round func() (int, error)) (int, error) {
	var n int
	err := s.takeTurn(ctx, name, 0, func() error {
		var err error
		n, err = round()
		return err
	})
	if errors.Is(err, errTurnTaken) {
		return 0, nil
	}
	return n, err
}

// every runs once at each tick of interval until ctx ends, logging what
// fails as what.
func (e *Engine) every(ctx context.Context, interval time.Duration, what string, once func(context.Context) (int, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := once(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn(what, "err", err)
		}
	}
}
