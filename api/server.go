// Package api is wxflow's HTTP face: the shop API (/v1/…), WeChat's
// notification endpoints (/wechat/notify/<merchant>/…) and the health checks.
// It reads orders from the store and asks for changes only by publishing
// commands: the engine alone writes. Every /v1 request is authenticated by
// a shop's API key (auth.go), sees only that shop's orders, and is read
// strictly (input.go); every error has one shape (problems.go).
package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// TicketSource hands out an app's shared jsapi_ticket.
type TicketSource interface {
	JSAPITicket(ctx context.Context) (string, error)
}

// Merchant is one merchant the API serves: its notifications arrive on
// /wechat/notify/<Name>/… and are verified with its own clients (for a
// sub-merchant, its provider's keys), and its apps' pages are signed with
// their own tickets.
type Merchant struct {
	*wechat.Merchant
	V2 *v2.Client
	V3 *v3.Client
	// Tickets gives the jsapi_ticket source of one of its apps, by appid;
	// GET /v1/jssdk/config answers 503 when nil.
	Tickets func(appid string) TicketSource
}

// Config configures a [Server].
type Config struct {
	// Merchants are the merchants the API serves (at least one). The first
	// is the one an order is for when a shop acting for it names none.
	Merchants []Merchant
	// Broken are the configured merchants whose configuration failed, with
	// why: their orders are refused with merchant_unavailable and their
	// notifications refused, while the others go on.
	Broken map[string]error
	Store  *engine.Store
	NC     *nats.Conn
	JS     jetstream.JetStream
	// Responses, when set, counts every answer by route and status.
	Responses ResponseCounter
	// MetricsHandler, when set, is served at GET /metrics.
	MetricsHandler http.Handler
	// Secret is the server secret (at least 32 bytes): shop keys are checked
	// against their HMAC under it, and ids derived from a shop's
	// Idempotency-Key are keyed by it. Every API process of a deployment
	// must have the same one.
	Secret []byte
	// KeyCacheTTL is how long a verified shop key is remembered (30 s; a
	// negative value remembers none): a revoked key is refused within it.
	KeyCacheTTL time.Duration
	// AppDomains are the hosts a page URL of /v1/jssdk/config and a
	// redirect_uri of /v1/oauth/authorize may be on; none when empty.
	AppDomains []string
	// AdminToken guards /admin/ and /admin/api/; without one they are off. It
	// is one token (the admin "admin") or comma-separated NAME=TOKEN pairs,
	// each token at least MinAdminTokenBytes long: New refuses shorter ones.
	AdminToken string
	// WebhookAllowPrivate lets admins add webhook endpoints on loopback,
	// private and link-local addresses (webhook.CheckURL); the deliverer
	// must allow them too.
	WebhookAllowPrivate bool
	// AdminSessionTTL is how long a sign-in to the admin page lasts, at most
	// and by default engine.AdminSessionMaxAge (the session bucket's TTL).
	AdminSessionTTL time.Duration
	// SecureCookies marks the admin cookie Secure: set when the public URL is https.
	SecureCookies bool
	// AdminOrigins are the origins (the public URL's, the internal one's)
	// whose forms the admin page accepts besides the request's own.
	AdminOrigins []string
	// Deadlines say when an order is stuck; engine.DefaultDeadlines when nil.
	Deadlines map[engine.State]time.Duration
	// OAuthBaseURL stands for https://open.weixin.qq.com.
	OAuthBaseURL string
	// ReplyTimeout is how long a request waits for the engine's answer (5 s).
	ReplyTimeout time.Duration
	// MaxBodyBytes bounds request bodies (64 KiB).
	MaxBodyBytes int64
	// Edges bound each listener's timeouts, header size, connections and
	// rate ([DefaultEdges] for zero fields). InternalRate is the internal
	// listener's rate per caller (a shop's key), 500 requests per second
	// when zero, bursts of two seconds' worth: one shop backend may rightly
	// ask more than one IP on the internet.
	Edges        Edges
	InternalRate rate.Limit
	Logger       *slog.Logger
	Now          func() time.Time
}

// ResponseCounter counts the API's answers; internal/metrics implements it.
type ResponseCounter interface {
	Response(route string, status int)
}

// Refusals lists every kind of refused notification, for metrics that
// report each one, zero or not.
func Refusals() []Refusal {
	out := make([]Refusal, refusalKinds)
	for i := range out {
		out[i] = Refusal(i)
	}
	return out
}

// Counters are the API's running totals, for metrics and tests.
type Counters struct {
	NotificationsAccepted atomic.Int64
	NotificationsRejected atomic.Int64
	// NotificationsRefused counts the rejected ones by Refusal.
	NotificationsRefused [refusalKinds]atomic.Int64
}

// Server serves the API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler // the internal listener's: shops, admins, Prometheus
	public  http.Handler // the public listener's: WeChat's notifications, a health check
	tmpl    *template.Template
	admin   *adminAuth // nil when the admin side is off
	// shopRates is each shop's rate on the internal listener; badKeys the
	// failed authentications an address may make.
	shopRates *keyedLimiter
	badKeys   *loginLimiter
	// merchants are cfg.Merchants by name, each with the reader of its
	// notifications.
	merchants map[string]*served
	// refusalLog bounds the warnings about refused notifications;
	// refusalsUnlogged counts those it held back (notify.go).
	refusalLog       *rate.Limiter
	refusalsUnlogged atomic.Int64
	// keys remembers verified shop keys for cfg.KeyCacheTTL.
	keys     *keyCache
	Counters Counters

	// internalRoutes and publicRoutes are each listener's endpoints, as
	// registered: openapi.json describes them (openapi_test.go).
	internalRoutes, publicRoutes *routeTable
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if len(cfg.Merchants) == 0 || cfg.Store == nil || cfg.NC == nil || cfg.JS == nil {
		return nil, errors.New("api: Merchants, Store, NC and JS are required")
	}
	merchants := map[string]*served{}
	for i, m := range cfg.Merchants {
		if m.Merchant == nil || m.V2 == nil || m.V3 == nil {
			return nil, fmt.Errorf("api: merchant %d: Merchant, V2 and V3 are required", i)
		}
		if _, dup := merchants[m.Name]; dup {
			return nil, fmt.Errorf("api: merchant %s twice", m.Name)
		}
		merchants[m.Name] = &served{Merchant: m, notices: pay.Notices{V2: m.V2, V3: m.V3}}
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("api: Secret (the server secret, at least 32 bytes) is required")
	}
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = defaultKeyCacheTTL
	}
	if cfg.ReplyTimeout == 0 {
		cfg.ReplyTimeout = 5 * time.Second
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), merchants: merchants,
		keys: newKeyCache(cfg.KeyCacheTTL, cfg.Now), refusalLog: rate.NewLimiter(rate.Every(refusalLogEvery), refusalLogBurst)}
	internal, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.internalRoutes, s.publicRoutes = internal, s.publicTable()
	cfg.Edges = cfg.Edges.withDefaults()
	s.cfg.Edges = cfg.Edges
	if cfg.InternalRate == 0 {
		cfg.InternalRate = 500
	}
	// The internal listener: every shop its own rate, once its key is
	// checked (shopOnly); keys that are no key are limited per address
	// (badKeys), so made-up keys get no rate of their own, and one shop's
	// flood holds back no other shop on the same host.
	s.cfg.InternalRate = cfg.InternalRate
	s.shopRates = newKeyedLimiter(cfg.InternalRate, int(min(2*float64(cfg.InternalRate), 1e6)), cfg.Now)
	s.badKeys = newLoginLimiter(badKeyEvery, badKeyBurst)
	s.handler = s.middleware(jsonFallback(internal.mux()))
	public := newKeyedLimiter(cfg.Edges.Rate, cfg.Edges.Burst, cfg.Now)
	s.public = s.middleware(rateLimited(public, addressKey, s.publicRoutes.mux()))
	return s, nil
}

// publicTable is all the public listener serves: WeChat must reach the
// notification endpoints from the internet, and a load balancer the health
// check; nothing else is there to be found.
func (s *Server) publicTable() *routeTable {
	m := &routeTable{}
	s.notifyRoutes(m)
	m.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "nothing here: this listener serves WeChat's notifications only")
	})
	return m
}

// addressKey names a client by its address (an IPv6 /64 as one), for rates.
func addressKey(r *http.Request) string { return clientKey(clientIP(r)) }

// notifyRoutes are WeChat's notification endpoints and the health check,
// served on both listeners.
func (s *Server) notifyRoutes(m *routeTable) {
	m.HandleFunc("POST /wechat/notify/{merchant}/v2/pay", s.notifyV2Pay)
	m.HandleFunc("POST /wechat/notify/{merchant}/v2/refund", s.notifyV2Refund)
	m.HandleFunc("POST /wechat/notify/{merchant}/v3/pay", s.notifyV3Pay)
	m.HandleFunc("POST /wechat/notify/{merchant}/v3/refund", s.notifyV3Refund)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// routes lists every endpoint of the internal listener.
func (s *Server) routes() (*routeTable, error) {
	m := &routeTable{}
	m.HandleFunc("POST /v1/orders", s.shopOnly(s.createOrder))
	m.HandleFunc("GET /v1/orders/{id}", s.shopOnly(s.getOrder))
	m.HandleFunc("GET /v1/orders/{id}/pay-params", s.shopOnly(s.payParams))
	m.HandleFunc("POST /v1/orders/{id}/refunds", s.shopOnly(s.refund))
	m.HandleFunc("GET /v1/orders/{id}/refunds", s.shopOnly(s.listRefunds))
	m.HandleFunc("GET /v1/orders/{id}/refunds/{out_refund_no}", s.shopOnly(s.getRefund))
	m.HandleFunc("POST /v1/orders/{id}/close", s.shopOnly(s.closeOrder))
	m.HandleFunc("GET /v1/jssdk/config", s.shopOnly(s.jssdkConfig))
	m.HandleFunc("GET /v1/oauth/authorize", s.shopOnly(s.oauthAuthorize))
	s.notifyRoutes(m)
	m.HandleFunc("GET /readyz", s.ready)
	m.HandleFunc("GET /openapi.json", serveOpenAPI)
	if s.cfg.MetricsHandler != nil {
		m.Handle("GET /metrics", s.cfg.MetricsHandler)
	}
	if err := s.adminRoutes(m); err != nil {
		return nil, err
	}
	s.adminWebhookRoutes(m)
	return m, nil
}

// Deadlines says when an order is stuck, as the server was configured
// (nil: engine's defaults).
func (s *Server) Deadlines() map[engine.State]time.Duration { return s.cfg.Deadlines }

// Handler returns the internal listener's handler: the shop API, the admin
// page and API, /metrics, and the notification endpoints too.
func (s *Server) Handler() http.Handler { return s.handler }

// PublicHandler returns the public listener's handler: WeChat's
// notification endpoints and /healthz, nothing else.
func (s *Server) PublicHandler() http.Handler { return s.public }

// Listeners are where a [Server] serves. Public faces the internet (WeChat's
// notifications); Internal faces the shops' backends, admins and
// Prometheus. Either may be nil, not both.
type Listeners struct {
	Public, Internal net.Listener
}

// Run serves on the listeners until ctx ends, then shuts down within 10 s.
// Each listener holds its Edges: timeouts, header size, connections.
func (s *Server) Run(ctx context.Context, l Listeners) error {
	if l.Public == nil && l.Internal == nil {
		return errNoListener
	}
	e := s.cfg.Edges
	serve := func(ln net.Listener, h http.Handler) (*http.Server, <-chan error) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: e.ReadHeaderTimeout, ReadTimeout: e.ReadTimeout,
			WriteTimeout: e.WriteTimeout, IdleTimeout: e.IdleTimeout, MaxHeaderBytes: e.MaxHeaderBytes,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(newLimitListener(ln, e)) }()
		return srv, errc
	}
	var servers []*http.Server
	var errcs []<-chan error
	for _, p := range []struct {
		ln net.Listener
		h  http.Handler
	}{{l.Public, s.public}, {l.Internal, s.handler}} {
		if p.ln != nil {
			srv, errc := serve(p.ln, p.h)
			servers, errcs = append(servers, srv), append(errcs, errc)
		}
	}
	done := make(chan error, len(errcs))
	for _, errc := range errcs {
		go func() { done <- <-errc }()
	}
	var serveErr error
	select {
	case serveErr = <-done: // a listener failed: stop the other too
	case <-ctx.Done():
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := []error{serveErr}
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown(sctx))
	}
	return errors.Join(errs...)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.Warn("readyz: store", "err", err)
		writeError(w, http.StatusServiceUnavailable, "db_unavailable", "the database does not answer")
		return
	}
	if !s.cfg.NC.IsConnected() {
		writeError(w, http.StatusServiceUnavailable, "nats_unavailable", "not connected to NATS")
		return
	}
	if _, err := s.cfg.JS.Stream(ctx, engine.CommandStream); err != nil {
		s.log.Warn("readyz: streams", "err", err)
		writeError(w, http.StatusServiceUnavailable, "streams_missing", "wxflow's streams are missing")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
