package stack

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// Settings is everything a wxflow process needs to find the rest of its
// deployment and to tune its own part. internal/cli fills it from flags and
// WXFLOW_* variables (the flag wins); [Settings.Resolve] fills what depends
// on other fields, [Settings.Validate] refuses what cannot work. The zero
// value, resolved, describes the local layout of `wxflow dev` and the Procfile.
type Settings struct {
	DataDir       string        // WXFLOW_DATA: the data folder (SQLite, embedded NATS, simulator keys). Default: data.
	DBURL         string        // WXFLOW_DB_URL: "sqlite:PATH" or "postgres://…". Default: SQLite in DataDir.
	NATSURL       string        // WXFLOW_NATS_URL: comma-separated for a cluster. Default: the data folder's running NATS, else nats://127.0.0.1:4250.
	Replicas      int           // WXFLOW_NATS_REPLICAS: replicas of every stream and bucket (3 on a 3-node cluster). Default: 1.
	HTTPAddr      string        // WXFLOW_HTTP_ADDR: the API's internal listener (shops, admins, /metrics). Default: 127.0.0.1:8080.
	PublicAddr    string        // WXFLOW_PUBLIC_ADDR: the API's public listener (WeChat's notifications, /healthz). Default: 127.0.0.1:8081.
	PublicURL     string        // WXFLOW_PUBLIC_URL: how WeChat reaches the public listener (notify URLs). Default: http://<PublicAddr>.
	PublicRate    float64       // WXFLOW_PUBLIC_RATE: requests per second one IP may make of the public listener. Default: 100.
	ShopRate      float64       // WXFLOW_SHOP_RATE: requests per second one shop may make of the internal listener. Default: 500.
	MerchantName  string        // WXFLOW_MERCHANT: wxflow's name for the merchant. Default: default.
	MerchantDir   string        // WXFLOW_MERCHANT_DIR: merchant.json and key files. Default: <DataDir>/sim.
	WechatURL     string        // WXFLOW_WECHAT_URL: one base URL for every WeChat host (the simulator). Default: WeChat's hosts.
	WechatCA      string        // WXFLOW_WECHAT_CA: extra root CA (PEM) to trust, e.g. the simulator's.
	WechatTimeout time.Duration // WXFLOW_WECHAT_TIMEOUT: how long a call to WeChat may take before it is retried. Default: 10s.
	LogFormat     string        // WXFLOW_LOG: "text" or "json". Default: json.
	LogLevel      string        // WXFLOW_LOG_LEVEL: debug, info, warn, error. Default: info.
	AdminToken    string        // WXFLOW_ADMIN_TOKEN only (never a flag: it would show in ps).
	MetricsAddr   string        // WXFLOW_METRICS_ADDR: where engine and worker processes serve /metrics. Default: none.
	StuckAfter    string        // WXFLOW_STUCK_AFTER: per-state deadlines, e.g. "created=1m,refunding=30m".
	// EventRetention (WXFLOW_EVENT_RETENTION) is how long the event stream
	// keeps events. The database keeps the history for good; the stream's
	// copy costs the NATS server memory for every order's subjects. Default: 30 days.
	EventRetention time.Duration
	// StreamMaxBytes (WXFLOW_STREAM_MAX_BYTES) and StreamMaxMsgs
	// (WXFLOW_STREAM_MAX_MSGS) cap each of wxflow's streams, so a stream
	// cannot fill the NATS server's disk; the engine warns past 80 %. Every
	// process declares the streams, so every one must be given the same.
	// Default: the engine's (1 GiB, 1,000,000).
	StreamMaxBytes int64
	StreamMaxMsgs  int64
	// WorkerLanes (WXFLOW_WORKER_LANES) is how many events each worker of a
	// process handles at once: calls to WeChat wait on the network. Default: 16.
	WorkerLanes int
	// ExpiryInterval (WXFLOW_EXPIRY_INTERVAL) is how often the engine closes
	// expired orders and looks for quiet ones to reconcile. Default: the engine's (1s; 5s for reconciling).
	ExpiryInterval time.Duration
	// ReconcilePaymentAfter (WXFLOW_RECONCILE_PAYMENT_AFTER): an order signed
	// and quiet this long is queried at WeChat. Default: the engine's (1m).
	ReconcilePaymentAfter time.Duration
	// ReconcileRefundAfter (WXFLOW_RECONCILE_REFUND_AFTER): a refund pending
	// and quiet this long is queried at WeChat. Default: the engine's (2m).
	ReconcileRefundAfter time.Duration
	// RefundGap (WXFLOW_REFUND_GAP): the least time between one refund of an
	// order settling and the next one being sent to WeChat, which wants a
	// minute between two refunds of an order. Default: the engine's (1m);
	// `wxflow dev`: a minute on the simulator's time scale.
	RefundGap time.Duration
	// SecretFile (WXFLOW_SERVER_SECRET_FILE) holds the server secret that
	// keys shop API key hashes and derived order ids. Default:
	// <DataDir>/secrets/server.key, made when missing (secret.go).
	SecretFile string
	// WebhookAllowPrivate (WXFLOW_WEBHOOK_ALLOW_PRIVATE) lets webhook
	// endpoints be on loopback, private and link-local addresses: refused
	// when an endpoint is added and when a delivery connects, unless set
	// (workers/webhook). Default: false; true for `wxflow dev`.
	WebhookAllowPrivate bool
	// AppDomains (WXFLOW_APP_DOMAINS) are the comma-separated hosts of the
	// shop's pages: JS-SDK page URLs and OAuth redirect_uris must be on
	// one. Default: the host of PublicURL.
	AppDomains string
	// BooksAPI (WXFLOW_BOOKS_API) downloads WeChat's bills for the daily
	// books: "v3" (the download's SHA-1 checked) or "v2". Default: v3.
	BooksAPI string
	// BooksReadyAfter (WXFLOW_BOOKS_READY_AFTER) is how long after a day ends
	// (midnight, Beijing time) the books worker looks for its bill. Default:
	// 10h30m (WeChat makes it ready at 10:00).
	BooksReadyAfter time.Duration
	// BooksEvery (WXFLOW_BOOKS_EVERY), when set, also runs today's books that
	// often, against a bill of the day so far: only the simulator serves one
	// (`wxflow dev`). Default: off.
	BooksEvery time.Duration

	// WechatBackupURL (WXFLOW_WECHAT_BACKUP_URL) is WeChat Pay's backup
	// host: a pay call goes there when the primary (WeChat Pay's host, or
	// WechatURL) cannot be reached, does not answer in time or answers an
	// unsigned 5xx (package workers/wechat/failover). "off": no failover.
	// Default: https://api2.mch.weixin.qq.com when WechatURL is not set;
	// none when it is (a simulator: `wxflow dev` sets its second site).
	WechatBackupURL string
	// WechatProbeAfter (WXFLOW_WECHAT_PROBE_AFTER) is how long a WeChat Pay
	// host that failed rests before one call tries it again. Default: 30s.
	WechatProbeAfter time.Duration

	// NATSCreds (WXFLOW_NATS_CREDS) is the process's NATS key: an nkey seed
	// (.nk) or a JWT credentials file (.creds). Default: the role's seed in
	// <data>/nats/creds, when the embedded server made one; else none.
	NATSCreds string
	// NATSCA, NATSCert and NATSKey (WXFLOW_NATS_CA, WXFLOW_NATS_CERT,
	// WXFLOW_NATS_KEY) are the TLS root CA a NATS server's certificate must
	// chain to, and the client certificate and key, when the server asks for TLS.
	NATSCA, NATSCert, NATSKey string
	// NATSNoAuth (WXFLOW_NATS_NO_AUTH) runs the embedded server without
	// users: anyone who reaches its port may publish anything. For a server
	// whose port only wxflow's processes can reach. Default: false.
	NATSNoAuth bool

	natsGuessed bool // NATSURL is the default, named by no setting and no record
}

// WeChat's real hosts, used when WechatURL is not set.
const (
	wechatMPHost    = "https://api.weixin.qq.com"
	wechatPayHost   = "https://api.mch.weixin.qq.com"
	wechatOAuthHost = "https://open.weixin.qq.com"
)

// wechatPayBackupHost is WeChat Pay's backup host: the same paths, another
// site; used when neither WechatURL nor WechatBackupURL is set.
const wechatPayBackupHost = "https://api2.mch.weixin.qq.com"

// DefaultNATSURL is where processes look for NATS when neither a setting nor
// the data folder names one: the embedded server of `wxflow nats`.
var DefaultNATSURL = fmt.Sprintf("nats://127.0.0.1:%d", natsembed.DefaultPort)

// Resolve fills the defaults that depend on other settings. It reads the
// data folder's record of a running NATS (natsembed.URLFile) when no URL is
// set, and remembers when neither gave one (ConnectNATS then refuses to
// guess for a command a person typed).
func (s *Settings) Resolve() {
	s.DataDir = cmp.Or(s.DataDir, "data")
	s.DBURL = cmp.Or(s.DBURL, "sqlite:"+filepath.Join(s.DataDir, "wxflow.db"))
	if s.NATSURL == "" {
		if b, err := os.ReadFile(filepath.Join(s.DataDir, natsembed.URLFile)); err == nil {
			s.NATSURL = strings.TrimSpace(string(b))
		}
	}
	if s.NATSURL == "" {
		s.NATSURL, s.natsGuessed = DefaultNATSURL, true
	}
	s.HTTPAddr = cmp.Or(s.HTTPAddr, "127.0.0.1:8080")
	s.PublicAddr = cmp.Or(s.PublicAddr, "127.0.0.1:8081")
	s.PublicURL = strings.TrimRight(cmp.Or(s.PublicURL, "http://"+s.PublicAddr), "/")
	s.PublicRate = cmp.Or(s.PublicRate, 100)
	s.ShopRate = cmp.Or(s.ShopRate, 500)
	s.MerchantDir = cmp.Or(s.MerchantDir, filepath.Join(s.DataDir, "sim"))
	s.MerchantName = cmp.Or(s.MerchantName, "default")
	s.SecretFile = cmp.Or(s.SecretFile, DefaultSecretFile(s.DataDir))
	if s.AppDomains == "" {
		if u, err := url.Parse(s.PublicURL); err == nil {
			s.AppDomains = u.Hostname()
		}
	}
	s.LogFormat = cmp.Or(s.LogFormat, "json")
	s.LogLevel = cmp.Or(s.LogLevel, "info")
	s.Replicas = cmp.Or(s.Replicas, 1)
	s.WechatTimeout = cmp.Or(s.WechatTimeout, 10*time.Second)
	s.WechatProbeAfter = cmp.Or(s.WechatProbeAfter, 30*time.Second)
	s.EventRetention = cmp.Or(s.EventRetention, 30*24*time.Hour)
	s.WorkerLanes = cmp.Or(s.WorkerLanes, 16)
}

// ErrInvalid marks a setting that cannot work; the CLI exits with status 2 on it.
var ErrInvalid = errors.New("invalid setting")

// Validate reports every setting that cannot work, each naming its flag.
// Call it after Resolve.
func (s *Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if err := checkDBURL(s.DBURL); err != nil {
		bad("--db %q: %v", s.DBURL, err)
	}
	for u := range strings.SplitSeq(s.NATSURL, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls") {
			bad("--nats %q: want nats://HOST:PORT (comma-separated for a cluster)", u)
		}
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		bad("--nats-replicas %d: want 1 to 5", s.Replicas)
	}
	if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
		bad("--http %q: want HOST:PORT", s.HTTPAddr)
	}
	if _, _, err := net.SplitHostPort(s.PublicAddr); err != nil {
		bad("--public-addr %q: want HOST:PORT", s.PublicAddr)
	}
	if !(s.PublicRate > 0) || !(s.ShopRate > 0) {
		bad("--public-rate and --shop-rate must be positive")
	}
	if pu, err := url.Parse(s.PublicURL); err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		bad("--public-url %q: want http(s)://HOST[:PORT]", s.PublicURL)
	}
	if s.WechatURL != "" {
		if pu, err := url.Parse(s.WechatURL); err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			bad("--wechat-url %q: want https://HOST[:PORT]", s.WechatURL)
		}
	}
	if b := s.WechatBackupURL; b != "" && b != "off" {
		_, pay, _ := s.WechatHosts()
		bu, err := failover.ParseBase(b)
		pu, perr := failover.ParseBase(pay)
		switch {
		case err != nil:
			bad("--wechat-backup-url %q: want https://HOST[:PORT] (no path), or off", b)
		case perr != nil:
			bad("--wechat-backup-url needs a --wechat-url of scheme and host only, not %q", pay)
		case bu.Scheme == pu.Scheme && bu.Host == pu.Host:
			bad("--wechat-backup-url %q: the primary itself", b)
		case bu.Scheme == "http" && !loopback(bu.Hostname()):
			bad("--wechat-backup-url %q: plain http only to a loopback host (a local fake); pay calls carry orders", b)
		}
	}
	if s.WechatProbeAfter < 0 {
		bad("--wechat-probe-after %s: must not be negative", s.WechatProbeAfter)
	}
	if !engine.ValidShopName(s.MerchantName) {
		bad("--merchant %q: want 1-32 of [a-z0-9_-]", s.MerchantName)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		bad("--log %q: want text or json", s.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		bad("--log-level %q: want debug, info, warn or error", s.LogLevel)
	}
	if s.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(s.MetricsAddr); err != nil {
			bad("--metrics-addr %q: want HOST:PORT", s.MetricsAddr)
		}
	}
	if _, err := s.Deadlines(); err != nil {
		bad("%v", err)
	}
	for name, d := range map[string]time.Duration{"--wechat-timeout": s.WechatTimeout, "--event-retention": s.EventRetention,
		"--expiry-interval": s.ExpiryInterval, "--reconcile-payment-after": s.ReconcilePaymentAfter, "--reconcile-refund-after": s.ReconcileRefundAfter} {
		if d < 0 {
			bad("%s %s: must not be negative", name, d)
		}
	}
	if s.RefundGap < 0 {
		bad("--refund-gap %s: must not be negative", s.RefundGap)
	}
	for _, d := range s.AppDomainList() {
		if !validHost(d) {
			bad("--app-domains %q: want host names, comma-separated (no scheme, port or path)", d)
		}
	}
	if s.StreamMaxBytes < 0 {
		bad("--stream-max-bytes %d: must not be negative", s.StreamMaxBytes)
	}
	if s.StreamMaxMsgs < 0 {
		bad("--stream-max-msgs %d: must not be negative", s.StreamMaxMsgs)
	}
	if s.WorkerLanes < 1 {
		bad("--worker-lanes %d: want at least 1", s.WorkerLanes)
	}
	if s.BooksAPI != "" && s.BooksAPI != "v2" && s.BooksAPI != "v3" {
		bad("--books-api %q: want v2 or v3", s.BooksAPI)
	}
	if s.BooksReadyAfter < 0 || s.BooksEvery < 0 {
		bad("--books-ready-after and --books-every must not be negative")
	}
	return errors.Join(errs...)
}

// AppDomainList is AppDomains as a list, lower-cased, without blanks.
func (s *Settings) AppDomainList() []string {
	var out []string
	for d := range strings.SplitSeq(s.AppDomains, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// validHost: a host name or an IP address, nothing else.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 || strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	return true
}

// WechatHosts returns the base URLs of the platform, pay and OAuth hosts.
func (s *Settings) WechatHosts() (mp, pay, oauth string) {
	if s.WechatURL != "" {
		u := strings.TrimRight(s.WechatURL, "/")
		return u, u, u
	}
	return wechatMPHost, wechatPayHost, wechatOAuthHost
}

// loopback says whether host is this machine: localhost or a loopback address.
func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// WechatPayBackup returns the base URL of WeChat Pay's backup host, or ""
// for no failover (see WechatBackupURL). It is read when the clients are
// built, so that `wxflow dev` pointing WechatURL at its simulator never
// fails over to WeChat's real backup.
func (s *Settings) WechatPayBackup() string {
	switch {
	case s.WechatBackupURL == "off":
		return ""
	case s.WechatBackupURL != "":
		return strings.TrimRight(s.WechatBackupURL, "/")
	case s.WechatURL == "":
		return wechatPayBackupHost
	}
	return ""
}

// RootCAs returns the system roots plus WechatCA, or nil for the system roots alone.
func (s *Settings) RootCAs() (*x509.CertPool, error) {
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

// Logger builds the process logger: text for people, JSON for machines,
// from its first line on, with durations as strings ("1.5s", not
// nanoseconds). It names no component: the engine, the API, the simulator
// and the workers add their own, and a key is never repeated in a line.
func (s *Settings) Logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cmp.Or(s.LogLevel, "info")))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.String(a.Key, a.Value.Duration().String())
		}
		return a
	}}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if s.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	return slog.New(h)
}

// Deadlines parses StuckAfter over engine.DefaultDeadlines.
func (s *Settings) Deadlines() (map[engine.State]time.Duration, error) {
	out := maps.Clone(engine.DefaultDeadlines)
	if strings.TrimSpace(s.StuckAfter) == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s.StuckAfter, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(v)
		if _, waiting := out[engine.State(k)]; !ok || err != nil || !waiting || d < 0 {
			return nil, fmt.Errorf("--stuck-after %q: want state=duration for a waiting state (created, authorized, prepaid, signed, refunding)", part)
		}
		out[engine.State(k)] = d
	}
	return out, nil
}

// RedactedDBURL is DBURL with any password hidden, for logs.
func (s *Settings) RedactedDBURL() string {
	dsn := s.DBURL
	if i, j := strings.Index(dsn, "://"), strings.LastIndex(dsn, "@"); i >= 0 && j > i {
		return dsn[:i+3] + "…" + dsn[j:]
	}
	return dsn
}

// checkDBURL accepts what engine.Open understands: sqlite:PATH (or a bare
// path), postgres:// and postgresql://. Anything else with a scheme would
// otherwise become an SQLite file named after it.
func checkDBURL(dsn string) error {
	switch {
	case dsn == "" || dsn == "sqlite:":
		return errors.New("empty: want sqlite:PATH or postgres://…")
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return nil
	}
	if scheme, _, ok := strings.Cut(dsn, ":"); ok && !strings.ContainsAny(scheme, `/\.`) {
		return fmt.Errorf("unknown scheme %q: want sqlite:PATH or postgres://…", scheme)
	}
	return nil
}
