package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// BenchmarkRelayBatch measures one round of the outbox relay: reading a full
// batch of unsent rows from SQLite (or PostgreSQL, when it is reachable, where
// the round also takes the relay's turn), publishing each to JetStream with its
// Nats-Msg-Id, waiting for every PubAck and marking the rows sent. Each round
// gets rows with new event ids (filled while the timer is stopped), so
// JetStream stores them all rather than dropping duplicates; the payload is a
// real "created" event. ns/event is the cost per relayed event.
func BenchmarkRelayBatch(b *testing.B) {
	stores := []struct {
		name string
		open func(testing.TB) (*engine.Store, *sqlx.DB)
	}{{"sqlite", enginetest.OpenSQLiteWithDB}, {"postgres", openPostgresWithDB}}
	for _, st := range stores {
		for _, size := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", st.name, size), func(b *testing.B) { benchmarkRelayBatch(b, st.open, size) })
		}
	}
}

// openPostgresWithDB is a fresh PostgreSQL store and a second connection to
// its schema for the test's own SQL.
func openPostgresWithDB(t testing.TB) (*engine.Store, *sqlx.DB) {
	t.Helper()
	dsn := enginetest.PostgresSchema(t)
	ctx := context.Background()
	store, err := engine.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := engine.OpenRaw(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store, db
}

func benchmarkRelayBatch(b *testing.B, open func(testing.TB) (*engine.Store, *sqlx.DB), size int) {
	store, db := open(b)
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
}
