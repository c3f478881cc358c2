package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// BenchmarkQueueWebhooks times what queueing webhook deliveries adds to the
// engine's transactions on SQLite: events with their outbox rows, one
// transaction each or 64 in one (the intake's group commit), without and
// with the queueing, for a merchant with no endpoint and with two.
func BenchmarkQueueWebhooks(b *testing.B) {
	for _, c := range []struct{ endpoints, perTx int }{{0, 1}, {2, 1}, {0, 64}, {2, 64}} {
		endpoints := c.endpoints
		b.Run(fmt.Sprintf("%d-endpoints/%d-per-tx", endpoints, c.perTx), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, "sqlite:"+b.TempDir()+"/wxflow.db")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.AddShop(ctx, Shop{Name: "alpha", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			for range endpoints {
				_, ep, _ := NewWebhookEndpoint([]byte("0123456789abcdef0123456789abcdef"), "alpha", "https://alpha.example/h", time.Now())
				if err := s.AddWebhookEndpoint(ctx, ep); err != nil {
					b.Fatal(err)
				}
			}
			n := 0 // events written, over every run
			var tx *sqlx.Tx
			for _, queue := range []bool{false, true} {
				b.Run(map[bool]string{false: "outbox", true: "outbox+queue"}[queue], func(b *testing.B) {
					now := time.Now()
					for range b.N {
						n++
						i := n
						// Orders of 7 events each, as a paid and refunded order has.
						ev := Event{ID: fmt.Sprintf("evt_%d", i), Type: EventCreated, OrderID: OrderID(fmt.Sprintf("o%d", i/7)),
							Seq: int64(i%7 + 1), Order: Order{Merchant: "m"}}
						if tx == nil {
							if tx, err = s.db.BeginTxx(ctx, nil); err != nil {
								b.Fatal(err)
							}
						}
						_, err = tx.ExecContext(ctx, `INSERT INTO outbox (event_id, subject, payload, created_at) VALUES (?, ?, ?, ?)`,
							ev.ID, ev.Subject(), []byte(`{"id":"x"}`), now)
						if err == nil && queue {
							err = s.queueWebhooks(ctx, tx, ev, now)
						}
						if err == nil && i%c.perTx == 0 {
							err, tx = tx.Commit(), nil
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					if tx != nil {
						_ = tx.Commit()
						tx = nil
					}
				})
			}
		})
	}
}
