package webhook_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// BenchmarkDeliver measures how fast one deliverer (16 senders) empties a
// queue of 700 events (100 orders of 7, queued by the engine) into one
// endpoint that answers at once, on SQLite; PerEndpoint 4 (the default)
// and 16. One op is the 700 deliveries.
func BenchmarkDeliver(b *testing.B) {
	for _, per := range []int{4, 16} {
		b.Run(fmt.Sprintf("per-endpoint-%d", per), func(b *testing.B) {
			h := newHarness(b, enginetest.OpenSQLite)
			rec := newReceiver(b, func(engine.Event, int) action { return answerOK })
			h.endpoint(b, rec)
			cfg := quick()
			cfg.Concurrency, cfg.PerEndpoint = 16, per
			started := false
			for i := range b.N {
				b.StopTimer()
				batch := orderIDs(fmt.Sprintf("wb_%d_", i), 100)
				h.run(b, batch)
				want := h.eventsOf(b, batch...)
				if !started {
					h.deliverer(b, cfg)
					started = true
				}
				b.StartTimer()
				for rec.missing(want) != nil {
					time.Sleep(2 * time.Millisecond)
				}
			}
			b.ReportMetric(float64(700*b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
