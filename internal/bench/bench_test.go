package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramPercentiles: the bench's constant-memory histogram reports
// each percentile within 1% of the exact one, and the exact maximum.
func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		draw func() time.Duration
	}{
		{"uniform 0-50 ms", func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) }},
		{"long tail", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(5*time.Millisecond))
		}},
		{"all zero", func() time.Duration { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			exact := make([]time.Duration, 20000)
			for i := range exact {
				exact[i] = tc.draw()
				h.add(exact[i])
			}
			slices.Sort(exact)
			ms := func(q float64) float64 {
				return float64(exact[int(math.Ceil(q*float64(len(exact))))-1].Microseconds()) / 1000
			}
			got := h.percentiles()
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"p50", got.P50, ms(0.5)}, {"p90", got.P90, ms(0.9)}, {"p99", got.P99, ms(0.99)}, {"max", got.Max, ms(1)}} {
				// Within 1%, or 1 µs for durations below a microsecond.
				if math.Abs(c.got-c.want) > math.Max(0.0101*c.want, 0.0011) {
					t.Errorf("%s = %.4f ms, exact %.4f ms", c.name, c.got, c.want)
				}
			}
			if got.N != len(exact) {
				t.Errorf("n = %d, want %d", got.N, len(exact))
			}
		})
	}
}

// TestBench runs `wxflow bench` small: every order through the lifecycle,
// the report filled in, the ceiling measured on the same data folder.
func TestBench(t *testing.T) {
	rep, err := Run(t.Context(), Options{Orders: 20, Concurrency: 4, PayAPI: "mixed", RefundEvery: 5, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 20 || rep.Refunded != 4 || rep.OrdersPerS <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, step := range []string{"created_authorized", "authorized_prepaid", "prepaid_signed", "signed_notified", "created_notified"} {
		if p := rep.Latency[step]; p.N != 20 || p.P50 > p.P99 || p.P99 > p.Max {
			t.Errorf("latency %s: %+v", step, p)
		}
	}
	if p := rep.Latency["refunding_refunded"]; p.N != 4 {
		t.Errorf("refund latency: %+v", p)
	}
	// Transactions: create (created and authorized at once), prepaid, signed,
	// notified for each order, refund (queued and sent at once) and refunded
	// for 4; events: one more per order and per refund. A v2 refund's
	// notification asks for a replay (one transaction, one event) when it
	// comes before the refund worker's own query found the refund settled: a
	// few more, as the simulator's timing goes.
	c := rep.Ceiling
	extra := c.Transactions - (20*4 + 4*2)
	if extra < 0 || extra > 4 || c.RoundTrips != 2*(20*5+4*3+extra) || c.OrdersPerS <= 0 || rep.Ratio <= 0 {
		t.Errorf("ceiling: %+v, ratio %v", c, rep.Ratio)
	}
	if rep.WeChatCallsPerOrder < 1 || rep.DBBytes == 0 || rep.StreamBytes == 0 {
		t.Errorf("calls per order %v, DB %d bytes, stream %d bytes", rep.WeChatCallsPerOrder, rep.DBBytes, rep.StreamBytes)
	}
}
