// Package tokens keeps the deployment's one global access_token and
// jsapi_ticket per AppID in a NATS key-value bucket. Exactly one process, the
// holder of a lease in KV, fetches them, ahead of expiry and on demand, since
// every fetch invalidates the previous token (money rule 6); every process
// reads the shared copy.
package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat/mp"
)

// Entry is one shared token as stored in KV.
type Entry struct {
	Value     string    `json:"value"`
	ExpiresAt time.Time `json:"expires_at"`
	FetchedAt time.Time `json:"fetched_at"`
}

func accessKey(appID string) string { return "access_token." + appID }
func ticketKey(appID string) string { return "jsapi_ticket." + appID }
func leaseKey(appID string) string  { return "refresher." + appID }

// RefreshSubject is where a reader asks the refresher for a new token,
// sending the value it saw fail.
func RefreshSubject(appID string) string { return "wxflow.tokens.refresh." + appID }

// ErrNoToken: no token is shared yet (no refresher running, or it failed).
var ErrNoToken = errors.New("tokens: no shared token yet")

// Refresher fetches the tokens while it holds the lease.
type Refresher struct {
	MP    *mp.Client
	AppID string
	// NoTicket keeps the access_token only: a mini-program has no JS-SDK
	// pages, so no jsapi_ticket to sign wx.config with.
	NoTicket bool
	NC       *nats.Conn
	JS       jetstream.JetStream
	Logger   *slog.Logger
	// Tick is how often the lease is renewed and the tokens checked (5 s).
	Tick time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	holder string
	mu     sync.Mutex // one fetch at a time
	leader bool
	rev    uint64
}

// Run holds or waits for the lease and keeps the tokens fresh until ctx ends.
func (r *Refresher) Run(ctx context.Context) error {
	if r.Tick == 0 {
		r.Tick = 5 * time.Second
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	r.holder = engine.NewID("refresher")
	leases, err := r.JS.KeyValue(ctx, engine.LeaseBucket)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	store, err := r.JS.KeyValue(ctx, engine.TokenBucket)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	sub, err := r.NC.Subscribe(RefreshSubject(r.AppID), func(m *nats.Msg) {
		if !r.isLeader() {
			return // the leader answers
		}
		_ = r.refresh(ctx, store, string(m.Data))
		_ = m.Respond([]byte("ok"))
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	t := time.NewTicker(r.Tick)
	defer t.Stop()
	for {
		r.holdLease(ctx, leases)
		if r.isLeader() {
			if err := r.refresh(ctx, store, ""); err != nil && ctx.Err() == nil {
				r.Logger.Warn("token refresh failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if r.isLeader() {
				_ = leases.Delete(context.Background(), leaseKey(r.AppID))
			}
			return nil
		case <-t.C:
		}
	}
}

func (r *Refresher) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// holdLease acquires the lease when free and renews it when held.
func (r *Refresher) holdLease(ctx context.Context, leases jetstream.KeyValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := leaseKey(r.AppID)
	if r.leader {
		rev, err := leases.Update(ctx, key, []byte(r.holder), r.rev)
		if err == nil {
			r.rev = rev
			return
		}
		r.leader = false
		r.Logger.Info("token refresher lease lost", "err", err)
	}
	rev, err := leases.Create(ctx, key, []byte(r.holder))
	if err == nil {
		r.leader, r.rev = true, rev
		r.Logger.Info("this process refreshes the tokens", "appid", r.AppID)
	}
}

// refresh fetches new tokens when the stored ones are missing, close to
// expiry, or equal to seen (a value a reader saw refused).
func (r *Refresher) refresh(ctx context.Context, store jetstream.KeyValue, seen string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.Now()
	cur, err := read(ctx, store, accessKey(r.AppID))
	if err == nil && seen != cur.Value && cur.ExpiresAt.Sub(now) > margin(cur) {
		if _, terr := read(ctx, store, ticketKey(r.AppID)); terr == nil || r.NoTicket {
			return nil
		}
	}
	tok, err := r.MP.AccessToken(ctx)
	if err != nil {
		return err
	}
	fresh := map[string]mp.Token{accessKey(r.AppID): tok}
	if !r.NoTicket {
		ticket, err := r.MP.JSAPITicket(ctx, tok.Value)
		if err != nil {
			return err
		}
		fresh[ticketKey(r.AppID)] = ticket
	}
	for key, t := range fresh {
		b, _ := json.Marshal(Entry{Value: t.Value, ExpiresAt: now.Add(t.ExpiresIn), FetchedAt: now})
		if _, err := store.Put(ctx, key, b); err != nil {
			return err
		}
	}
	r.Logger.Info("tokens refreshed", "appid", r.AppID, "expires_in", tok.ExpiresIn)
	return nil
}

// margin is how long before expiry a token is replaced: a quarter of its
// life, at most 5 minutes.
func margin(e Entry) time.Duration {
	return min(e.ExpiresAt.Sub(e.FetchedAt)/4, 5*time.Minute)
}

func read(ctx context.Context, store jetstream.KeyValue, key string) (Entry, error) {
	kve, err := store.Get(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	return e, json.Unmarshal(kve.Value(), &e)
}

// Reader reads the shared tokens; it never fetches from WeChat itself.
type Reader struct {
	AppID string
	NC    *nats.Conn
	JS    jetstream.JetStream
	Now   func() time.Time
}

// AccessToken returns the shared access_token.
func (r *Reader) AccessToken(ctx context.Context) (string, error) {
	return r.get(ctx, accessKey(r.AppID))
}

// JSAPITicket returns the shared jsapi_ticket.
func (r *Reader) JSAPITicket(ctx context.Context) (string, error) {
	return r.get(ctx, ticketKey(r.AppID))
}

func (r *Reader) get(ctx context.Context, key string) (string, error) {
	store, err := r.JS.KeyValue(ctx, engine.TokenBucket)
	if err != nil {
		return "", err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	e, err := read(ctx, store, key)
	if err == nil && e.ExpiresAt.After(now()) {
		return e.Value, nil
	}
	if err := r.Invalidate(ctx, e.Value); err != nil {
		return "", err
	}
	if e, err = read(ctx, store, key); err != nil || !e.ExpiresAt.After(now()) {
		return "", ErrNoToken
	}
	return e.Value, nil
}

// Invalidate asks the refresher for new tokens because seen was refused
// (40001 / 42001); a burst of askers with the same value causes one fetch.
func (r *Reader) Invalidate(ctx context.Context, seen string) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.NC.RequestWithContext(rctx, RefreshSubject(r.AppID), []byte(seen)); err != nil {
		return fmt.Errorf("%w: refresher did not answer: %w", ErrNoToken, err)
	}
	return nil
}
