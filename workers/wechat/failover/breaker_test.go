package failover

import (
	"strings"
	"testing"
	"time"
)

// TestBreaker plays each row's steps on one breaker (threshold 3, cool-down
// 10s) and checks its state after every step that names one. A step is
// "ok", "fail", "unreachable" or "abandon" (a call allowed through, then its
// verdict), "deny" (no call may go), "wait D" (the clock moves on), or
// "=STATE" (the state now).
func TestBreaker(t *testing.T) {
	tests := []struct {
		name  string
		steps string
	}{
		{"failures below the threshold keep it closed", "fail fail =closed"},
		{"threshold failures in a row open it", "fail fail fail =open deny"},
		{"an answer resets the count", "fail fail ok fail fail =closed fail =open"},
		{"an unreachable host opens it at once", "unreachable =open deny"},
		{"a call the caller abandoned counts for nothing", "fail fail abandon =closed fail =open"},
		{"open, it refuses calls for the whole cool-down", "unreachable wait 9.999s deny =open"},
		{"after the cool-down one call probes and an answer closes it", "unreachable wait 10s ok =closed ok ok =closed"},
		{"a failed probe opens it for another cool-down", "unreachable wait 10s fail =open wait 9s deny wait 1s ok =closed"},
		{"an unreachable probe opens it again", "fail fail fail wait 10s unreachable =open deny"},
		{"the probe opens it again after a single failure", "fail fail fail wait 10s ok fail =closed fail fail =open"},
		{"an abandoned probe lets the next call probe", "unreachable wait 10s abandon =half-open ok =closed"},
		{"a long rest still allows only one probe", "unreachable wait 1h probe deny deny =half-open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			b := &breaker{threshold: 3, coolDown: 10 * time.Second}
			fields := strings.Fields(tt.steps)
			for i := 0; i < len(fields); i++ {
				step := fields[i]
				verdicts := map[string]verdict{"ok": answered, "fail": failed, "unreachable": unreachable, "abandon": abandoned}
				switch v, isCall := verdicts[step]; {
				case isCall:
					ok, probe := b.allow(now)
					if !ok {
						t.Fatalf("step %d %q: the breaker let no call through", i, step)
					}
					b.record(v, probe, now)
				case step == "probe": // a call allowed through that has not ended
					if ok, probe := b.allow(now); !ok || !probe {
						t.Fatalf("step %d: allow = %v, probe %v; want the probe", i, ok, probe)
					}
				case step == "deny":
					if b.available(now) {
						t.Fatalf("step %d: available says a call may go", i)
					}
					if ok, _ := b.allow(now); ok {
						t.Fatalf("step %d: a call went through", i)
					}
				case step == "wait":
					i++
					d, err := time.ParseDuration(fields[i])
					if err != nil {
						t.Fatal(err)
					}
					now = now.Add(d)
				case strings.HasPrefix(step, "="):
					if st, _ := b.snapshot(); st.String() != step[1:] {
						t.Fatalf("step %d: state %s, want %s", i, st, step[1:])
					}
				default:
					t.Fatalf("unknown step %q", step)
				}
			}
		})
	}
}

// TestBreakerLateAnswer: a call let through while the breaker was closed,
// whose answer comes after other calls opened it, does not close it: only
// the probe decides.
func TestBreakerLateAnswer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := &breaker{threshold: 3, coolDown: 10 * time.Second}
	ok, probe := b.allow(now) // the slow call
	if !ok || probe {
		t.Fatal("a closed breaker must let a plain call through")
	}
	b.allow(now)
	b.record(unreachable, false, now)
	b.record(answered, false, now) // the slow call's answer
	if st, opened := b.snapshot(); st != Open || opened != 1 {
		t.Fatalf("state %s opened %d times, want open once", st, opened)
	}
}
