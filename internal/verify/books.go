package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// The books' rules: every closed day's books balance.
const (
	RuleBooksUnbalanced = "books_unbalanced" // a closed day's books have discrepancies
	RuleBooksNotRun     = "books_not_run"    // a closed day with trades has no books, or only a preview
)

// BooksConfig says which days are closed.
type BooksConfig struct {
	Merchant string
	// Now is the time of the check.
	Now time.Time
	// ReadyAfter is how long after a day ends its books are due (the books
	// worker's wait for the bill, 10h30m, and an hour more for the run).
	ReadyAfter time.Duration
	// Days is how many days back a day with trades must have books (7: the
	// books worker catches up that far by itself).
	Days int
}

// Books checks that every closed day's books balance: a day is closed
// ReadyAfter after it ends (midnight, Beijing time). Every closed day whose
// stored books have discrepancies is a breach; and so is each closed day of
// the last Days that wxflow has trades of and whose books were never run
// on WeChat's final bill (only a preview, or nothing).
func Books(ctx context.Context, store *engine.Store, cfg BooksConfig) ([]engine.Breach, error) {
	if cfg.ReadyAfter <= 0 {
		cfg.ReadyAfter = 11*time.Hour + 30*time.Minute
	}
	if cfg.Days <= 0 {
		cfg.Days = 7
	}
	closed := func(day engine.Day) bool { return !cfg.Now.Before(day.End().Add(cfg.ReadyAfter)) }
	days, err := store.BooksDays(ctx, cfg.Merchant, 100000)
	if err != nil {
		return nil, fmt.Errorf("verify: books: %w", err)
	}
	var out []engine.Breach
	stored := map[engine.Day]engine.BooksDay{}
	for _, d := range days {
		stored[d.Day] = d
		if !closed(d.Day) || d.Discrepancies == 0 {
			continue
		}
		r, err := store.Books(ctx, cfg.Merchant, d.Day)
		if err != nil {
			return nil, fmt.Errorf("verify: books of %s: %w", d.Day, err)
		}
		var kinds []string
		for k, c := range r.Counts {
			if k.Discrepancy() && c > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, c))
			}
		}
		sort.Strings(kinds)
		out = append(out, engine.Breach{Rule: RuleBooksUnbalanced, Detail: fmt.Sprintf("%s (merchant %s): %s (wxflow books %s)",
			d.Day, cfg.Merchant, strings.Join(kinds, ", "), d.Day)})
	}
	today := engine.DayOf(cfg.Now)
	for n := 1; n <= cfg.Days; n++ {
		day := today.AddDays(-n)
		if d, ok := stored[day]; !closed(day) || ok && d.Final {
			continue
		}
		trades, err := store.HasTrades(ctx, cfg.Merchant, day)
		if err != nil {
			return nil, fmt.Errorf("verify: books of %s: %w", day, err)
		}
		if trades {
			out = append(out, engine.Breach{Rule: RuleBooksNotRun, Detail: fmt.Sprintf("%s (merchant %s): wxflow has trades that day, "+
				"and no books on WeChat's final bill (is a books worker running?)", day, cfg.Merchant)})
		}
	}
	return out, nil
}
