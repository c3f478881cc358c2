package bench

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
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

// TestParseStatCPU reads utime and stime past a command name with spaces
// and parentheses, in the clock ticks given.
func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		hz         int64
		want       time.Duration
		wantErr    bool
	}{
		{"plain", "4242 (wxflow) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 12 0 100 1000 10 18446744073709551615", 100, 1750 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1 1", 100, 70 * time.Millisecond, false},
		{"other clock", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 1000 24 0 0", 1024, time.Second, false},
		{"short", "7 (x) R 1 7", 100, 0, true},
		{"no name", "7 x R", 100, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat), tc.hz)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseStatCPU = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestOwnCPU: this process's CPU from /proc grows as it works, and agrees
// with getrusage within a few clock ticks.
func TestOwnCPU(t *testing.T) {
	if errUnsupported != nil {
		t.Skip(errUnsupported)
	}
	hz := clockTicks()
	if hz <= 0 {
		t.Fatalf("clock ticks %d", hz)
	}
	before, err := processCPU(os.Getpid(), hz)
	if err != nil {
		t.Fatal(err)
	}
	for selfCPU() < 200*time.Millisecond+before {
		_ = sha256.Sum256(make([]byte, 1<<16))
	}
	after, err := processCPU(os.Getpid(), hz)
	if err != nil {
		t.Fatal(err)
	}
	own := selfCPU()
	if after <= before || (own-after).Abs() > 5*time.Second/time.Duration(hz)+50*time.Millisecond {
		t.Fatalf("/proc says %v then %v; getrusage %v", before, after, own)
	}
}

// TestSumCounter adds a counter's samples across labels, and nothing else.
func TestSumCounter(t *testing.T) {
	text := `# HELP wxflow_wechat_calls_total calls
# TYPE wxflow_wechat_calls_total counter
wxflow_wechat_calls_total{api="prepay",host="primary"} 12
wxflow_wechat_calls_total{api="refund",host="primary",note="a}b"} 3
wxflow_wechat_calls_total_other 100
wxflow_wechat_calls_totalx{a="b"} 100
wxflow_wechat_calls_total 1.5
`
	if got := sumCounter(strings.NewReader(text), "wxflow_wechat_calls_total"); got != 16.5 {
		t.Fatalf("sum = %v, want 16.5", got)
	}
}
