package main

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/wxflow/wxflow/engine"
)

// settings is everything a wxflow process needs to find the rest of its
// deployment. Each field has a flag and an environment variable; the flag
// wins. Defaults describe the local layout of `wxflow dev` and the Procfile.
type settings struct {
	DataDir       string        // WXFLOW_DATA: the data folder (SQLite, embedded NATS, simulator keys)
	DBURL         string        // WXFLOW_DB_URL: "sqlite:PATH" or "postgres://…"; default sqlite in DataDir
	NATSURL       string        // WXFLOW_NATS_URL: an external NATS (comma-separated for a cluster); default the embedded one
	Replicas      int           // WXFLOW_NATS_REPLICAS: replicas of every stream and bucket (3 on a 3-node cluster)
	HTTPAddr      string        // WXFLOW_HTTP_ADDR: where the API listens
	PublicURL     string        // WXFLOW_PUBLIC_URL: how WeChat reaches the API (notify URLs)
	MerchantName  string        // WXFLOW_MERCHANT: wxflow's name for the merchant
	MerchantDir   string        // WXFLOW_MERCHANT_DIR: merchant.json and key files
	WechatURL     string        // WXFLOW_WECHAT_URL: one base URL for every WeChat host (the simulator)
	WechatCA      string        // WXFLOW_WECHAT_CA: extra root CA (PEM) to trust, e.g. the simulator's
	WechatTimeout time.Duration // WXFLOW_WECHAT_TIMEOUT: how long a call to WeChat may take before it is retried
	LogFormat     string        // WXFLOW_LOG: "text" or "json"
	LogLevel      string        // WXFLOW_LOG_LEVEL: debug, info, warn, error
	AdminToken    string        // WXFLOW_ADMIN_TOKEN: the admin page's and API's bearer token
	MetricsAddr   string        // WXFLOW_METRICS_ADDR: where engine and worker processes serve /metrics
	StuckAfter    string        // WXFLOW_STUCK_AFTER: per-state deadlines, e.g. "created=1m,refunding=30m"
	// EventRetention (WXFLOW_EVENT_RETENTION) is how long the event stream
	// keeps events. The database keeps the history for good; the stream's
	// copy costs the NATS server memory for every order's subjects.
	EventRetention time.Duration
	// WorkerLanes (WXFLOW_WORKER_LANES) is how many events each worker of a
	// process handles at once: calls to WeChat wait on the network.
	WorkerLanes int
}

// WeChat's real hosts, used when WXFLOW_WECHAT_URL is not set.
const (
	wechatMPHost    = "https://api.weixin.qq.com"
	wechatPayHost   = "https://api.mch.weixin.qq.com"
	wechatOAuthHost = "https://open.weixin.qq.com"
)

func (s *settings) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.DataDir, "data", env("WXFLOW_DATA", "data"), "data folder (env WXFLOW_DATA)")
	fs.StringVar(&s.DBURL, "db", env("WXFLOW_DB_URL", ""), "database URL, sqlite:PATH or postgres://… (env WXFLOW_DB_URL; default sqlite in the data folder)")
	fs.StringVar(&s.NATSURL, "nats", env("WXFLOW_NATS_URL", ""), "NATS URL (env WXFLOW_NATS_URL; default nats://127.0.0.1:4250, the embedded server)")
	fs.IntVar(&s.Replicas, "nats-replicas", envInt("WXFLOW_NATS_REPLICAS", 1), "replicas of wxflow's streams and buckets: 1 on one server, 3 on a 3-node cluster (env WXFLOW_NATS_REPLICAS)")
	fs.StringVar(&s.HTTPAddr, "http", env("WXFLOW_HTTP_ADDR", "127.0.0.1:8080"), "API listen address (env WXFLOW_HTTP_ADDR)")
	fs.StringVar(&s.PublicURL, "public-url", env("WXFLOW_PUBLIC_URL", ""), "public base URL of the API for WeChat notifications (env WXFLOW_PUBLIC_URL; default http://<http addr>)")
	fs.StringVar(&s.MerchantName, "merchant", env("WXFLOW_MERCHANT", "default"), "merchant name used in notify URLs (env WXFLOW_MERCHANT)")
	fs.StringVar(&s.MerchantDir, "merchant-dir", env("WXFLOW_MERCHANT_DIR", ""), "merchant key folder (env WXFLOW_MERCHANT_DIR; default <data>/sim)")
	fs.StringVar(&s.WechatURL, "wechat-url", env("WXFLOW_WECHAT_URL", ""), "base URL standing for every WeChat host, e.g. the simulator (env WXFLOW_WECHAT_URL)")
	fs.StringVar(&s.WechatCA, "wechat-ca", env("WXFLOW_WECHAT_CA", ""), "extra root CA file to trust for WeChat (env WXFLOW_WECHAT_CA)")
	fs.DurationVar(&s.WechatTimeout, "wechat-timeout", envDuration("WXFLOW_WECHAT_TIMEOUT", 10*time.Second), "how long one call to WeChat may take; it is retried after (env WXFLOW_WECHAT_TIMEOUT)")
	fs.StringVar(&s.LogFormat, "log", env("WXFLOW_LOG", ""), "log format: text or json (env WXFLOW_LOG; default json, text for dev)")
	fs.StringVar(&s.LogLevel, "log-level", env("WXFLOW_LOG_LEVEL", "info"), "log level (env WXFLOW_LOG_LEVEL)")
	fs.StringVar(&s.MetricsAddr, "metrics-addr", env("WXFLOW_METRICS_ADDR", ""), "engine and worker processes: serve /metrics here (env WXFLOW_METRICS_ADDR; the API serves its own)")
	fs.StringVar(&s.StuckAfter, "stuck-after", env("WXFLOW_STUCK_AFTER", ""), `per-state deadlines past which an order is stuck, e.g. "created=1m,prepaid=2m,refunding=30m" (env WXFLOW_STUCK_AFTER)`)
	fs.DurationVar(&s.EventRetention, "event-retention", envDuration("WXFLOW_EVENT_RETENTION", 30*24*time.Hour), "how long the event stream keeps events; the NATS server holds every order's subjects that long (env WXFLOW_EVENT_RETENTION)")
	fs.IntVar(&s.WorkerLanes, "worker-lanes", envInt("WXFLOW_WORKER_LANES", 16), "worker processes: events each worker handles at once, one order's always in order (env WXFLOW_WORKER_LANES)")
	s.AdminToken = os.Getenv("WXFLOW_ADMIN_TOKEN") // never a flag: it would show in ps
}

func env(name, def string) string { return cmp.Or(os.Getenv(name), def) }

// envDuration is env for a duration; a value that is not one keeps the default.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// envInt is env for a number; a value that is not a number keeps the default.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// resolve fills the defaults that depend on other settings.
func (s *settings) resolve() {
	s.DBURL = cmp.Or(s.DBURL, "sqlite:"+filepath.Join(s.DataDir, "wxflow.db"))
	if s.NATSURL == "" {
		// A running `wxflow dev` or `wxflow nats` wrote its URL in the data folder.
		if b, err := os.ReadFile(filepath.Join(s.DataDir, "nats.url")); err == nil {
			s.NATSURL = strings.TrimSpace(string(b))
		}
	}
	s.NATSURL = cmp.Or(s.NATSURL, "nats://127.0.0.1:4250")
	s.PublicURL = strings.TrimRight(cmp.Or(s.PublicURL, "http://"+s.HTTPAddr), "/")
	s.MerchantDir = cmp.Or(s.MerchantDir, filepath.Join(s.DataDir, "sim"))
	s.MerchantName = cmp.Or(s.MerchantName, "default")
	s.HTTPAddr = cmp.Or(s.HTTPAddr, "127.0.0.1:8080")
	s.LogFormat = cmp.Or(s.LogFormat, "json")
}

// wechatHosts returns the base URLs of the platform, pay and OAuth hosts.
func (s *settings) wechatHosts() (mp, pay, oauth string) {
	if s.WechatURL != "" {
		u := strings.TrimRight(s.WechatURL, "/")
		return u, u, u
	}
	return wechatMPHost, wechatPayHost, wechatOAuthHost
}

// rootCAs returns the system roots plus the extra CA, or nil for the system roots alone.
func (s *settings) rootCAs() (*x509.CertPool, error) {
	if s.WechatCA == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(s.WechatCA)
	if err != nil {
		return nil, fmt.Errorf("wechat CA: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("wechat CA %s: no certificate found", s.WechatCA)
	}
	return pool, nil
}

// logger builds the process logger: text for people, JSON for machines.
func (s *settings) logger(component string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if s.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("component", component)
}

// shutdownTimeout bounds each step of a graceful shutdown.
const shutdownTimeout = 10 * time.Second

// deadlines parses StuckAfter over engine.DefaultDeadlines.
func (s *settings) deadlines() (map[engine.State]time.Duration, error) {
	out := maps.Clone(engine.DefaultDeadlines)
	if strings.TrimSpace(s.StuckAfter) == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s.StuckAfter, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(v)
		if _, waiting := out[engine.State(k)]; !ok || err != nil || !waiting || d < 0 {
			return nil, fmt.Errorf("stuck-after %q: want state=duration for a waiting state (created, authorized, prepaid, signed, refunding)", part)
		}
		out[engine.State(k)] = d
	}
	return out, nil
}
