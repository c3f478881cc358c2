package demoshop

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultJSSDK is where shops load WeChat's JS-SDK from: WeChat's CDN.
const DefaultJSSDK = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"

// Config configures a [Shop].
type Config struct {
	// APIURL is wxflow's internal listener, where the shop API is.
	APIURL string
	// ShopKey is the shop's API key (wxs_…).
	ShopKey string
	// JSSDK is where the page loads WeChat's JS-SDK: an http(s) URL (the
	// default, DefaultJSSDK), or a file the shop serves itself at
	// /demo/static/jweixin.js, such as npm's weixin-js-sdk/index.js. npm's
	// build is a CommonJS module that sets no window.wx, so a file is
	// wrapped in a few lines that give it a module object and set window.wx
	// from its export (the CDN's file sets window.wx itself, wrapped or not).
	JSSDK string
	// SimURL is the WeChat simulator (https://HOST:PORT). The order page then
	// loads its stand-in WeixinJSBridge (SimURL/sim/jsbridge.js) before the
	// JS-SDK, and the mini-program panel calls its wx.login and its payer.
	// Empty in front of real WeChat, whose client injects the bridge itself.
	SimURL string
	// HTTP reaches the API; a client with a 10 s timeout when nil. The shop
	// sets it not to follow redirects.
	HTTP *http.Client
	// Logger receives a line for each failed call to wxflow; none when nil.
	Logger *slog.Logger
	// MaxOrders bounds the orders the shop remembers the buyer of (10,000
	// when 0; the oldest are forgotten first). A shop keeps that in its
	// database; this one keeps it in memory, so a restart forgets it.
	MaxOrders int
}

//go:embed templates/*.html static/*
var assets embed.FS

// Shop is the demo shop: its pages and its backend. It is an http.Handler
// for the paths under /demo/; safe for concurrent use.
type Shop struct {
	cfg    Config
	api    *wxflowAPI
	log    *slog.Logger
	tmpl   *template.Template
	static http.Handler
	// jssdkSrc is the script src of the JS-SDK; jssdkFile its wrapped bytes
	// when the shop serves it.
	jssdkSrc  string
	jssdkFile []byte
	csp       string
	owners    *owners
	mux       *http.ServeMux
}

// New checks cfg, reads the JS-SDK when it is a file, and builds the routes.
func New(cfg Config) (*Shop, error) {
	if cfg.APIURL == "" || cfg.ShopKey == "" {
		return nil, errors.New("demoshop: APIURL and ShopKey are required")
	}
	if cfg.JSSDK == "" {
		cfg.JSSDK = DefaultJSSDK
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	// The shop hands WeChat's OAuth redirect to the payer's browser; it does
	// not follow it itself.
	client := *cfg.HTTP
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxOrders <= 0 {
		cfg.MaxOrders = 10000
	}
	s := &Shop{cfg: cfg, api: &wxflowAPI{base: strings.TrimRight(cfg.APIURL, "/"), key: cfg.ShopKey, http: &client},
		log: cfg.Logger.With("component", "demoshop"), owners: newOwners(cfg.MaxOrders)}
	scriptOrigins := []string{"'self'"}
	if u, err := url.Parse(cfg.JSSDK); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		s.jssdkSrc = cfg.JSSDK
		scriptOrigins = append(scriptOrigins, u.Scheme+"://"+u.Host)
	} else {
		raw, err := os.ReadFile(cfg.JSSDK)
		if err != nil {
			return nil, fmt.Errorf("demoshop: the JS-SDK is neither an http(s) URL nor a readable file: %w", err)
		}
		s.jssdkSrc, s.jssdkFile = "/demo/static/jweixin.js", wrapCommonJS(filepath.Base(cfg.JSSDK), raw)
	}
	connect := []string{"'self'"}
	if cfg.SimURL != "" {
		u, err := url.Parse(cfg.SimURL)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("demoshop: SimURL %q is not an http(s) URL", cfg.SimURL)
		}
		s.cfg.SimURL = u.Scheme + "://" + u.Host
		scriptOrigins = append(scriptOrigins, s.cfg.SimURL)
		connect = append(connect, s.cfg.SimURL)
	}
	// Scripts from the shop, the JS-SDK's host and the simulator; no inline
	// script; images from the shop only, so the JS-SDK's report beacon to
	// open.weixin.qq.com (the page's URL and appId) stays home.
	s.csp = "default-src 'none'; script-src " + strings.Join(scriptOrigins, " ") + "; connect-src " + strings.Join(connect, " ") +
		"; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	tmpl, err := template.New("").Funcs(template.FuncMap{"yuan": yuan}).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	s.tmpl = tmpl
	static, _ := fs.Sub(assets, "static")
	s.static = http.StripPrefix("/demo/static/", http.FileServerFS(static))
	s.routes()
	return s, nil
}

// wrapCommonJS wraps a JS-SDK file so that a script tag can load npm's
// CommonJS build: it gets a module object, and its export becomes window.wx.
// The CDN's build ignores the module object and sets window.wx itself.
func wrapCommonJS(name string, src []byte) []byte {
	var b strings.Builder
	b.WriteString("/* WeChat's JS-SDK (" + strings.ReplaceAll(name, "*/", "") + "), wrapped by the demo shop: npm's build is a CommonJS module\n" +
		"   that sets no window.wx, so it is given a module object and its export becomes window.wx. */\n" +
		"(function () {\nvar module = { exports: {} }, exports = module.exports;\n")
	b.Write(src)
	b.WriteString("\n;if (!window.wx && module.exports && typeof module.exports.config === 'function') { window.wx = module.exports; }\n}).call(window);\n")
	return []byte(b.String())
}

func (s *Shop) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /demo/{$}", s.index)
	m.HandleFunc("GET /demo/buy", s.buy)
	m.HandleFunc("GET /demo/back", s.back)
	m.HandleFunc("GET /demo/orders/{id}", s.orderPage)
	m.Handle("GET /demo/static/", s.static)
	if s.jssdkFile != nil {
		m.HandleFunc("GET /demo/static/jweixin.js", s.serveJSSDK)
	}
	m.HandleFunc("GET /demo/api/jssdk-config", s.jssdkConfig)
	m.HandleFunc("GET /demo/api/orders/{id}", s.orderStatus)
	m.HandleFunc("GET /demo/api/orders/{id}/pay-params", s.payParams)
	m.HandleFunc("POST /demo/api/orders/{id}/refund", s.sameOrigin(s.refund))
	m.HandleFunc("POST /demo/api/mp/orders", s.sameOrigin(s.miniProgramOrder))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || r.URL.Path == "/demo" {
			http.Redirect(w, r, "/demo/", http.StatusFound)
			return
		}
		http.NotFound(w, r)
	})
	s.mux = m
}

// ServeHTTP serves the shop, with its security headers on every answer.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

func (s *Shop) serveJSSDK(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(s.jssdkFile)
}

// Serve serves the shop on ln until ctx ends, then shuts down within 5 s.
func (s *Shop) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return err
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms
	return hex.EncodeToString(b)
}

// yuan writes fen as yuan: 1990 → "¥19.90".
func yuan(fen int64) string { return fmt.Sprintf("¥%d.%02d", fen/100, fen%100) }
