package stack

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/books"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/webhook"
	"github.com/wxflow/wxflow/workers/wechat"
)

// Worker kinds besides the event workers of [workers.All].
const (
	WorkerTokens = "tokens" // the access_token / jsapi_ticket refreshers, one per app
	WorkerBooks  = "books"  // the daily books: WeChat's bills against the store (needs the store)
	WorkerAll    = "all"    // every event worker, the refresher, the books and the webhook deliverer
)

// WorkerKinds lists every kind `wxflow worker KIND` accepts, in lifecycle order.
func WorkerKinds() []string {
	var kinds []string
	for _, h := range workers.All(workers.Deps{}) {
		kinds = append(kinds, h.Name())
	}
	return append(kinds, WorkerTokens, WorkerBooks, WorkerWebhook, WorkerAll)
}

// NeedsStore says whether a worker kind needs the store (the books and the
// webhook deliverer do).
func NeedsStore(kind string) bool {
	return kind == WorkerBooks || kind == WorkerWebhook || kind == WorkerAll
}

// CheckWorkerKind refuses a kind that is not one of [WorkerKinds], before
// anything connects.
func CheckWorkerKind(kind string) error {
	if kinds := WorkerKinds(); !slices.Contains(kinds, kind) {
		return fmt.Errorf("%w: unknown worker %q: want one of %v", ErrInvalid, kind, kinds)
	}
	return nil
}

// WorkerOptions tune the consume loop beyond Settings; zero fields take the
// loop's defaults. `wxflow dev` and the tests shorten them.
type WorkerOptions struct {
	MaxDeliver int           // deliveries of an event before it is dead-lettered
	BackoffMax time.Duration // the longest delay before a retry
	// Webhook tunes the webhook deliverer (kinds webhook and all); its
	// Secret, AllowPrivate and Logger come from the settings.
	Webhook webhook.Config
}

// Workers is a worker process's part: the event workers of one kind (or
// all), for tokens or all the refresher, for webhook or all the webhook
// deliverer.
type Workers struct {
	handlers   []workers.Handler
	refreshers []*tokens.Refresher
	deliverer  *webhook.Deliverer
	loop       workers.LoopConfig
	c          *Conns

	// Books are the daily books of each direct merchant (kinds books and
	// all); none otherwise.
	Books []*books.Books
}

// NewWorkers builds the workers of kind on c's NATS with wc's clients; the
// webhook deliverer (kinds webhook and all) on c's store. Kind webhook
// needs neither NATS nor wc.
func NewWorkers(ctx context.Context, s *Settings, c *Conns, wc *WechatClients, kind string, o WorkerOptions) (*Workers, error) {
	if err := CheckWorkerKind(kind); err != nil {
		return nil, err
	}
	w := &Workers{c: c, loop: workers.LoopConfig{Logger: c.Log, Concurrency: s.WorkerLanes, MaxDeliver: o.MaxDeliver, BackoffMax: o.BackoffMax}}
	if kind == WorkerWebhook || kind == WorkerAll {
		d, err := NewWebhooks(s, c, o.Webhook)
		if err != nil {
			return nil, err
		}
		w.deliverer = d
	}
	if kind == WorkerWebhook {
		return w, nil
	}
	for _, h := range workers.All(workers.Deps{Merchants: wc.Workers(), Codes: codeBucket(ctx, c.JS), Logger: c.Log}) {
		if kind == WorkerAll || h.Name() == kind {
			w.handlers = append(w.handlers, h)
		}
	}
	if kind == WorkerTokens || kind == WorkerAll {
		// One refresher per app, each under its own lease: every process of
		// kind tokens or all runs them all, and one of them refreshes each app.
		for _, app := range wc.Registry.Apps() {
			w.refreshers = append(w.refreshers, &tokens.Refresher{MP: wc.Platform[app.AppID], AppID: app.AppID,
				NoTicket: app.Kind == wechat.AppMiniProgram || app.Kind == wechat.AppMobile, NC: c.NC, JS: c.JS, Logger: c.Log})
		}
	}
	if NeedsStore(kind) {
		if c.Store == nil {
			return nil, fmt.Errorf("%w: worker %s needs the store (--db)", ErrInvalid, kind)
		}
		b, err := NewBooks(s, c, wc)
		if err != nil {
			return nil, err
		}
		w.Books = b
	}
	return w, nil
}

// Run runs every worker until ctx ends.
func (w *Workers) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range w.refreshers {
		g.Go(func() error { return r.Run(ctx) })
	}
	if w.deliverer != nil {
		g.Go(func() error { return w.deliverer.Run(ctx) })
	}
	for _, b := range w.Books {
		w.c.Log.Info("worker running", "worker", WorkerBooks, "merchant", b.Merchant())
		g.Go(func() error { return b.Run(ctx, w.c.NC) })
	}
	for _, h := range w.handlers {
		w.c.Log.Info("worker running", "worker", h.Name(), "lanes", w.loop.Concurrency)
		g.Go(func() error { return workers.Run(ctx, w.c.JS, h, w.loop) })
	}
	return g.Wait()
}
