package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wxflow/wxflow/engine"
	"golang.org/x/sync/errgroup"
)

// measureCeiling runs the parts alone: SQL transactions of the same shape
// as Apply's, and JetStream publish+consume round trips.
func measureCeiling(ctx context.Context, rep *Report, store *engine.Store, js jetstream.JetStream, txs, events, conc int) error {
	sqlTime, err := store.MeasureSQLCeiling(ctx, txs, conc) // the same shape as Apply's, in tables of its own
	if err != nil {
		return fmt.Errorf("ceiling, SQL: %w", err)
	}
	rep.Ceiling.Transactions, rep.Ceiling.SQLSeconds = txs, sqlTime.Seconds()

	trips := 2 * events
	_ = js.DeleteStream(ctx, "BENCH_CEILING") // left by a run that was stopped
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_CEILING", Subjects: []string{"bench.ceiling"}, Storage: jetstream.FileStorage}); err != nil {
		return err
	}
	defer js.DeleteStream(context.Background(), "BENCH_CEILING")
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH_CEILING", jetstream.ConsumerConfig{Durable: "ceiling", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(trips) {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	start := time.Now()
	pg, pctx := errgroup.WithContext(ctx)
	pg.SetLimit(conc)
	data := []byte(strings.Repeat("x", 1200))
	for i := range trips {
		pg.Go(func() error {
			_, err := js.Publish(pctx, "bench.ceiling", data, jetstream.WithMsgID(fmt.Sprintf("c%d", i)))
			return err
		})
	}
	if err := pg.Wait(); err != nil {
		return fmt.Errorf("ceiling, NATS: %w", err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("ceiling, NATS: %d of %d consumed", got.Load(), trips)
	}
	rep.Ceiling.RoundTrips, rep.Ceiling.NATSSeconds = trips, time.Since(start).Seconds()
	rep.Ceiling.OrdersPerS = float64(rep.Orders) / (rep.Ceiling.SQLSeconds + rep.Ceiling.NATSSeconds)
	return nil
}
