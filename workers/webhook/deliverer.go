package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/wxflow/wxflow/engine"
)

// Config configures a [Deliverer]. Zero fields take the defaults named.
type Config struct {
	// Secret is the server secret: the endpoints' signing secrets are
	// sealed under it (engine.NewWebhookEndpoint). Required; the same file
	// as the API's and `wxflow shop`'s.
	Secret []byte
	// Concurrency is how many deliveries this process makes at once (16).
	Concurrency int
	// PerEndpoint is how many of them may go to one endpoint at once
	// (Concurrency/4, at least 1): an endpoint that answers slowly holds
	// that many senders, never all of them.
	PerEndpoint int
	// Timeout bounds one POST, from connecting to the end of the answer read
	// (10 s); past it the attempt failed and is retried.
	Timeout time.Duration
	// Lease is how long a claimed delivery is this process's (2×Timeout +
	// 10 s): a process that dies holding one lets another claim it after.
	// It must be longer than Timeout, or two processes could send one
	// delivery at once.
	Lease time.Duration
	// PollInterval is how often the store is asked for due deliveries when
	// nothing else woke the deliverer (500 ms): the delay a new event may wait.
	PollInterval time.Duration
	// BackoffBase and BackoffMax shape the wait before retry n:
	// BackoffBase×2^(n−1), capped at BackoffMax, drawn uniformly between
	// half and all of it (10 s, 1 h).
	BackoffBase, BackoffMax time.Duration
	// GiveUpAfter is how long after it was queued (or resent) a delivery is
	// retried before it is marked failed (72 h).
	GiveUpAfter time.Duration
	// Retention is how long delivered and cancelled deliveries are kept
	// before they are deleted (720 h); failed ones stay until resent.
	Retention time.Duration
	// MaxResponseBytes is the most of an answer's body read (64 KiB); the
	// rest is not read, and the connection is closed.
	MaxResponseBytes int64
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (false): for `wxflow dev` and shops inside the deployment's own
	// network. Link-local ones (the metadata service) are never reached.
	// See Permitted.
	AllowPrivate bool
	// RootCAs, when set, are the roots https endpoints' certificates must
	// chain to instead of the system's.
	RootCAs *x509.CertPool
	// Observer hears every attempt (metrics); optional.
	Observer Observer
	// Logger receives the deliverer's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate fills the defaults and reports impossible values.
func (c *Config) Validate() error {
	if len(c.Secret) < 32 {
		return errors.New("webhook: Secret (the server secret, at least 32 bytes) is required")
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.PerEndpoint == 0 {
		c.PerEndpoint = max(1, c.Concurrency/4)
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Lease == 0 {
		c.Lease = 2*c.Timeout + 10*time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = time.Hour
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = 72 * time.Hour
	}
	if c.Retention == 0 {
		c.Retention = 720 * time.Hour
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = 64 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Concurrency < 1 || c.PerEndpoint < 1 || c.PerEndpoint > c.Concurrency:
		return fmt.Errorf("webhook: concurrency %d, per endpoint %d: want 1 ≤ per endpoint ≤ concurrency", c.Concurrency, c.PerEndpoint)
	case c.Timeout < 0 || c.PollInterval < 0 || c.BackoffBase < 0 || c.BackoffMax < c.BackoffBase || c.GiveUpAfter < 0 || c.Retention < 0 || c.MaxResponseBytes < 0:
		return errors.New("webhook: negative duration or size, or BackoffMax below BackoffBase")
	case c.Lease <= c.Timeout:
		return fmt.Errorf("webhook: lease %s must be longer than the timeout %s", c.Lease, c.Timeout)
	}
	return nil
}

// Result is what became of one attempt.
type Result string

// The results of an attempt.
const (
	Delivered Result = "delivered" // the endpoint answered 2xx
	Retry     Result = "retry"     // it did not; the delivery is tried again later
	Failed    Result = "failed"    // it did not, and the retry window is over: given up
)

// Observer hears every attempt a deliverer makes, its [Result] as a
// string: fast and safe for concurrent use (a metrics adapter, which need
// not import this package).
type Observer interface {
	WebhookAttempt(result string, took time.Duration)
}

// Deliverer sends the store's due deliveries until its Run ends. Several
// deliverers (processes) may share one store: each delivery is claimed
// under a lease by one of them at a time. It is safe for concurrent use.
type Deliverer struct {
	cfg    Config
	store  *engine.Store
	client *http.Client
	log    *slog.Logger

	freed    chan struct{} // a sender finished: there may be more to claim
	wg       sync.WaitGroup
	mu       sync.Mutex
	inflight int
	busy     map[string]int // in flight per endpoint
}

// New builds a deliverer over the store.
func New(cfg Config, store *engine.Store) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("webhook: a store is required")
	}
	d := &Deliverer{cfg: cfg, store: store, log: cfg.Logger.With("worker", "webhook"),
		freed: make(chan struct{}, 1), busy: map[string]int{}}
	d.client = newClient(cfg)
	return d, nil
}

// newClient is the HTTP client of deliveries: no proxy (the guard must see
// the endpoint's address, not a proxy's), every connection to a Permitted
// address, redirects not followed (a 3xx is an
// answer like any other non-2xx), no transparent decompression, bounded
// headers and time.
func newClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second, Control: dialGuard(cfg.AllowPrivate)}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           cfg.Concurrency,
		MaxIdleConnsPerHost:    cfg.PerEndpoint,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Run delivers until ctx ends, then waits for the deliveries in flight
// (each bounded by Timeout) to finish and be recorded, and returns.
func (d *Deliverer) Run(ctx context.Context) error {
	d.log.Info("webhook deliverer running", "concurrency", d.cfg.Concurrency, "per_endpoint", d.cfg.PerEndpoint,
		"timeout", d.cfg.Timeout, "allow_private", d.cfg.AllowPrivate)
	defer d.wg.Wait()
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	d.prune(ctx)
	polled := true
	for {
		if polled { // rows queued behind a pending one of their order wait until it ends
			now := d.cfg.Now()
			if _, err := d.store.ParkWebhookDeliveries(ctx, now, now.Add(d.cfg.BackoffMax)); err != nil && ctx.Err() == nil {
				d.log.Warn("webhook: park", "err", err)
			}
		}
		d.fill(ctx)
		polled = false
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			polled = true
		case <-d.freed:
		case <-prune.C:
			d.prune(ctx)
		}
	}
}

// fill claims as many due deliveries as there are free senders and starts
// them, until none is due or no sender is free.
func (d *Deliverer) fill(ctx context.Context) {
	for ctx.Err() == nil {
		d.mu.Lock()
		free := d.cfg.Concurrency - d.inflight
		busy := make(map[string]int, len(d.busy))
		for k, v := range d.busy {
			busy[k] = v
		}
		d.mu.Unlock()
		if free <= 0 {
			return
		}
		now := d.cfg.Now()
		jobs, err := d.store.ClaimWebhookDeliveries(ctx, engine.WebhookClaim{Lease: engine.NewID("lease"), Now: now,
			Until: now.Add(d.cfg.Lease), Limit: free, PerEndpoint: d.cfg.PerEndpoint, Busy: busy})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("webhook: claim", "err", err)
			}
			return
		}
		d.mu.Lock()
		for _, j := range jobs {
			d.inflight++
			d.busy[j.EndpointID]++
		}
		d.mu.Unlock()
		for _, j := range jobs {
			d.wg.Add(1)
			go d.deliver(context.WithoutCancel(ctx), j)
		}
		if len(jobs) < free {
			return
		}
	}
}

// deliver makes one attempt and records its outcome. It runs to its end
// even when Run's ctx ends (bounded by Timeout), so a stopping process
// leaves no attempt unrecorded.
func (d *Deliverer) deliver(ctx context.Context, j engine.WebhookJob) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		d.inflight--
		if d.busy[j.EndpointID]--; d.busy[j.EndpointID] <= 0 {
			delete(d.busy, j.EndpointID)
		}
		d.mu.Unlock()
		select {
		case d.freed <- struct{}{}:
		default:
		}
	}()
	start := d.cfg.Now()
	status, err := d.post(ctx, j, start)
	now := d.cfg.Now()
	out := engine.WebhookOutcome{ID: j.ID, Lease: j.Lease, At: now, Status: status, State: engine.WebhookDelivered}
	result := Delivered
	log := d.log.With("endpoint", j.EndpointID, "event_id", j.EventID, "order_id", j.OrderID, "attempt", j.Attempts+1)
	if err != nil {
		out.Error = err.Error()
		next := now.Add(backoff(j.Attempts+1, d.cfg.BackoffBase, d.cfg.BackoffMax))
		if next.After(j.QueuedAt.Add(d.cfg.GiveUpAfter)) {
			out.State, result = engine.WebhookFailed, Failed
			log.Error("webhook: delivery given up: an admin may resend it", "status", status, "err", err, "queued_at", j.QueuedAt)
		} else {
			out.State, out.NextAt, result = engine.WebhookPending, next, Retry
			log.Warn("webhook: delivery failed, will retry", "status", status, "err", err, "next_at", next)
		}
	} else {
		log.Debug("webhook: delivered", "status", status)
	}
	if d.cfg.Observer != nil {
		d.cfg.Observer.WebhookAttempt(string(result), now.Sub(start))
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, ferr := d.store.FinishWebhookDelivery(fctx, out)
	switch {
	case ferr != nil: // the lease ends and another claim tries again: at least once
		log.Warn("webhook: outcome not recorded", "err", ferr)
	case !ok:
		log.Info("webhook: the lease ended before the outcome was recorded (endpoint removed, or the attempt outlasted the lease)")
	}
}

// post sends the job's event, signed, and reports the endpoint's status
// and, unless it is 2xx, why the attempt failed.
func (d *Deliverer) post(ctx context.Context, j engine.WebhookJob, at time.Time) (int, error) {
	secret, err := engine.OpenWebhookSecret(d.cfg.Secret, j.EndpointID, j.Sealed)
	if err != nil {
		return 0, fmt.Errorf("%w (is this the server secret the endpoint was made under?)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return 0, fmt.Errorf("request: %w", unwrapURL(err))
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return 0, fmt.Errorf("%w: scheme %q", ErrBadURL, req.URL.Scheme)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wxflow-webhook/1")
	req.Header.Set(EventIDHeader, j.EventID)
	req.Header.Set(EventTypeHeader, string(j.EventType))
	req.Header.Set(SignatureHeader, Sign(secret, at, j.Payload))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, unwrapURL(err)
	}
	defer resp.Body.Close()
	// Read a bounded part of the answer: enough to reuse the connection
	// after a short one and to tell an admin what a refusal said.
	var head bytes.Buffer
	_, _ = io.Copy(&head, io.LimitReader(resp.Body, d.cfg.MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.StatusCode, nil
	}
	msg := fmt.Sprintf("status %d", resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are not followed)"
	}
	if s := snippet(head.Bytes(), 200); s != "" {
		msg += ": " + s
	}
	return resp.StatusCode, errors.New(msg)
}

// unwrapURL drops the URL from a client error: an endpoint's URL may hold
// a token in its query, and errors go to logs.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.DeadlineExceeded) || ue.Timeout() {
			return fmt.Errorf("no answer within the timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

// snippet is the start of an answer's body as one line of printable text.
func snippet(b []byte, n int) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(b[:min(len(b), 4*n)]), "?"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// backoff is the wait before retry n (n ≥ 1): base×2^(n−1), capped at max,
// drawn uniformly between half and all of it, so that deliveries that
// failed together do not retry together.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// prune deletes delivered and cancelled deliveries past the retention.
func (d *Deliverer) prune(ctx context.Context) {
	before := d.cfg.Now().Add(-d.cfg.Retention)
	for ctx.Err() == nil {
		n, err := d.store.PruneWebhookDeliveries(ctx, before, 1000)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("webhook: prune", "err", err)
			}
			return
		}
		if n < 1000 {
			return
		}
	}
}
