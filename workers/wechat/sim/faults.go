package sim

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spf13/pflag"
)

// Faults are the troubles the simulator injects, like WeChat on a bad day.
// Rates are probabilities in [0, 1] per request or per notification.
type Faults struct {
	// SystemErrorRate answers pay API calls with SYSTEMERROR (v2) / 500 SYSTEM_ERROR (v3), changing nothing.
	SystemErrorRate float64 `json:"system_error_rate"`
	// HTTP5xxRate answers any API call with a bare HTTP 502.
	HTTP5xxRate float64 `json:"http_5xx_rate"`
	// TimeoutRate holds the request until the caller gives up.
	TimeoutRate float64 `json:"timeout_rate"`
	// Latency is added to every API call.
	Latency time.Duration `json:"latency"`
	// SlowRate answers a call only after SlowDelay (2 s when 0): slow, not lost.
	SlowRate  float64       `json:"slow_rate"`
	SlowDelay time.Duration `json:"slow_delay"`
	// LostAnswerRate applies a call and then loses its answer (HTTP 502 in
	// its place): the caller must ask again, and WeChat's idempotency by
	// out_trade_no / out_refund_no must make the repeat harmless.
	LostAnswerRate float64 `json:"lost_answer_rate"`
	// DuplicateNotify sends every notification twice, concurrently.
	DuplicateNotify bool `json:"duplicate_notify"`
	// ReorderNotifyRate delays a notification's first delivery by up to ReorderDelay.
	ReorderNotifyRate float64       `json:"reorder_notify_rate"`
	ReorderDelay      time.Duration `json:"reorder_delay"`
	// DropNotifyRate never sends a notification at all (the reconciler must query).
	DropNotifyRate float64 `json:"drop_notify_rate"`
	// CorruptBillRate flips a byte of a v3 bill download, after its SHA-1
	// was given: the client must refuse it and apply again.
	CorruptBillRate float64 `json:"corrupt_bill_rate"`
	// Seed makes the random choices reproducible; 0 picks one.
	Seed uint64 `json:"seed"`
}

// RegisterFlags adds the fault flags of `wxflow sim`.
func (f *Faults) RegisterFlags(fs *pflag.FlagSet) {
	fs.Float64Var(&f.SystemErrorRate, "fault-system-error", 0, "share of pay API calls answered SYSTEMERROR")
	fs.Float64Var(&f.HTTP5xxRate, "fault-5xx", 0, "share of API calls answered HTTP 502")
	fs.Float64Var(&f.TimeoutRate, "fault-timeout", 0, "share of API calls that never answer")
	fs.DurationVar(&f.Latency, "fault-latency", 0, "latency added to every API call")
	fs.Float64Var(&f.SlowRate, "fault-slow", 0, "share of API calls answered only after --fault-slow-delay")
	fs.DurationVar(&f.SlowDelay, "fault-slow-delay", 2*time.Second, "how late a slow answer comes")
	fs.Float64Var(&f.LostAnswerRate, "fault-lost-answer", 0, "share of API calls applied whose answer is lost (HTTP 502)")
	fs.BoolVar(&f.DuplicateNotify, "dup-notify", false, "send every notification twice")
	fs.Float64Var(&f.ReorderNotifyRate, "reorder-notify", 0, "share of notifications delayed (reordered)")
	fs.Float64Var(&f.DropNotifyRate, "drop-notify", 0, "share of notifications never sent")
	fs.Float64Var(&f.CorruptBillRate, "fault-corrupt-bill", 0, "share of v3 bill downloads with a byte flipped (their SHA-1 no longer matches)")
	fs.Uint64Var(&f.Seed, "fault-seed", 0, "seed of the fault choices (0: random)")
}

// Chaos is WeChat on a very bad day: a share p of API calls fail — a
// quarter SYSTEMERROR, a fifth HTTP 502, a quarter slow, 15% never answered
// and 15% applied with the answer lost — every notification is sent twice, a
// share p of them late (reordered) and a share p never (the reconciler's
// queries must find those payments).
func Chaos(p float64, seed uint64) Faults {
	return Faults{
		SystemErrorRate: p * 0.25, HTTP5xxRate: p * 0.20, SlowRate: p * 0.25, TimeoutRate: p * 0.15, LostAnswerRate: p * 0.15,
		SlowDelay: 2 * time.Second, DuplicateNotify: true, ReorderNotifyRate: p, ReorderDelay: 2 * time.Second,
		DropNotifyRate: p, Seed: seed,
	}
}

// dice draws the fault decisions from one seeded source.
type dice struct {
	mu  sync.Mutex
	rnd *rand.Rand
}

func newDice(seed uint64) *dice {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &dice{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// hit reports whether an event of probability p happens.
func (d *dice) hit(p float64) bool {
	if p <= 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.Float64() < p
}

// upTo returns a random duration in [0, max).
func (d *dice) upTo(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.rnd.Int64N(int64(max)))
}
