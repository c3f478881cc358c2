package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/webhook"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestWebhooksEndToEnd runs the demo's orders (paid, refunded in part and
// in full, expired, closed, refused by the bank) through `wxflow dev`'s
// stack while the demo shop's webhook endpoint, added through the admin
// API, fails a quarter of the first attempts with 500 and answers a sixth
// too late (processed, but the sender times out and sends it again). The endpoint processes every event of every
// order: each request's signature verified as docs/API.md shows, each event
// once after dedupe by Wxflow-Event-Id, each order's events in seq order,
// each body byte for byte the NATS message. The admin API lists them all
// delivered and /metrics counts them.
func TestWebhooksEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn", WebhookAllowPrivate: true}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 5*time.Second, 5*time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{DuplicateNotify: true, Seed: 11}},
		Workers: stack.WorkerOptions{Webhook: webhook.Config{Timeout: time.Second, PollInterval: 50 * time.Millisecond,
			BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })

	rec := &shopReceiver{first: map[string]bool{}, tries: map[string]int{}, lastSeq: map[engine.OrderID]int64{},
		bodies: map[string][]byte{}, stop: make(chan struct{})}
	hs := httptest.NewServer(rec)
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(rec.stop) }) // first: held requests return

	// The admin adds the endpoint; the secret is in the answer, once.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.APIURL+"/admin/api/shops/"+stack.DemoShop+"/webhooks",
		strings.NewReader(`{"url":"`+hs.URL+`/wxflow/events"}`))
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var added struct {
		Webhook engine.WebhookEndpoint
		Secret  string
	}
	err = json.NewDecoder(resp.Body).Decode(&added)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || added.Secret == "" {
		t.Fatalf("add webhook: %d %+v %v", resp.StatusCode, added, err)
	}
	rec.mu.Lock()
	rec.secret = added.Secret
	rec.mu.Unlock()

	results := demo.Run(ctx, demo.Config{Orders: 14, Concurrency: 7, APIURL: st.APIURL, ShopKey: st.ShopKey, SimURL: st.SimURL,
		SimClient: st.Sim.Client(), Timeout: 90 * time.Second})
	want := map[string]engine.OrderID{}
	for _, r := range results {
		if !r.OK() {
			t.Fatalf("order #%d %s (%s): got %s, want %s: %v", r.N, r.OrderID, r.Scenario, r.Got, r.Want, r.Err)
		}
		h, err := st.Store.History(ctx, r.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h {
			if e.Applied {
				want[e.EventID] = r.OrderID
			}
		}
	}
	enginetest.WaitFor(t, 120*time.Second, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		missing := 0
		for id := range want {
			if !rec.first[id] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d events not processed by the shop (%d requests)", missing, len(want), rec.requests)
		}
		return nil
	})

	rec.mu.Lock()
	for _, p := range rec.problems {
		t.Error(p)
	}
	bodies, requests, dups := rec.bodies, rec.requests, rec.duplicates
	for id := range rec.first {
		if _, ok := want[id]; !ok {
			t.Errorf("event %s is of no demo order", id)
		}
	}
	rec.mu.Unlock()

	// Each body is the event exactly as published on NATS.
	nc, js := connectAs(t, &s, natsauth.Monitor)
	defer nc.Close()
	stream, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	published := map[string][]byte{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		published[msg.Headers().Get(jetstream.MsgIDHeader)] = msg.Data()
	}
	for id, body := range bodies {
		if !bytes.Equal(body, published[id]) {
			t.Errorf("event %s: the webhook's body differs from the NATS message", id)
		}
	}

	// The admin API lists every delivery delivered; /metrics counts them.
	adminGet := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.APIURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+st.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	enginetest.WaitFor(t, 30*time.Second, func() error {
		var page struct{ Deliveries []engine.WebhookDelivery }
		adminGet(fmt.Sprintf("/admin/api/shops/%s/webhooks/%s/deliveries?limit=500", stack.DemoShop, added.Webhook.ID), &page)
		if len(page.Deliveries) != len(want) {
			return fmt.Errorf("%d deliveries listed, want %d", len(page.Deliveries), len(want))
		}
		for _, d := range page.Deliveries {
			if d.State != engine.WebhookDelivered {
				return fmt.Errorf("delivery %+v", d)
			}
		}
		return nil
	})
	resp, err = http.Get(st.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`wxflow_webhook_deliveries_total{result="delivered"}`, `wxflow_webhook_deliveries_total{result="retry"}`,
		"wxflow_webhook_backlog 0", "wxflow_webhook_failed 0", "wxflow_webhook_attempt_seconds_bucket"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if dups == 0 {
		t.Error("no duplicate reached the shop: the late answers should have made some")
	}
	t.Logf("%d orders, %d events; the shop got %d requests, %d duplicates dropped by event id", len(results), len(want), requests, dups)
}

// shopReceiver is a shop's webhook endpoint written as docs/API.md says:
// verify the signature over the raw body, dedupe by event id, process.
// It fails every fourth first attempt (500), and answers every sixth only
// after the sender gave up (it processed it: the retry is a duplicate).
type shopReceiver struct {
	mu         sync.Mutex
	secret     string
	requests   int
	duplicates int
	tries      map[string]int
	first      map[string]bool
	lastSeq    map[engine.OrderID]int64
	bodies     map[string][]byte
	problems   []string
	stop       chan struct{} // closed at the test's end: held requests return
}

func (r *shopReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.requests++
	n := r.requests
	if err := verifyWebhook(r.secret, req.Header.Get("Wxflow-Signature"), body, time.Now()); err != nil {
		r.problems = append(r.problems, "signature: "+err.Error())
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var ev engine.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("Wxflow-Event-Id") || string(ev.Type) != req.Header.Get("Wxflow-Event-Type") {
		r.problems = append(r.problems, fmt.Sprintf("event %q / headers %q %q: %v", ev.ID, req.Header.Get("Wxflow-Event-Id"), req.Header.Get("Wxflow-Event-Type"), err))
	}
	r.tries[ev.ID]++
	first := r.tries[ev.ID] == 1
	if first && n%4 == 0 {
		r.mu.Unlock()
		http.Error(w, "busy", http.StatusInternalServerError)
		return
	}
	r.process(ev, body)
	r.mu.Unlock()
	if first && n%6 == 0 { // processed, but the answer comes too late: the sender tries again
		select {
		case <-req.Context().Done():
		case <-r.stop:
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// process handles an event once: a duplicate (the same event id again) is
// dropped; r.mu is held.
func (r *shopReceiver) process(ev engine.Event, body []byte) {
	if r.first[ev.ID] {
		r.duplicates++
		return
	}
	if ev.Seq <= r.lastSeq[ev.OrderID] {
		r.problems = append(r.problems, fmt.Sprintf("order %s: event %d after %d", ev.OrderID, ev.Seq, r.lastSeq[ev.OrderID]))
	}
	r.lastSeq[ev.OrderID] = ev.Seq
	r.first[ev.ID] = true
	r.bodies[ev.ID] = body
}

// verifyWebhook is the verification of docs/API.md (standard library only).
func verifyWebhook(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed Wxflow-Signature")
	}
	if age := now.Sub(time.Unix(t, 0)); age > 5*time.Minute || age < -5*time.Minute {
		return errors.New("signature too old (or from the future): a replay?")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return errors.New("signature does not match")
	}
	return nil
}
