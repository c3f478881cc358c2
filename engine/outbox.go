package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Relay publishes the outbox to JetStream: unsent rows in order, each with
// Nats-Msg-Id = its event id, then marks them sent once every PubAck is in.
// A crash between commit and publish leaves the rows unsent (published on
// restart); a crash between publish and marking re-publishes them with the
// same ids, which JetStream drops inside its duplicate window. The relays of
// engines sharing a PostgreSQL store take turns (turns.go): one publishes a
// batch at a time, the others queue behind it, so an event is published
// once and each order's events reach the stream in order.
type Relay struct {
	store    *Store
	js       jetstream.JetStream
	batch    int
	interval time.Duration
	wake     chan struct{}
	log      *slog.Logger
}

func newRelay(store *Store, js jetstream.JetStream, batch int, interval time.Duration, log *slog.Logger) *Relay {
	return &Relay{store: store, js: js, batch: batch, interval: interval, wake: make(chan struct{}, 1), log: log}
}

// Wake asks the relay to look at the outbox now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("outbox relay", "err", err)
				break
			}
			if n < r.batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-t.C:
		}
	}
}

// relayTurnWait is how long a relay queues behind another engine's relay
// before it gives up the round: a batch takes milliseconds.
const relayTurnWait = 5 * time.Second

// RelayOnce publishes one batch of unsent rows and returns how many it sent;
// 0 when another engine's relay kept the turn past relayTurnWait.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	var n int
	err := r.store.takeTurn(ctx, turnRelay, relayTurnWait, func() error {
		var err error
		n, err = r.relayBatch(ctx)
		return err
	})
	if errors.Is(err, errTurnTaken) {
		return 0, nil
	}
	return n, err
}

// relayBatch publishes one batch, holding the relay's turn.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	rows, err := r.store.unsentOutbox(ctx, r.batch)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	futures := make([]jetstream.PubAckFuture, len(rows))
	for i, row := range rows {
		msg := &nats.Msg{Subject: row.Subject, Data: row.Payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, row.EventID)
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			return 0, fmt.Errorf("publish %s: %w", row.EventID, err)
		}
		futures[i] = f
	}
	sent := make([]int64, 0, len(rows))
	var firstErr error
	for i, f := range futures {
		select {
		case <-f.Ok():
			sent = append(sent, rows[i].Seq)
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish %s: %w", rows[i].EventID, err)
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Second):
			if firstErr == nil {
				firstErr = fmt.Errorf("publish %s: no PubAck in 10s", rows[i].EventID)
			}
		}
	}
	if len(sent) > 0 {
		if err := r.store.markSent(ctx, time.Now(), sent); err != nil {
			return 0, fmt.Errorf("mark outbox sent: %w", err)
		}
	}
	return len(sent), firstErr
}

// Backlog counts the rows not yet published.
func (r *Relay) Backlog(ctx context.Context) (int, error) { return r.store.OutboxBacklog(ctx) }
