package engine

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The outbox's SQL: the rows the relay publishes, and their marking as sent.

// outboxRow is one event waiting to be published.
type outboxRow struct {
	Seq     int64  `db:"seq"`
	EventID string `db:"event_id"`
	Subject string `db:"subject"`
	Payload []byte `db:"payload"`
}

// unsentOutbox reads up to limit unsent rows, in the order they were written.
func (s *Store) unsentOutbox(ctx context.Context, limit int) ([]outboxRow, error) {
	var rows []outboxRow
	err := s.db.SelectContext(s.stmtContext(ctx), &rows, s.db.Rebind(fmt.Sprintf(
		"SELECT seq, event_id, subject, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT %d", limit)))
	return rows, err
}

// markSent records the rows seqs as published at at.
func (s *Store) markSent(ctx context.Context, at time.Time, seqs []int64) error {
	args := make([]any, 0, len(seqs)+1)
	args = append(args, at.UTC())
	for _, seq := range seqs {
		args = append(args, seq)
	}
	q := "UPDATE outbox SET sent_at = ? WHERE seq IN (?" + strings.Repeat(",?", len(seqs)-1) + ")"
	return s.execWrite(ctx, s.db.Rebind(q), args...)
}

// OutboxBacklog counts the events written and not yet published to NATS:
// what the relay has still to do (a metric, and what tests wait on).
func (s *Store) OutboxBacklog(ctx context.Context) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
	return n, err
}
