package books

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/engine"
)

// RunSubject is where a day's books are asked for on demand: a request
// whose body is a [RunRequest], answered with a [RunReply] once the run has
// ended (its result is in the store). One books process answers (a queue group).
func RunSubject(merchant string) string { return "wxflow.books.run." + merchant }

// RunRequest asks for a day's books.
type RunRequest struct {
	Day engine.Day `json:"day"`
}

// RunReply says how a run on demand ended.
type RunReply struct {
	// Code is "ok", "not_ready" (WeChat has no bill yet), "busy" (another
	// run holds the day) or "error".
	Code          string `json:"code"`
	Status        string `json:"status,omitempty"`
	Discrepancies int    `json:"discrepancies"`
	Error         string `json:"error,omitempty"`
}

// Reply is the answer to a run that returned r and err.
func Reply(r engine.BooksResult, err error) RunReply {
	switch {
	case err == nil:
		return RunReply{Code: "ok", Status: r.Status, Discrepancies: r.Discrepancies()}
	case errors.Is(err, ErrNotReady):
		return RunReply{Code: "not_ready", Error: err.Error()}
	case errors.Is(err, ErrBusy):
		return RunReply{Code: "busy", Error: err.Error()}
	case r.Day != "":
		// Stored, but a repair could not be published: the next run makes it.
		return RunReply{Code: "ok", Status: r.Status, Discrepancies: r.Discrepancies(), Error: err.Error()}
	}
	return RunReply{Code: "error", Error: err.Error()}
}

// Run does the daily books until ctx ends: every Interval, each of the last
// LookBack days whose bill should be ready and whose books are not final
// yet (or whose repairs want a look again) is run; with Preview, today's
// too; and, when nc is not nil, every request on RunSubject is answered.
func (b *Books) Run(ctx context.Context, nc *nats.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if nc != nil {
		sub, err := nc.QueueSubscribe(RunSubject(b.cfg.Merchant.Name), "books", func(m *nats.Msg) {
			wg.Go(func() { b.answer(ctx, m) })
		})
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	daily := time.NewTicker(b.cfg.Interval)
	defer daily.Stop()
	var preview <-chan time.Time
	if b.cfg.Preview > 0 {
		t := time.NewTicker(b.cfg.Preview)
		defer t.Stop()
		preview = t.C
	}
	b.daily(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-daily.C:
			b.daily(ctx)
		case <-preview:
			today := engine.DayOf(b.cfg.Now())
			if _, err := b.RunDay(ctx, today); err != nil && ctx.Err() == nil && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrNotReady) {
				b.log.Warn("books: preview", "day", today, "err", err)
			}
		}
	}
}

// answer runs the day a request asks for and replies.
func (b *Books) answer(ctx context.Context, m *nats.Msg) {
	var req RunRequest
	var reply RunReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply = RunReply{Code: "error", Error: "want {\"day\": \"2006-01-02\"}"}
	} else if _, err := engine.ParseDay(string(req.Day)); err != nil {
		reply = RunReply{Code: "error", Error: err.Error()}
	} else {
		reply = Reply(b.RunDay(ctx, req.Day))
	}
	out, _ := json.Marshal(reply)
	_ = m.Respond(out)
}

// Due lists the days the daily run does now: of the last LookBack days,
// those whose bill should be ready (ReadyAfter past their end) and whose
// books were never run, were run before WeChat's final bill, or have
// repairs (queries) to see settled, Recheck after their last run and
// fewer than MaxRuns runs.
func (b *Books) Due(ctx context.Context) ([]engine.Day, error) {
	now := b.cfg.Now()
	today := engine.DayOf(now)
	var due []engine.Day
	for n := b.cfg.LookBack; n >= 1; n-- {
		day := today.AddDays(-n)
		if now.Before(day.End().Add(b.cfg.ReadyAfter)) {
			continue
		}
		r, err := b.cfg.Store.Books(ctx, b.cfg.Merchant.Name, day)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			due = append(due, day)
			continue
		case err != nil:
			return nil, err
		}
		queries := slices.ContainsFunc(r.Lines, func(l engine.BooksLine) bool { return l.Repair == engine.RepairQuery })
		if !r.Final || queries && r.Runs < b.cfg.MaxRuns && now.Sub(r.RunAt) >= b.cfg.Recheck {
			due = append(due, day)
		}
	}
	return due, nil
}

// daily runs the days due.
func (b *Books) daily(ctx context.Context) {
	due, err := b.Due(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("books: days due", "err", err)
		}
		return
	}
	for _, day := range due {
		_, err := b.RunDay(ctx, day)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotReady), errors.Is(err, ErrBusy):
			b.log.Info("books: not now", "day", day, "err", err)
		case err != nil:
			b.log.Warn("books", "day", day, "err", err)
		}
	}
}
