package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// lifecycle is one order's commands from create to notified, as the API and
// the workers send them.
func lifecycle(id engine.OrderID) []engine.Command {
	a := cmd(engine.VerbAuthorize, id, 0)
	a.Authorize = &engine.Authorize{OpenID: "o1"}
	p := cmd(engine.VerbPrepaid, id, 0)
	p.Prepaid = &engine.PrepaidInfo{PrepayID: "wx1"}
	s := cmd(engine.VerbSigned, id, 0)
	s.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(`{"paySign":"x"}`)}
	n := cmd(engine.VerbNotify, id, 0)
	n.Notify = &engine.Payment{TransactionID: "t-" + string(id), AmountFen: 100, Source: engine.SourceNotification}
	return []engine.Command{create(id, 100), a, p, s, n}
}

// BenchmarkApplyLifecycle applies orders' lifecycles the way the intake
// does under load: each step of 8 orders in one group commit (ApplyBatch).
// One op is one order, create to notified: the engine's SQL per order
// without NATS, on SQLite and (when it is reachable) PostgreSQL.
func BenchmarkApplyLifecycle(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) *engine.Store
	}{{"sqlite", enginetest.OpenSQLite}, {"postgres", enginetest.OpenPostgres}} {
		b.Run(tc.name, func(b *testing.B) {
			store := tc.open(b)
			_, nc, js := enginetest.StartNATS(b)
			e, _ := engine.New(engine.Config{}, store, nc, js)
			ctx := context.Background()
			const group = 8
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				steps := make([][]engine.Command, 5)
				for j := range group {
					for k, c := range lifecycle(engine.OrderID(fmt.Sprintf("b%d", i+j))) {
						steps[k] = append(steps[k], c)
					}
				}
				for _, batch := range steps {
					results, errs := e.ApplyBatch(ctx, batch)
					for k := range batch {
						if errs[k] != nil || !results[k].Applied {
							b.Fatal(results[k], errs[k])
						}
					}
				}
			}
		})
	}
}
