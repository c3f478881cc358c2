package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wxflow/wxflow/internal/stack"
)

// group is a set of settings a subcommand uses; each subcommand registers
// only the groups it reads, so its --help lists only flags that matter to it.
type group int

// The setting groups.
const (
	gData      group = iota // --data
	gLog                    // --log --log-level
	gDB                     // --db
	gNATS                   // --nats --nats-replicas --event-retention --stream-max-bytes --stream-max-msgs
	gHTTP                   // --http --public-addr --public-url
	gRates                  // --public-rate --shop-rate
	gNATSUsers              // --no-auth (the embedded server's users)
	gMerchant               // --merchant --merchant-dir
	gWechat                 // --wechat-url --wechat-ca --wechat-timeout
	gMetrics                // --metrics-addr
	gStuck                  // --stuck-after
	gEngine                 // --expiry-interval --reconcile-payment-after --reconcile-refund-after --refund-gap
	gWorkers                // --worker-lanes
	gSecret                 // --server-secret-file
	gBooks                  // --books-api --books-ready-after --books-every
	gFailover               // --wechat-backup-url --wechat-probe-after (also with gWechat)
	gWebhook                // --webhook-allow-private
)

// flagSet registers s's flags of the given groups on cmd, each with its
// WXFLOW_* variable; call its load in the command's RunE before anything
// else: the variable fills a flag not given on the command line, parsed as
// strictly as the flag (a malformed value is an error, never the default).
type flagSet struct {
	cmd *cobra.Command
	env map[string]string // flag name → variable
}

func settingsFlags(cmd *cobra.Command, s *stack.Settings, groups ...group) *flagSet {
	fs := &flagSet{cmd: cmd, env: map[string]string{}}
	f := cmd.Flags()
	str := func(p *string, name, env, usage string) {
		f.StringVar(p, name, "", usage+" (env "+env+")")
		fs.env[name] = env
	}
	dur := func(p *time.Duration, name, env, usage string) {
		f.DurationVar(p, name, 0, usage+" (env "+env+")")
		fs.env[name] = env
	}
	flt := func(p *float64, name, env, usage string) {
		f.Float64Var(p, name, 0, usage+" (env "+env+")")
		fs.env[name] = env
	}
	num := func(p *int, name, env, usage string) {
		f.IntVar(p, name, 0, usage+" (env "+env+")")
		fs.env[name] = env
	}
	num64 := func(p *int64, name, env, usage string) {
		f.Int64Var(p, name, 0, usage+" (env "+env+")")
		fs.env[name] = env
	}
	for _, g := range groups {
		switch g {
		case gData:
			str(&s.DataDir, "data", "WXFLOW_DATA", "data folder: SQLite, embedded NATS, simulator keys (default data)")
		case gLog:
			str(&s.LogFormat, "log", "WXFLOW_LOG", "log format: text or json (default json; text for dev)")
			str(&s.LogLevel, "log-level", "WXFLOW_LOG_LEVEL", "log level: debug, info, warn, error (default info)")
		case gDB:
			str(&s.DBURL, "db", "WXFLOW_DB_URL", "database URL, sqlite:PATH or postgres://… (default sqlite in the data folder)")
		case gNATS:
			str(&s.NATSURL, "nats", "WXFLOW_NATS_URL", "NATS URL, comma-separated for a cluster (default: the one running for --data)")
			num(&s.Replicas, "nats-replicas", "WXFLOW_NATS_REPLICAS", "replicas of wxflow's streams and buckets: 1 on one server, 3 on a 3-node cluster (default 1)")
			dur(&s.EventRetention, "event-retention", "WXFLOW_EVENT_RETENTION", "how long the event stream keeps events (default 720h)")
			str(&s.NATSCreds, "nats-creds", "WXFLOW_NATS_CREDS", "this process's NATS key: an nkey seed (.nk) or credentials (.creds) (default: its role's seed in <data>/nats/creds, if any)")
			str(&s.NATSCA, "nats-ca", "WXFLOW_NATS_CA", "root CA (PEM) of a NATS server that speaks TLS")
			str(&s.NATSCert, "nats-cert", "WXFLOW_NATS_CERT", "client certificate (PEM) for a NATS server that asks for one")
			str(&s.NATSKey, "nats-key", "WXFLOW_NATS_KEY", "the client certificate's key (PEM)")
			num64(&s.StreamMaxBytes, "stream-max-bytes", "WXFLOW_STREAM_MAX_BYTES", "most bytes each stream holds; the same for every process (default 1073741824)")
			num64(&s.StreamMaxMsgs, "stream-max-msgs", "WXFLOW_STREAM_MAX_MSGS", "most messages each stream holds; the same for every process (default 1000000)")
		case gHTTP:
			str(&s.HTTPAddr, "http", "WXFLOW_HTTP_ADDR", "the API's internal listener: shops, admins, /metrics (default 127.0.0.1:8080)")
			str(&s.PublicAddr, "public-addr", "WXFLOW_PUBLIC_ADDR", "the API's public listener: WeChat's notifications and /healthz only (default 127.0.0.1:8081)")
			str(&s.PublicURL, "public-url", "WXFLOW_PUBLIC_URL", "how WeChat reaches the public listener, the base of notify URLs (default http://<public addr>)")
			str(&s.AppDomains, "app-domains", "WXFLOW_APP_DOMAINS", "hosts of the shop's pages, comma-separated: JS-SDK page URLs and OAuth redirect_uris must be on one (default the public URL's host)")
		case gNATSUsers:
			f.BoolVar(&s.NATSNoAuth, "no-auth", false, "run the embedded NATS server without users: anyone who reaches its port may publish anything (env WXFLOW_NATS_NO_AUTH)")
			fs.env["no-auth"] = "WXFLOW_NATS_NO_AUTH"
		case gRates:
			flt(&s.PublicRate, "public-rate", "WXFLOW_PUBLIC_RATE", "requests per second one IP may make of the public listener (default 100)")
			flt(&s.ShopRate, "shop-rate", "WXFLOW_SHOP_RATE", "requests per second one shop may make of the internal listener (default 500)")
		case gMerchant:
			str(&s.MerchantName, "merchant", "WXFLOW_MERCHANT", "the default merchant: the name of a one-merchant folder, and whom a shop naming none acts for (default default)")
			str(&s.MerchantDir, "merchant-dir", "WXFLOW_MERCHANT_DIR", "the merchants' folder: <name>/merchant.json with its keys per merchant, or one merchant's merchant.json (default <data>/sim; docs/MERCHANTS.md)")
		case gWechat:
			str(&s.WechatURL, "wechat-url", "WXFLOW_WECHAT_URL", "base URL standing for every WeChat host, e.g. the simulator")
			str(&s.WechatCA, "wechat-ca", "WXFLOW_WECHAT_CA", "extra root CA file to trust for WeChat")
			dur(&s.WechatTimeout, "wechat-timeout", "WXFLOW_WECHAT_TIMEOUT", "how long one call to WeChat may take; it is retried after (default 10s)")
			fallthrough
		case gFailover:
			str(&s.WechatBackupURL, "wechat-backup-url", "WXFLOW_WECHAT_BACKUP_URL", "WeChat Pay's backup host, where pay calls go while the primary is down, or off (default https://api2.mch.weixin.qq.com; none with a simulator unless given)")
			dur(&s.WechatProbeAfter, "wechat-probe-after", "WXFLOW_WECHAT_PROBE_AFTER", "how long a WeChat Pay host that failed rests before one call tries it again (default 30s)")
		case gMetrics:
			str(&s.MetricsAddr, "metrics-addr", "WXFLOW_METRICS_ADDR", "serve /metrics here (the API serves its own)")
		case gStuck:
			str(&s.StuckAfter, "stuck-after", "WXFLOW_STUCK_AFTER", `per-state deadlines past which an order is stuck, e.g. "created=1m,refunding=30m"`)
		case gEngine:
			dur(&s.ExpiryInterval, "expiry-interval", "WXFLOW_EXPIRY_INTERVAL", "how often expired orders are closed and quiet ones looked for (default 1s)")
			dur(&s.ReconcilePaymentAfter, "reconcile-payment-after", "WXFLOW_RECONCILE_PAYMENT_AFTER", "query WeChat about an order signed and quiet this long (default 1m)")
			dur(&s.ReconcileRefundAfter, "reconcile-refund-after", "WXFLOW_RECONCILE_REFUND_AFTER", "query WeChat about a refund pending and quiet this long (default 2m)")
			dur(&s.RefundGap, "refund-gap", "WXFLOW_REFUND_GAP", "send an order's next queued refund this long after the one before settled; WeChat wants a minute (default 1m; dev: a minute on the simulator's time scale)")
		case gSecret:
			str(&s.SecretFile, "server-secret-file", "WXFLOW_SERVER_SECRET_FILE", "the server secret keying shop key hashes; the same file on every host (default <data>/secrets/server.key, made when missing)")
		case gWebhook:
			f.BoolVar(&s.WebhookAllowPrivate, "webhook-allow-private", false, "let webhook endpoints be on loopback and private addresses, never link-local ones (env WXFLOW_WEBHOOK_ALLOW_PRIVATE; default false, true for dev)")
			fs.env["webhook-allow-private"] = "WXFLOW_WEBHOOK_ALLOW_PRIVATE"
		case gBooks:
			str(&s.BooksAPI, "books-api", "WXFLOW_BOOKS_API", "how the daily books download WeChat's bills: v3 (SHA-1 checked) or v2 (default v3)")
			dur(&s.BooksReadyAfter, "books-ready-after", "WXFLOW_BOOKS_READY_AFTER", "how long after a day ends (midnight, Beijing time) its books are run (default 10h30m)")
			dur(&s.BooksEvery, "books-every", "WXFLOW_BOOKS_EVERY", "also run today's books this often, against the day so far (the simulator only; default off)")
		case gWorkers:
			num(&s.WorkerLanes, "worker-lanes", "WXFLOW_WORKER_LANES", "events each worker handles at once, one order's always in order (default 16)")
		}
	}
	return fs
}

// load fills every flag not given on the command line from its variable,
// then reads WXFLOW_ADMIN_TOKEN (never a flag: it would show in ps),
// resolves the defaults and validates; every error is a usage error.
func (fs *flagSet) load(s *stack.Settings) error {
	var err error
	fs.cmd.Flags().VisitAll(func(f *pflag.Flag) {
		name := fs.env[f.Name]
		v, set := os.LookupEnv(name)
		if err != nil || name == "" || f.Changed || !set || v == "" {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = usageError{fmt.Errorf("%s=%q: %w", name, v, serr)}
		}
	})
	if err != nil {
		return err
	}
	s.AdminToken = os.Getenv("WXFLOW_ADMIN_TOKEN")
	s.Resolve()
	return s.Validate()
}
