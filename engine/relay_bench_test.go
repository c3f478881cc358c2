package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// BenchmarkRelayBatch measures one round of the outbox relay: reading a full
// batch of unsent rows from SQLite, publishing each to JetStream with its
// Nats-Msg-Id, waiting for every PubAck and marking the rows sent. Each round
// gets rows with new event ids (filled while the timer is stopped), so
// JetStream stores them all rather than dropping duplicates; the payload is a
// real "created" event. ns/event is the cost per relayed event.
func BenchmarkRelayBatch(b *testing.B) {
	for _, size := range []int{16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			store, db := enginetest.OpenSQLiteWithDB(b)
			_, nc, js := enginetest.StartNATS(b)
			e, err := engine.New(engine.Config{RelayBatch: size}, store, nc, js)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if res, err := e.Apply(ctx, create("bench", 100)); err != nil || !res.Applied {
				b.Fatal(res, err)
			}
			var row struct {
				Subject string `db:"subject"`
				Payload []byte `db:"payload"`
			}
			if err := db.Get(&row, "SELECT subject, payload FROM outbox ORDER BY seq LIMIT 1"); err != nil {
				b.Fatal(err)
			}
			if _, err := e.Relay().RelayOnce(ctx); err != nil {
				b.Fatal(err)
			}
			fill := func(round int) {
				tx := db.MustBegin()
				stmt, err := tx.Preparex(db.Rebind("INSERT INTO outbox (event_id, subject, payload, created_at) VALUES (?, ?, ?, ?)"))
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().UTC()
				for j := range size {
					if _, err := stmt.Exec(fmt.Sprintf("evt_bench_%d_%d", round, j), row.Subject, row.Payload, now); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(size * len(row.Payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				fill(i)
				b.StartTimer()
				n, err := e.Relay().RelayOnce(ctx)
				if err != nil || n != size {
					b.Fatalf("relayed %d of %d: %v", n, size, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}
