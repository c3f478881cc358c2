package webhook_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// BenchmarkDeliver measures how fast one deliverer (16 senders) empties a
// queue of the events of 100 orders paid and refunded (queued by the
// engine) into one endpoint that answers at once, on SQLite; PerEndpoint 4
// (the default) and 16. One op is those deliveries.
func BenchmarkDeliver(b *testing.B) {
	for _, per := range []int{4, 16} {
		b.Run(fmt.Sprintf("per-endpoint-%d", per), func(b *testing.B) {
			h := newHarness(b, enginetest.OpenSQLite)
			rec := newReceiver(b, func(engine.Event, int) action { return answerOK })
			h.endpoint(b, rec)
			cfg := quick()
			cfg.Concurrency, cfg.PerEndpoint = 16, per
			started, delivered := false, 0
			for i := range b.N {
				b.StopTimer()
				batch := orderIDs(fmt.Sprintf("wb_%d_", i), 100)
				h.run(b, batch)
				want := h.eventsOf(b, batch...)
				delivered += len(want)
				if !started {
					h.deliverer(b, cfg)
					started = true
				}
				b.StartTimer()
				for rec.missing(want) != nil {
					time.Sleep(2 * time.Millisecond)
				}
			}
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
