// Package sim is a local WeChat: it serves the platform (api.weixin.qq.com),
// OAuth (open.weixin.qq.com) and pay (api.mch.weixin.qq.com) paths on one
// HTTPS base URL, keeps its state in memory, and signs, verifies, encrypts
// and retries as WeChat does, so code that passes against it passes against
// WeChat. It plays the payer too (POST /sim/pay), WeChat's in-app browser
// for pages in a browser (a stand-in WeixinJSBridge, jsbridge.go), and
// injects faults.
//
// It knows nothing of wxflow's orders: it is WeChat.
package sim

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// Config configures a [Sim].
type Config struct {
	// KeysDir holds the key material (EnsureKeys creates it on first start).
	KeysDir string
	// Merchants, when set, are the merchants WeChat serves, each in its
	// folder KeysDir/<name>/ (EnsureMerchants); the first is Keys.Merchant.
	// Nil: one direct merchant "default" with one app, at the top of KeysDir.
	Merchants []MerchantSpec
	// Strict checks as WeChat does that openids came from this simulator's
	// OAuth / jscode2session and that notify URLs are https. Off by default,
	// so local shops may use any openid and http:// notify URLs on loopback.
	Strict bool
	// TimeScale multiplies every WeChat delay (token lifetime, notification
	// retry gaps, refund settlement): 1 is real time, 0.001 makes 15 s 15 ms.
	TimeScale float64
	// TokenTTL is the access_token / jsapi_ticket lifetime before scaling (7200 s).
	TokenTTL time.Duration
	// TokenQuota is the daily number of cgi-bin/token calls (2000); past it, 45009.
	TokenQuota int
	// RefundDelay is how long a refund stays PROCESSING before scaling (5 s).
	RefundDelay time.Duration
	// Faults are injected from the start; POST /sim/faults changes them.
	Faults Faults
	// Outage takes a site's pay calls down from the start (sites.go); POST
	// /sim/outage changes it. None when zero.
	Outage Outage
	// Logger receives one line per call and delivery; never a secret.
	Logger *slog.Logger
	// NotifyClient delivers notifications; a 5 s-timeout client when nil.
	NotifyClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Retain, when positive, bounds the orders, refunds and notifications the
	// simulator remembers: the oldest settled ones are forgotten past it (and
	// /sim/state no longer shows them). For long benchmarks; 0 keeps all.
	Retain int
	// LedgerDir, when set, keeps the orders and refunds in LedgerFile there
	// across restarts, as WeChat remembers them (ledger.go). Empty: memory only.
	LedgerDir string
	// BillDelay is how long after a day ends (midnight, Beijing time) its
	// bills are ready, before scaling: 10 h, WeChat's 10:00 (bills.go).
	BillDelay time.Duration
	// BillsAtOnce serves any day's bills up to today as soon as asked,
	// today's as it stands so far: for demos and tests that cannot wait
	// until 10:00 tomorrow. WeChat never does.
	BillsAtOnce bool
	// FeeRate is the merchant's fee rate in the bills (60: 0.60%).
	FeeRate bill.Rate
}

// Sim is a running simulated WeChat; it is an http.Handler.
type Sim struct {
	cfg  Config
	keys *Keys
	dir  *directory
	log  *slog.Logger
	mux  *http.ServeMux
	now  func() time.Time

	mu          sync.Mutex
	faults      Faults
	injected    map[string]int // faults injected so far, by kind
	dice        *dice
	orders      map[string]*order // by okey(mchid, out_trade_no)
	byPrepay    map[string]*order
	refunds     map[string]*refund // by okey(mchid, out_refund_no)
	deliveries  []*delivery
	orderLog    []string          // order keys in creation order, with Retain
	refundLog   []string          // refund keys in creation order, with Retain
	codes       map[string]*code  // OAuth and wx.login codes
	openids     map[string]string // issued openid → its appid
	users       map[string]string // issued openid → the simulated user
	tokens      map[string]token  // access tokens
	tickets     map[string]token
	latestToken map[string]string // by appid
	calls       map[string]int    // per API, per day
	callsDay    string
	seq         int
	ledger      *ledger                 // nil without Config.LedgerDir
	billTokens  map[string]billDownload // v3 bill download URLs, by token
	sites       siteState               // the two WeChat Pay sites' outages (sites.go)

	// refundRefusals are the refunds a test told WeChat to refuse
	// (RefuseRefund): out_refund_no → code and message; under mu.
	refundRefusals map[string][2]string

	work   chan func(ctx context.Context)
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// New loads (or creates) the key material and returns a simulator. Call Run
// for notifications and refunds to progress.
func New(cfg Config) (*Sim, error) {
	if cfg.KeysDir == "" {
		return nil, errors.New("sim: KeysDir is required")
	}
	var keys *Keys
	var err error
	if cfg.Merchants == nil {
		keys, err = EnsureKeys(cfg.KeysDir)
	} else {
		keys, err = EnsureMerchants(cfg.KeysDir, cfg.Merchants)
	}
	if err != nil {
		return nil, err
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 7200 * time.Second
	}
	if cfg.TokenQuota == 0 {
		cfg.TokenQuota = 2000
	}
	if cfg.RefundDelay == 0 {
		cfg.RefundDelay = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NotifyClient == nil {
		cfg.NotifyClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sim{
		cfg: cfg, keys: keys, dir: newDirectory(keys), log: cfg.Logger.With("component", "sim"), now: cfg.Now,
		faults: cfg.Faults, dice: newDice(cfg.Faults.Seed),
		orders: map[string]*order{}, byPrepay: map[string]*order{}, refunds: map[string]*refund{},
		codes: map[string]*code{}, openids: map[string]string{}, users: map[string]string{}, tokens: map[string]token{},
		tickets: map[string]token{}, latestToken: map[string]string{},
		calls: map[string]int{}, injected: map[string]int{}, work: make(chan func(context.Context), 1024), closed: make(chan struct{}),
	}
	s.routes()
	if cfg.LedgerDir != "" {
		if err := s.openLedger(cfg.LedgerDir); err != nil {
			return nil, err
		}
	}
	if cfg.Outage.Site != "" {
		if err := s.SetOutage(cfg.Outage); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	return s, nil
}

// Keys returns the simulator's key material (the merchants' and WeChat's).
func (s *Sim) Keys() *Keys { return s.keys }

// scaled applies the time scale to a WeChat delay.
func (s *Sim) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.cfg.TimeScale)
}

func (s *Sim) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /cgi-bin/token", s.handleToken)
	m.HandleFunc("GET /cgi-bin/ticket/getticket", s.handleTicket)
	m.HandleFunc("GET /connect/oauth2/authorize", s.handleAuthorize)
	m.HandleFunc("GET /sns/oauth2/access_token", s.handleOAuthToken)
	m.HandleFunc("GET /sns/oauth2/refresh_token", s.handleOAuthRefresh)
	m.HandleFunc("GET /sns/userinfo", s.handleUserInfo)
	m.HandleFunc("GET /sns/auth", s.handleOAuthCheck)
	m.HandleFunc("GET /sns/jscode2session", s.handleJSCode2Session)

	m.HandleFunc("POST /pay/unifiedorder", s.v2(s.v2UnifiedOrder))
	m.HandleFunc("POST /pay/orderquery", s.v2(s.v2OrderQuery))
	m.HandleFunc("POST /pay/closeorder", s.v2(s.v2CloseOrder))
	m.HandleFunc("POST /secapi/pay/refund", s.v2(s.v2Refund))
	m.HandleFunc("POST /pay/refundquery", s.v2(s.v2RefundQuery))

	m.HandleFunc("POST /v3/pay/transactions/jsapi", s.v3(s.v3Prepay("JSAPI")))
	m.HandleFunc("POST /v3/pay/transactions/native", s.v3(s.v3Prepay("NATIVE")))
	m.HandleFunc("GET /v3/pay/transactions/out-trade-no/{no}", s.v3(s.v3Query))
	m.HandleFunc("GET /v3/pay/transactions/id/{id}", s.v3(s.v3Query))
	m.HandleFunc("POST /v3/pay/partner/transactions/jsapi", s.v3(s.v3PartnerPrepay))
	m.HandleFunc("GET /v3/pay/partner/transactions/out-trade-no/{no}", s.v3(s.v3PartnerQuery))
	m.HandleFunc("GET /v3/pay/partner/transactions/id/{id}", s.v3(s.v3PartnerQuery))
	m.HandleFunc("POST /v3/pay/partner/transactions/out-trade-no/{no}/close", s.v3(s.v3PartnerClose))
	m.HandleFunc("POST /v3/pay/transactions/out-trade-no/{no}/close", s.v3(s.v3Close))
	m.HandleFunc("POST /v3/refund/domestic/refunds", s.v3(s.v3Refund))
	m.HandleFunc("GET /v3/refund/domestic/refunds/{no}", s.v3(s.v3RefundQuery))

	m.HandleFunc("POST /pay/downloadbill", s.v2DownloadBill)
	m.HandleFunc("GET /v3/bill/tradebill", s.v3(s.v3TradeBill))
	m.HandleFunc("GET /v3/bill/fundflowbill", s.v3(s.v3FundFlowBill))
	m.HandleFunc("GET /v3/billdownload/file", s.v3DownloadBill)

	m.HandleFunc("POST /sim/pay", browserCORS(s.handlePay))
	m.HandleFunc("POST /sim/login", browserCORS(s.handleIssueCode))
	m.HandleFunc("POST /sim/oauth/code", s.handleIssueCode)
	m.HandleFunc("GET /sim/faults", s.handleGetFaults)
	m.HandleFunc("POST /sim/faults", s.handleSetFaults)
	m.HandleFunc("GET /sim/state", s.handleState)
	// WeChat's in-app browser for pages in a browser: the stand-in
	// WeixinJSBridge (jsbridge.go), and CORS for what a page calls.
	m.HandleFunc("GET /sim/jsbridge.js", s.handleJSBridgeScript)
	m.HandleFunc("POST /sim/jsbridge/invoke", browserCORS(s.handleJSBridgeInvoke))
	for _, p := range []string{"/sim/jsbridge/invoke", "/sim/pay", "/sim/login"} {
		m.HandleFunc("OPTIONS "+p, s.handlePreflight)
	}
	m.HandleFunc("GET /sim/outage", s.handleGetOutage)
	m.HandleFunc("POST /sim/outage", s.handleSetOutage)
	s.mux = m
}

// ServeHTTP serves every route, after the injected latency and transport faults.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.inOutage(w, r) {
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/sim/") {
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if s.dice.hit(f.TimeoutRate) {
			s.log.Info("fault: timeout", "path", r.URL.Path)
			s.inject("timeout")
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			case <-s.closed:
			}
			return
		}
		if s.dice.hit(f.HTTP5xxRate) {
			s.log.Info("fault: HTTP 502", "path", r.URL.Path)
			s.inject("http_502")
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		if s.dice.hit(f.SlowRate) {
			s.log.Info("fault: slow answer", "path", r.URL.Path)
			s.inject("slow_answer")
			select {
			case <-time.After(cmp.Or(f.SlowDelay, 2*time.Second)):
			case <-r.Context().Done():
				return
			}
		}
		if s.dice.hit(f.LostAnswerRate) {
			s.log.Info("fault: answer lost after applying", "path", r.URL.Path)
			s.inject("lost_answer")
			s.mux.ServeHTTP(&discardAnswer{header: http.Header{}}, r)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// discardAnswer is a ResponseWriter that drops what it is given: the answer
// of a call applied whose answer the network then loses.
type discardAnswer struct{ header http.Header }

func (d *discardAnswer) Header() http.Header         { return d.header }
func (d *discardAnswer) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardAnswer) WriteHeader(int)             {}

// systemError reports whether to answer this pay call with SYSTEMERROR.
func (s *Sim) systemError() bool {
	s.mu.Lock()
	p := s.faults.SystemErrorRate
	s.mu.Unlock()
	if !s.dice.hit(p) {
		return false
	}
	s.inject("system_error")
	return true
}

// inject counts an injected fault (the caller does not hold s.mu).
func (s *Sim) inject(kind string) {
	s.mu.Lock()
	s.injected[kind]++
	s.mu.Unlock()
}

// ServerTLSConfig serves HTTPS with a certificate from the simulator's CA
// and asks for client certificates (the merchant's, for /secapi/).
func (s *Sim) ServerTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.keys.CA)
	return &tls.Config{
		Certificates: []tls.Certificate{s.keys.Server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// RootCAs is what a client must trust to reach the simulator.
func (s *Sim) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.keys.CA)
	return pool
}

// Serve serves HTTPS on ln until ctx ends, as the primary site (ServeSite).
func (s *Sim) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeSite(ctx, ln, SitePrimary)
}

// Run carries out the background work (notification deliveries, refund
// settlements) until ctx ends, then waits for it.
func (s *Sim) Run(ctx context.Context) error {
	defer s.Close()
	s.wg.Go(func() { s.resumeRefunds(ctx) })
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case job := <-s.work:
			s.wg.Go(func() { job(ctx) })
		}
	}
}

// Close stops pending holds (timeouts); it is safe to call twice.
func (s *Sim) Close() { s.once.Do(func() { close(s.closed); s.closeLedger() }) }

// later queues background work after a scaled delay.
func (s *Sim) later(d time.Duration, job func(ctx context.Context)) {
	s.work <- func(ctx context.Context) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.scaled(d)):
		}
		job(ctx)
	}
}

// nextID returns a process-unique number for WeChat's ids.
func (s *Sim) nextID() int {
	s.seq++
	return s.seq
}

// countCall counts a call against WeChat's daily quota of that API.
func (s *Sim) countCall(api string, quota int) bool {
	day := s.now().Format("2006-01-02")
	if day != s.callsDay {
		s.calls, s.callsDay = map[string]int{}, day
	}
	s.calls[api]++
	return quota <= 0 || s.calls[api] <= quota
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func readBody(r *http.Request) ([]byte, error) { return io.ReadAll(io.LimitReader(r.Body, 1<<20)) }

// handleGetFaults shows the faults in force.
func (s *Sim) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.faults)
}

// handleSetFaults replaces the faults in force.
func (s *Sim) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	s.faults = f
	if f.Seed != 0 {
		s.dice = newDice(f.Seed)
	}
	s.mu.Unlock()
	s.log.Info("faults set", "faults", f)
	writeJSON(w, http.StatusOK, f)
}

// State is the simulator's memory as GET /sim/state shows it; no secret in it.
type State struct {
	Orders        []order    `json:"orders"`
	Refunds       []refund   `json:"refunds"`
	Notifications []delivery `json:"notifications"`
	// FaultsInjected counts the faults injected so far, by kind: system_error,
	// http_502, timeout, slow_answer, lost_answer, notify_dropped,
	// notify_reordered, notify_duplicated, bill_corrupted; outage_refuse, outage_502 and
	// outage_hang count the pay calls a site outage failed (sites.go).
	FaultsInjected map[string]int `json:"faults_injected"`
}

// Snapshot returns a copy of the simulator's state.
func (s *Sim) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st State
	for _, o := range s.orders {
		st.Orders = append(st.Orders, *o)
	}
	for _, r := range s.refunds {
		st.Refunds = append(st.Refunds, *r)
	}
	for _, d := range s.deliveries {
		st.Notifications = append(st.Notifications, *d)
	}
	st.FaultsInjected = maps.Clone(s.injected)
	return st
}

func (s *Sim) handleState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Snapshot())
}
