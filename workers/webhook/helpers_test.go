package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/webhook"
)

// serverSecret is the tests' server secret.
var serverSecret = []byte("webhook-test-server-secret-32-by")

// harness is a real engine over a real store (SQLite or PostgreSQL) and
// NATS, with shop acme acting for merchant m.
type harness struct {
	store *engine.Store
	eng   *engine.Engine
	js    jetstream.JetStream
}

func newHarness(t testing.TB, open func(testing.TB) *engine.Store) *harness {
	t.Helper()
	store := open(t)
	_, nc, js := enginetest.StartNATS(t)
	eng, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.RunEngine(t, eng) // the relay publishes the outbox: the tests compare bodies with NATS
	if err := store.AddShop(context.Background(), engine.Shop{Name: "acme", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return &harness{store: store, eng: eng, js: js}
}

// endpoint registers url for shop acme and tells rec its secret.
func (h *harness) endpoint(t testing.TB, rec *receiver) engine.WebhookEndpoint {
	t.Helper()
	secret, ep, err := engine.NewWebhookEndpoint(serverSecret, "acme", rec.url, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.AddWebhookEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	rec.secret = secret
	rec.mu.Unlock()
	return ep
}

// apply applies commands, each of which must be applied.
func (h *harness) apply(t testing.TB, cmds ...engine.Command) {
	t.Helper()
	for _, c := range cmds {
		res, err := h.eng.Apply(context.Background(), c)
		if err != nil || !res.Applied {
			t.Errorf("%s %s: %+v %v", c.Verb, c.OrderID, res, err)
		}
	}
}

// lifecycle drives an order of merchant m through create (openid: created,
// authorized), prepaid, signed, notified, a refund (queued, refunding) and
// refunded: 7 events or more.
func lifecycle(id engine.OrderID) []engine.Command {
	c := func(verb engine.Verb) engine.Command {
		return engine.Command{ID: fmt.Sprintf("%s:%s", verb, id), Verb: verb, OrderID: id, Actor: "test"}
	}
	create := c(engine.VerbCreate)
	create.Origin = engine.OriginAPI
	create.Create = &engine.CreateOrder{Merchant: "m", OutTradeNo: "OTN-" + string(id), Description: "tea", AmountFen: 300,
		PayAPI: engine.PayV3, Client: engine.ClientJSAPI, OpenID: "oPAYER", RequestHash: "h-" + string(id)}
	prepaid := c(engine.VerbPrepaid)
	prepaid.Prepaid = &engine.PrepaidInfo{PrepayID: "wx" + string(id)}
	signed := c(engine.VerbSigned)
	signed.Signed = &engine.SignedInfo{PayParams: engine.RawJSON(`{"paySign":"x"}`)}
	notify := c(engine.VerbNotify)
	notify.Notify = &engine.Payment{TransactionID: "t" + string(id), AmountFen: 300, Source: engine.SourceNotification}
	refund := c(engine.VerbRefund)
	refund.Refund = &engine.RefundAsk{OutRefundNo: "r" + string(id), AmountFen: 100}
	refunded := c(engine.VerbRefunded)
	refunded.Refunded = &engine.RefundDone{OutRefundNo: "r" + string(id), RefundID: "rid", Succeeded: true, Source: engine.SourceNotification}
	return []engine.Command{create, prepaid, signed, notify, refund, refunded}
}

// eventsOf lists the event ids of the orders from the store.
func (h *harness) eventsOf(t testing.TB, ids ...engine.OrderID) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range ids {
		hist, err := h.store.History(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range hist {
			if e.Applied {
				out[e.EventID] = true
			}
		}
	}
	return out
}

// deliverer runs a deliverer over the store until the test ends.
func (h *harness) deliverer(t testing.TB, cfg webhook.Config) {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = serverSecret
	}
	d, err := webhook.New(cfg, h.store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// quick is a deliverer's config for tests: quick polls and retries.
func quick() webhook.Config {
	return webhook.Config{Concurrency: 8, PerEndpoint: 2, Timeout: 3 * time.Second, PollInterval: 20 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, AllowPrivate: true}
}

// action is what a receiver does with a request.
type action int

const (
	answerOK   action = iota // 200
	answer500                // 500, processing nothing
	answerHang               // no answer until the sender gives up (or the test ends)
)

// receipt is one request a receiver answered 2xx: an event it processed.
type receipt struct {
	ev  engine.Event
	raw []byte
	at  time.Time
}

// receiver is a shop's webhook endpoint: it verifies every request as
// docs/API.md shows, answers as decide says, and keeps what it processed.
type receiver struct {
	t      testing.TB
	url    string
	decide func(ev engine.Event, attempt int) action
	stop   chan struct{}

	mu       sync.Mutex
	secret   string
	hits     int
	attempts map[string]int  // requests per event id
	inflight map[string]int  // requests per event id being answered now
	maxBusy  int             // the most requests answered at once
	busy     int             // requests being answered now
	got      []receipt       // 2xx answers, in order
	seen     map[string]bool // event ids processed (the receiver's dedupe)
	problems []string        // anything a receiver must not see
	lastTry  map[string]time.Time
}

func newReceiver(t testing.TB, decide func(ev engine.Event, attempt int) action) *receiver {
	r := &receiver{t: t, decide: decide, stop: make(chan struct{}), attempts: map[string]int{}, inflight: map[string]int{},
		seen: map[string]bool{}, lastTry: map[string]time.Time{}}
	hs := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(r.stop) }) // runs first: hanging handlers return
	r.url = hs.URL + "/hooks/wxflow?token=t0ken"
	return r
}

func (r *receiver) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	r.hits++
	var ev engine.Event
	switch {
	case err != nil:
		r.problem("body: %v", err)
	case req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json":
		r.problem("%s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	case verifySignature(r.secret, req.Header.Get(webhook.SignatureHeader), body, time.Now()) != nil:
		r.problem("signature of %s: %v", req.Header.Get(webhook.EventIDHeader), verifySignature(r.secret, req.Header.Get(webhook.SignatureHeader), body, time.Now()))
	case json.Unmarshal(body, &ev) != nil:
		r.problem("body is not an event: %.80s", body)
	case req.Header.Get(webhook.EventIDHeader) != ev.ID || req.Header.Get(webhook.EventTypeHeader) != string(ev.Type):
		r.problem("headers %s/%s for event %s/%s", req.Header.Get(webhook.EventIDHeader), req.Header.Get(webhook.EventTypeHeader), ev.ID, ev.Type)
	}
	r.attempts[ev.ID]++
	attempt := r.attempts[ev.ID]
	r.lastTry[ev.ID] = time.Now()
	if r.inflight[ev.ID]++; r.inflight[ev.ID] > 1 {
		r.problem("event %s sent twice at once", ev.ID)
	}
	r.busy++
	r.maxBusy = max(r.maxBusy, r.busy)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[ev.ID]--
		r.busy--
		r.mu.Unlock()
	}()
	switch r.decide(ev, attempt) {
	case answer500:
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	case answerHang:
		select {
		case <-req.Context().Done():
		case <-r.stop:
		}
		return
	}
	r.mu.Lock()
	r.got = append(r.got, receipt{ev: ev, raw: body, at: time.Now()})
	r.seen[ev.ID] = true
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// missing says which of want the receiver has not processed yet.
func (r *receiver) missing(want map[string]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id := range want {
		if !r.seen[id] {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%d of %d events not yet processed by %s", n, len(want), r.url)
	}
	return nil
}

// check reports what the receiver must not have seen, and whether the
// events of each order were processed in seq order (a duplicate right
// after its first processing is allowed: at least once).
func (r *receiver) check(t *testing.T) {
	t.Helper()
	r.checkProblems(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	last := map[engine.OrderID]int64{}
	for _, g := range r.got {
		if g.ev.Seq < last[g.ev.OrderID] {
			t.Errorf("order %s: event %d processed after %d", g.ev.OrderID, g.ev.Seq, last[g.ev.OrderID])
		}
		last[g.ev.OrderID] = g.ev.Seq
	}
}

// checkProblems reports what the receiver must not have seen: a bad
// signature, header or body, one event sent twice at once.
func (r *receiver) checkProblems(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}
