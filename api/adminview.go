package api

import (
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers"
)

// How the admin page writes money, times and durations. Money is yuan with
// the fen beside it (the engine counts fen; a person reads yuan, and the two
// side by side leave no doubt about a unit). Times are UTC, and the page says
// so: the admins of one deployment may sit in several zones, and the logs,
// the CLI and WeChat's bills do not share the browser's.

// adminFuncs are the admin templates' functions.
var adminFuncs = template.FuncMap{
	"yuan":      yuanFen,
	"yuanInput": yuanInput,
	"at":        atUTC,
	"day":       dayUTC,
	"sec":       secUTC,
	"took":      tookShort,
	"asked":     askedLine,
}

// yuanFen writes fen as "¥12.34 (1234 fen)".
func yuanFen(fen int64) string {
	return "¥" + yuanInput(fen) + " (" + strconv.FormatInt(fen, 10) + " fen)"
}

// yuanInput writes fen as yuan with two decimals and no sign of currency
// ("12.34"), as the refund form's amount field takes it.
func yuanInput(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// atUTC writes a time of the timeline to the millisecond, in UTC (the
// columns say "UTC").
func atUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }

// secUTC writes a time of a list to the second, in UTC (the columns say "UTC").
func secUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// dayUTC writes a time to the second, saying UTC.
func dayUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// tookShort writes how long a call took as a person reads it: 0.8 ms,
// 14.6 ms, 1.25 s.
func tookShort(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

// askedLine writes an attempt's calls to WeChat: "refund PROCESSING →
// refund query PROCESSING".
func askedLine(asked []workers.Asked) string {
	parts := make([]string, len(asked))
	for i, a := range asked {
		parts[i] = strings.TrimSpace(a.API + " " + a.Answer)
	}
	return strings.Join(parts, " → ")
}

// errYuan is an amount the refund form cannot read.
var errYuan = errors.New("must be an amount in yuan, such as 12.34: digits, at most two decimals")

// parseYuan reads the refund form's amount in yuan ("12", "12.3", "12.34",
// optionally "¥12.34") as fen, exactly: no floating point, no third
// decimal, no sign, no exponent, no thousands separator, at most
// maxAmountFen and more than zero.
func parseYuan(s string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimPrefix(s, "¥"))
	whole, frac, dotted := strings.Cut(s, ".")
	if whole == "" || len(whole) > 10 || len(frac) > 2 || dotted && frac == "" || !digits(whole) || !digits(frac) {
		return 0, errYuan
	}
	y, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, errYuan
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, errYuan
	}
	fen := y*100 + f
	switch {
	case fen <= 0:
		return 0, errors.New("must be more than zero")
	case fen > maxAmountFen:
		return 0, fmt.Errorf("must be at most %s", yuanFen(maxAmountFen))
	}
	return fen, nil
}

// digits says whether s holds ASCII digits only ("" does).
func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
