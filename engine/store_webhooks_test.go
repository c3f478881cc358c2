package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

var webhookServerSecret = []byte("0123456789abcdef0123456789abcdef")

func TestWebhookSecretSealing(t *testing.T) {
	secret, ep, err := engine.NewWebhookEndpoint(webhookServerSecret, "alpha", "https://shop.example/hook", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, engine.WebhookSecretPrefix) || len(secret) != len(engine.WebhookSecretPrefix)+52 {
		t.Fatalf("secret %q", secret)
	}
	if strings.Contains(ep.Sealed, secret) || strings.Contains(ep.Sealed, secret[len(engine.WebhookSecretPrefix):]) {
		t.Fatal("the sealed form holds the secret")
	}
	if got, err := ep.SigningSecret(webhookServerSecret); err != nil || got != secret {
		t.Fatalf("open: %q %v", got, err)
	}
	other := []byte("another-server-secret-of-32-byte")
	if _, err := ep.SigningSecret(other); !errors.Is(err, engine.ErrSealedSecret) {
		t.Fatalf("under another server secret: %v", err)
	}
	// A sealed secret copied onto another endpoint's row does not open.
	if _, err := engine.OpenWebhookSecret(webhookServerSecret, "whe_other", ep.Sealed); !errors.Is(err, engine.ErrSealedSecret) {
		t.Fatalf("on another endpoint: %v", err)
	}
	for _, bad := range []string{"", "v1.", "v1.!!", "v2." + ep.Sealed[3:], ep.Sealed[:len(ep.Sealed)-2]} {
		if _, err := engine.OpenWebhookSecret(webhookServerSecret, ep.ID, bad); !errors.Is(err, engine.ErrSealedSecret) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	_, ep2, _ := engine.NewWebhookEndpoint(webhookServerSecret, "alpha", "https://shop.example/hook", time.Now())
	if ep2.ID == ep.ID || ep2.Sealed == ep.Sealed {
		t.Fatal("two endpoints share an id or a sealed secret")
	}
}

// addEndpoint stores an endpoint of shop and returns it.
func addEndpoint(t *testing.T, store *engine.Store, shop string) engine.WebhookEndpoint {
	t.Helper()
	_, ep, err := engine.NewWebhookEndpoint(webhookServerSecret, shop, "https://"+shop+".example/hook", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AddWebhookEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

func TestWebhookEndpoints(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		for _, sh := range []engine.Shop{{Name: "alpha", Merchants: []string{"m"}}, {Name: "beta", Merchants: []string{"m"}}} {
			sh.CreatedAt = time.Now()
			if err := store.AddShop(ctx, sh); err != nil {
				t.Fatal(err)
			}
		}
		_, ghost, _ := engine.NewWebhookEndpoint(webhookServerSecret, "ghost", "https://x.example", time.Now())
		if err := store.AddWebhookEndpoint(ctx, ghost); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("endpoint of no shop: %v", err)
		}
		a := addEndpoint(t, store, "alpha")
		got, err := store.WebhookEndpoint(ctx, "alpha", a.ID)
		if err != nil || got.URL != a.URL || got.Sealed != a.Sealed {
			t.Fatalf("endpoint: %+v %v", got, err)
		}
		if _, err := store.WebhookEndpoint(ctx, "beta", a.ID); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("another shop's endpoint: %v", err)
		}
		for range engine.MaxWebhookEndpoints - 1 {
			addEndpoint(t, store, "alpha")
		}
		_, extra, _ := engine.NewWebhookEndpoint(webhookServerSecret, "alpha", "https://x.example", time.Now())
		if err := store.AddWebhookEndpoint(ctx, extra); !errors.Is(err, engine.ErrTooManyEndpoints) {
			t.Fatalf("one endpoint too many: %v", err)
		}
		if _, err := store.RemoveWebhookEndpoint(ctx, "beta", a.ID, time.Now()); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("removing another shop's endpoint: %v", err)
		}
		if _, err := store.RemoveWebhookEndpoint(ctx, "alpha", a.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := store.RemoveWebhookEndpoint(ctx, "alpha", a.ID, time.Now()); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("removed twice: %v", err)
		}
		if err := store.AddWebhookEndpoint(ctx, extra); err != nil {
			t.Fatalf("after a removal there is room: %v", err)
		}
		list, err := store.WebhookEndpoints(ctx, "alpha")
		if err != nil || len(list) != engine.MaxWebhookEndpoints {
			t.Fatalf("list: %d %v", len(list), err)
		}
		for _, ep := range list {
			if ep.ID == a.ID {
				t.Fatal("a removed endpoint is listed")
			}
		}
	})
}

// claim claims every due delivery (up to 100) under a fresh lease.
func claim(t *testing.T, store *engine.Store, now time.Time, perEndpoint int) []engine.WebhookJob {
	t.Helper()
	jobs, err := store.ClaimWebhookDeliveries(context.Background(), engine.WebhookClaim{Lease: engine.NewID("lease"), Now: now,
		Until: now.Add(30 * time.Second), Limit: 100, PerEndpoint: perEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func finish(t *testing.T, store *engine.Store, j engine.WebhookJob, st engine.WebhookState, at, next time.Time) {
	t.Helper()
	ok, err := store.FinishWebhookDelivery(context.Background(), engine.WebhookOutcome{ID: j.ID, Lease: j.Lease, At: at, State: st, NextAt: next, Status: 500, Error: "status 500"})
	if err != nil || !ok {
		t.Fatalf("finish %s: %v %v", j.EventID, ok, err)
	}
}

func seqs(jobs []engine.WebhookJob) string {
	var out []string
	for _, j := range jobs {
		out = append(out, fmt.Sprintf("%s#%d", j.OrderID, j.Seq))
	}
	return strings.Join(out, " ")
}

// TestWebhookQueueAndOrder: every event of a shop's merchant is queued once
// per live endpoint in its transaction, with the outbox's payload; each
// order's deliveries are claimed one at a time in seq order, a retry holds
// the rest back, a lease keeps others off, and a resend queues again
// without a second row.
func TestWebhookQueueAndOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		e, _, _ := newEngine(t, store)
		for _, sh := range []engine.Shop{{Name: "alpha", Merchants: []string{"m"}}, {Name: "other", Merchants: []string{"elsewhere"}}} {
			sh.CreatedAt = time.Now()
			if err := store.AddShop(ctx, sh); err != nil {
				t.Fatal(err)
			}
		}
		paid(t, e, "wo_before", 100) // before any endpoint: queued nowhere
		ep := addEndpoint(t, store, "alpha")
		foreign := addEndpoint(t, store, "other")
		paid(t, e, "wo_1", 100) // created, authorized, prepaid, signed, notified
		paid(t, e, "wo_2", 200)
		if d, _ := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: foreign.ID}); len(d) != 0 {
			t.Fatalf("a shop of another merchant got %d deliveries", len(d))
		}
		all, err := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID})
		if err != nil || len(all) != 10 {
			t.Fatalf("deliveries: %d %v", len(all), err)
		}
		if b, _ := store.WebhookBacklog(ctx); b.Pending != 10 || b.Failed != 0 || b.Oldest.IsZero() {
			t.Fatalf("backlog %+v", b)
		}

		now := time.Now()
		jobs := claim(t, store, now, 4)
		if got := seqs(jobs); got != "wo_1#1 wo_2#1" {
			t.Fatalf("first claim: %s, want the first event of each order", got)
		}
		if !strings.Contains(string(jobs[0].Payload), `"id":"`+jobs[0].EventID+`"`) || jobs[0].URL != ep.URL || jobs[0].Sealed != ep.Sealed {
			t.Fatalf("job: %+v", jobs[0])
		}
		if again := claim(t, store, now, 4); len(again) != 0 {
			t.Fatalf("leased rows claimed twice: %s", seqs(again))
		}
		// A stale lease reports nothing.
		if ok, _ := store.FinishWebhookDelivery(ctx, engine.WebhookOutcome{ID: jobs[0].ID, Lease: "lease_nope", At: now, State: engine.WebhookDelivered}); ok {
			t.Fatal("a foreign lease finished a delivery")
		}
		// wo_1's first event is delivered, wo_2's retries in a minute.
		finish(t, store, jobs[0], engine.WebhookDelivered, now, time.Time{})
		finish(t, store, jobs[1], engine.WebhookPending, now, now.Add(time.Minute))
		if got := seqs(claim(t, store, now, 4)); got != "wo_1#2" {
			t.Fatalf("second claim: %s, want wo_1's second event only", got)
		}
		// At the retry time wo_2#1 is due, and nothing of wo_2 behind it.
		later := now.Add(time.Minute)
		jobs = claim(t, store, later.Add(31*time.Second), 4) // wo_1#2's lease has ended too
		if got := seqs(jobs); got != "wo_1#2 wo_2#1" {
			t.Fatalf("after the retry delay: %s", got)
		}
		for _, j := range jobs {
			finish(t, store, j, engine.WebhookFailed, later.Add(31*time.Second), time.Time{})
		}
		// A given-up event no longer holds its order back.
		if got := seqs(claim(t, store, later.Add(31*time.Second), 4)); got != "wo_1#3 wo_2#2" {
			t.Fatalf("after giving up: %s", got)
		}
		if b, _ := store.WebhookBacklog(ctx); b.Failed != 2 || b.Pending != 7 {
			t.Fatalf("backlog %+v", b)
		}

		// Resend: the failed one again, without a second row; an event from
		// before the endpoint existed is queued; a foreign shop's is not.
		n, err := store.ResendWebhooks(ctx, "alpha", ep.ID, engine.WebhookResend{EventID: jobs[0].EventID}, later)
		if err != nil || n != 1 {
			t.Fatalf("resend one: %d %v", n, err)
		}
		h, _ := store.History(ctx, "wo_before")
		if n, err := store.ResendWebhooks(ctx, "alpha", ep.ID, engine.WebhookResend{EventID: h[0].EventID}, later); err != nil || n != 1 {
			t.Fatalf("resend an event from before the endpoint: %d %v", n, err)
		}
		if n, err := store.ResendWebhooks(ctx, "other", foreign.ID, engine.WebhookResend{EventID: h[0].EventID}, later); err != nil || n != 0 {
			t.Fatalf("resend of another merchant's event: %d %v", n, err)
		}
		if _, err := store.ResendWebhooks(ctx, "other", ep.ID, engine.WebhookResend{EventID: h[0].EventID}, later); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("resend through another shop: %v", err)
		}
		if _, err := store.ResendWebhooks(ctx, "alpha", ep.ID, engine.WebhookResend{}, later); err == nil {
			t.Fatal("a resend of nothing was accepted")
		}
		all, _ = store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID})
		if len(all) != 11 {
			t.Fatalf("%d rows after resends, want 11", len(all))
		}
		n, err = store.ResendWebhooks(ctx, "alpha", ep.ID, engine.WebhookResend{Since: now.Add(-time.Hour)}, later)
		if err != nil || n != 15 {
			t.Fatalf("resend since: %d %v, want all 15 events of the merchant", n, err)
		}
		all, _ = store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID})
		seen := map[string]bool{}
		for _, d := range all {
			if seen[d.EventID] || d.State != engine.WebhookPending {
				t.Fatalf("after resend since: %+v (seen %v)", d, seen[d.EventID])
			}
			seen[d.EventID] = true
		}
		if len(all) != 15 {
			t.Fatalf("%d rows, want 15", len(all))
		}
		// Paging and filtering.
		page, _ := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID, Limit: 4})
		next, _ := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID, Limit: 4, Before: page[3].ID})
		if len(page) != 4 || len(next) != 4 || next[0].ID >= page[3].ID {
			t.Fatalf("pages: %d %d", len(page), len(next))
		}

		// Removing the endpoint cancels what is pending; a removed endpoint
		// is queued nothing more.
		cancelled, err := store.RemoveWebhookEndpoint(ctx, "alpha", ep.ID, later)
		if err != nil || cancelled != 15 {
			t.Fatalf("remove: %d %v", cancelled, err)
		}
		paid(t, e, "wo_3", 100)
		if all, _ = store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID, State: engine.WebhookPending}); len(all) != 0 {
			t.Fatalf("%d pending after removal", len(all))
		}
		if n, err := store.PruneWebhookDeliveries(ctx, later.Add(time.Second), 10); err != nil || n != 10 {
			t.Fatalf("prune: %d %v", n, err)
		}
	})
}

// TestWebhookParking: a delivery queued behind a head that retries later is
// parked until then, and is due as soon as the head is delivered.
func TestWebhookParking(t *testing.T) {
	forEachStore(t, testWebhookParking)
}

func testWebhookParking(t *testing.T, store *engine.Store) {
	ctx := context.Background()
	e, _, _ := newEngine(t, store)
	if err := store.AddShop(ctx, engine.Shop{Name: "alpha", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ep := addEndpoint(t, store, "alpha")
	if res, err := e.Apply(ctx, create("wp_1", 100)); err != nil || !res.Applied {
		t.Fatal(res, err)
	}
	now := time.Now()
	jobs := claim(t, store, now, 4)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	finish(t, store, jobs[0], engine.WebhookPending, now, now.Add(time.Hour))
	a := cmd(engine.VerbAuthorize, "wp_1", 0)
	a.Authorize = &engine.Authorize{OpenID: "o1"}
	if res, err := e.Apply(ctx, a); err != nil || !res.Applied {
		t.Fatal(res, err)
	}
	if n, err := store.ParkWebhookDeliveries(ctx, time.Now(), now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("park: %d %v", n, err)
	}
	d, _ := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID})
	if len(d) != 2 || d[0].Seq != 2 || d[0].NextAt.Before(now.Add(119*time.Minute)) {
		t.Fatalf("the second event is not parked behind the first: %+v", d)
	}
	if n, err := store.ParkWebhookDeliveries(ctx, time.Now(), now.Add(2*time.Hour)); err != nil || n != 0 {
		t.Fatalf("park again: %d %v", n, err)
	}
	jobs = claim(t, store, now.Add(time.Hour), 4)
	if len(jobs) != 1 || jobs[0].Seq != 1 {
		t.Fatalf("at the retry: %s", seqs(jobs))
	}
	finish(t, store, jobs[0], engine.WebhookDelivered, now.Add(time.Hour), time.Time{})
	if jobs = claim(t, store, now.Add(time.Hour), 4); len(jobs) != 1 || jobs[0].Seq != 2 {
		t.Fatalf("after the head was delivered: %s", seqs(jobs))
	}
}

// TestWebhookClaimPerEndpoint: one endpoint's backlog takes at most
// PerEndpoint jobs of a claim, counting those the caller holds, and claims
// of two deliverers never overlap.
func TestWebhookClaimPerEndpoint(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	ctx := context.Background()
	e, _, _ := newEngine(t, store)
	for _, name := range []string{"slow", "quick"} {
		if err := store.AddShop(ctx, engine.Shop{Name: name, Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	slow, quick := addEndpoint(t, store, "slow"), addEndpoint(t, store, "quick")
	for i := range 10 {
		if res, err := e.Apply(ctx, create(engine.OrderID(fmt.Sprintf("wc_%d", i)), 100)); err != nil || !res.Applied {
			t.Fatal(res, err)
		}
	}
	now := time.Now()
	c := engine.WebhookClaim{Lease: "lease_a", Now: now, Until: now.Add(time.Minute), Limit: 6, PerEndpoint: 3, Busy: map[string]int{slow.ID: 2}}
	jobs, err := store.ClaimWebhookDeliveries(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, j := range jobs {
		per[j.EndpointID]++
	}
	if per[slow.ID] != 1 || per[quick.ID] != 3 {
		t.Fatalf("per endpoint %v, want 1 of the busy endpoint and 3 of the other", per)
	}
	c.Lease, c.Busy = "lease_b", nil
	more, _ := store.ClaimWebhookDeliveries(ctx, c)
	for _, j := range more {
		for _, k := range jobs {
			if j.ID == k.ID {
				t.Fatalf("delivery %d claimed by two leases", j.ID)
			}
		}
	}
	if len(more) != 6 {
		t.Fatalf("second claim: %d", len(more))
	}
}

// BenchmarkApplyWebhooks is BenchmarkApply with the merchant's shops
// having 0 or 2 webhook endpoints: what queueing deliveries in the
// command's transaction costs.
func BenchmarkApplyWebhooks(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) *engine.Store
	}{{"sqlite", enginetest.OpenSQLite}, {"postgres", enginetest.OpenPostgres}} {
		for _, endpoints := range []int{0, 2} {
			b.Run(fmt.Sprintf("%s/%d-endpoints", tc.name, endpoints), func(b *testing.B) {
				store := tc.open(b)
				_, nc, js := enginetest.StartNATS(b)
				e, _ := engine.New(engine.Config{}, store, nc, js)
				ctx := context.Background()
				if err := store.AddShop(ctx, engine.Shop{Name: "alpha", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
				for range endpoints {
					_, ep, _ := engine.NewWebhookEndpoint(webhookServerSecret, "alpha", "https://alpha.example/hook", time.Now())
					if err := store.AddWebhookEndpoint(ctx, ep); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := range b.N {
					if res, err := e.Apply(ctx, create(engine.OrderID(fmt.Sprintf("b%d", i)), 100)); err != nil || !res.Applied {
						b.Fatal(res, err)
					}
				}
			})
		}
	}
}

// TestWebhookResendParks: a resend of many events leaves each order's first
// due and the rest parked behind it, out of the claims' reach, until it is
// delivered.
func TestWebhookResendParks(t *testing.T) {
	forEachStore(t, func(t *testing.T, store *engine.Store) {
		ctx := context.Background()
		e, _, _ := newEngine(t, store)
		if err := store.AddShop(ctx, engine.Shop{Name: "alpha", Merchants: []string{"m"}, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ep := addEndpoint(t, store, "alpha")
		for i := range 3 {
			paid(t, e, engine.OrderID(fmt.Sprintf("wr_%d", i)), 100)
		}
		now := time.Now()
		for { // deliver everything
			jobs := claim(t, store, now, 100)
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				finish(t, store, j, engine.WebhookDelivered, now, time.Time{})
			}
		}
		n, err := store.ResendWebhooks(ctx, "alpha", ep.ID, engine.WebhookResend{Since: start}, now)
		if err != nil || n != 15 {
			t.Fatalf("resend: %d %v", n, err)
		}
		jobs := claim(t, store, now, 100)
		if got := seqs(jobs); got != "wr_0#1 wr_1#1 wr_2#1" {
			t.Fatalf("after the resend: %s, want each order's first only", got)
		}
		finish(t, store, jobs[0], engine.WebhookDelivered, now, time.Time{})
		if got := seqs(claim(t, store, now, 100)); got != "wr_0#2" {
			t.Fatalf("after delivering wr_0's first: %s", got)
		}
		if d, _ := store.WebhookDeliveries(ctx, engine.WebhookDeliveryFilter{EndpointID: ep.ID, State: engine.WebhookPending}); len(d) != 14 {
			t.Fatalf("%d pending", len(d))
		}
	})
}
