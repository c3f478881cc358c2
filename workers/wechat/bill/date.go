package bill

import (
	"fmt"
	"time"
)

// beijing is WeChat's clock: a bill's day runs 00:00:00–24:00:00 UTC+8.
var beijing = time.FixedZone("CST", 8*3600)

// Beijing is the time zone of bills (UTC+8, no daylight saving).
func Beijing() *time.Location { return beijing }

// Date is the day of a bill: a calendar day in Beijing time. The zero Date
// is not a day ([Date.IsZero]).
type Date struct {
	y int
	m time.Month
	d int
}

// DateOf is the Beijing day the instant t falls in.
func DateOf(t time.Time) Date {
	y, m, d := t.In(beijing).Date()
	return Date{y, m, d}
}

// NewDate is the day y-m-d, normalised as time.Date does (March 32 is April 1).
func NewDate(y int, m time.Month, d int) Date {
	return DateOf(time.Date(y, m, d, 12, 0, 0, 0, beijing))
}

// ParseDate reads a day as v3 writes it (2006-01-02) or as v2 does
// (20060102).
func ParseDate(s string) (Date, error) {
	for _, layout := range []string{"2006-01-02", "20060102"} {
		if len(s) != len(layout) {
			continue
		}
		if t, err := time.ParseInLocation(layout, s, beijing); err == nil {
			return DateOf(t), nil
		}
	}
	return Date{}, fmt.Errorf("bill: %q is not a day (want 2006-01-02 or 20060102)", s)
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Start is the day's first instant, 00:00:00 Beijing time.
func (d Date) Start() time.Time { return time.Date(d.y, d.m, d.d, 0, 0, 0, 0, beijing) }

// End is the next day's first instant: the day is [Start, End).
func (d Date) End() time.Time { return d.AddDays(1).Start() }

// Contains reports whether the instant t falls in the day.
func (d Date) Contains(t time.Time) bool { return DateOf(t) == d }

// AddDays is the day n days later (earlier when n < 0).
func (d Date) AddDays(n int) Date { return NewDate(d.y, d.m, d.d+n) }

// Before reports whether d is an earlier day than e.
func (d Date) Before(e Date) bool { return d.Start().Before(e.Start()) }

// String writes the day as v3's bill_date does: 2006-01-02.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.y, int(d.m), d.d) }

// Compact writes the day as v2's bill_date does: 20060102.
func (d Date) Compact() string { return fmt.Sprintf("%04d%02d%02d", d.y, int(d.m), d.d) }
