package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/metrics"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
)

// ErrNATSUnreachable is returned when nothing answers at the NATS URL: the
// deployment is not running, or the settings point elsewhere.
var ErrNATSUnreachable = errors.New("nothing answers at the NATS URL")

// Conns is what one process shares among the parts it runs: the store, the
// NATS connection, the metrics and the logger.
type Conns struct {
	Store   *engine.Store // nil for worker processes, which never touch SQL
	NC      *nats.Conn
	JS      jetstream.JetStream
	Metrics *metrics.Metrics
	Log     *slog.Logger

	borrowed bool // Store belongs to another Conns
}

// Close drains NATS and closes the store (unless c shares another's);
// call it after every part's Run returned.
func (c *Conns) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
	}
	if c.Store != nil && !c.borrowed {
		_ = c.Store.Close()
	}
}

// As connects to NATS again as role, sharing c's store, metrics and
// logger: one process that runs several parts (`wxflow dev`) gives each its
// own NATS user, as separate processes have.
func (c *Conns) As(ctx context.Context, s *Settings, role natsauth.Role) (*Conns, error) {
	nc, js, err := ConnectNATS(ctx, s, role, true, c.Log)
	if err != nil {
		return nil, err
	}
	return &Conns{Store: c.Store, NC: nc, JS: js, Metrics: c.Metrics, Log: c.Log, borrowed: true}, nil
}

// Connect opens what a long-running process of the deployment needs: NATS
// as role, with wxflow's streams provisioned or awaited (waiting for a
// server that is not up yet, as under a Procfile manager that starts
// everything at once) and, when withStore, the store with its migrations
// applied.
func Connect(ctx context.Context, s *Settings, role natsauth.Role, withStore bool, log *slog.Logger) (*Conns, error) {
	c := &Conns{Metrics: metrics.New(), Log: log}
	if withStore {
		store, err := engine.Open(ctx, s.DBURL)
		if err != nil {
			return nil, err
		}
		c.Store = store
	}
	nc, js, err := ConnectNATS(ctx, s, role, true, log)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.NC, c.JS = nc, js
	return c, nil
}

// OpenStore opens the deployment's store (and applies its migrations). A
// SQLite database in a data folder that does not exist is refused: a typo
// in --data must not read an empty new database.
func OpenStore(ctx context.Context, s *Settings) (*engine.Store, error) {
	if st, err := os.Stat(s.DataDir); err != nil || !st.IsDir() {
		if s.DBURL == "sqlite:"+filepath.Join(s.DataDir, "wxflow.db") {
			return nil, fmt.Errorf("%w: --data %s: no such folder (is this the data folder of a deployment?)", ErrInvalid, s.DataDir)
		}
	}
	return engine.Open(ctx, s.DBURL)
}

// ConnectNATS connects to the deployment's NATS as role. Its key is
// WXFLOW_NATS_CREDS when set, else the role's seed in the data folder
// (natsauth.Dir) when there is one, else none (a server without users). The
// engine, and any process of a server without users, declares wxflow's
// streams and buckets (idempotent), so any process may start first; the
// others, which may not change streams, wait until the engine has.
//
// With wait, a server that is not up yet is waited for (a process of the
// Procfile); without, nothing answering is [ErrNATSUnreachable] at once (a
// command a person typed), and so is a URL that no setting and no record in
// the data folder gave. Either way a server that answers but is still
// starting (a cluster electing its JetStream leader) is given 60 s.
func ConnectNATS(ctx context.Context, s *Settings, role natsauth.Role, wait bool, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	url := s.NATSURL
	if s.natsGuessed && !wait {
		return nil, nil, fmt.Errorf("%w: no --nats given and --data %s holds no record of a running wxflow (%s): is wxflow running for this data folder?",
			ErrNATSUnreachable, s.DataDir, natsembed.URLFile)
	}
	opts, authed, err := s.natsOptions(role)
	if err != nil {
		return nil, nil, err
	}
	if wait {
		log.Info("connecting to NATS", "url", url, "as", role)
	}
	opts = append(opts,
		nats.Name("wxflow "+string(role)),
		nats.RetryOnFailedConnect(wait),
		nats.Timeout(3*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS refused", "err", err) // a permission violation: a bug or a misconfigured user
		}),
	)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: is wxflow running for --data %s? (%w)", ErrNATSUnreachable, url, s.DataDir, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream: %w", err)
	}
	declare := !authed || role == natsauth.Engine
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		// Each try has its own deadline: a cluster without a JetStream leader
		// yet may leave a request unanswered rather than refuse it.
		actx, acancel := context.WithTimeout(pctx, 5*time.Second)
		var err error
		if declare {
			err = engine.Provision(actx, js, engine.StreamsConfig{Replicas: s.Replicas, EventMaxAge: s.EventRetention,
				MaxBytes: s.StreamMaxBytes, MaxMsgs: s.StreamMaxMsgs})
		} else {
			err = awaitStreams(actx, js)
		}
		acancel()
		if err == nil {
			return nc, js, nil
		}
		log.Info("waiting for wxflow's streams", "declare", declare, "err", err)
		select {
		case <-pctx.Done():
			nc.Close()
			return nil, nil, fmt.Errorf("streams on %s: %w", url, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// awaitStreams says whether wxflow's streams and buckets are there (the
// engine declares them, the buckets last).
func awaitStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{engine.CommandStream, engine.EventStream} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	for _, bucket := range []string{engine.TokenBucket, engine.LeaseBucket, engine.CodeBucket, engine.AdminSessionBucket} {
		if _, err := js.KeyValue(ctx, bucket); err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
	}
	return nil
}

// natsOptions are role's key and TLS options, and whether it has a key.
func (s *Settings) natsOptions(role natsauth.Role) ([]nats.Option, bool, error) {
	var opts []nats.Option
	if s.NATSCA != "" {
		opts = append(opts, nats.RootCAs(s.NATSCA))
	}
	if s.NATSCert != "" || s.NATSKey != "" {
		opts = append(opts, nats.ClientCert(s.NATSCert, s.NATSKey))
	}
	file := s.NATSCreds
	if file == "" {
		if f := natsauth.SeedFile(natsauth.Dir(s.DataDir), role); fileExists(f) {
			file = f
		}
	}
	if file == "" {
		return opts, false, nil
	}
	auth, err := natsauth.ClientOptions(file, role)
	if err != nil {
		return nil, false, fmt.Errorf("%w: --nats-creds: %w", ErrInvalid, err)
	}
	return append(opts, auth...), true, nil
}

func fileExists(f string) bool {
	_, err := os.Stat(f)
	return err == nil
}

// ServeMetrics serves /metrics on addr until ctx ends, for the processes
// other than the API (which serves them itself); nothing when addr is empty.
func ServeMetrics(ctx context.Context, addr string, m *metrics.Metrics, log *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics listener", "addr", addr, "err", err)
		}
	}()
}

// StartNATS starts the embedded NATS server with its JetStream files in the
// data folder and records its URL there (natsembed.URLFile) for the other
// processes, unless it is one node of a cluster. Unless s.NATSNoAuth, it
// accepts only wxflow's users, whose keys it makes in the data folder
// (natsauth.Dir) on first start, and the shops kept there.
func StartNATS(s *Settings, cfg natsembed.Config) (*natsembed.Server, error) {
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(s.DataDir, "nats")
	}
	if !s.NATSNoAuth {
		users, err := natsauth.Ensure(natsauth.Dir(s.DataDir), natsauth.Internal())
		if err != nil {
			return nil, err
		}
		cfg.Users = users.Nkeys
	}
	ns, err := natsembed.Start(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Cluster == nil { // a cluster's clients are given every node's URL
		if err := ns.WriteURLFile(s.DataDir); err != nil {
			ns.Stop()
			return nil, err
		}
	}
	return ns, nil
}

// WatchUsers keeps the embedded server's users those of the data folder
// until ctx ends: a shop added by `wxflow shop add` while the server runs
// can connect within two seconds. Nothing when s.NATSNoAuth.
func WatchUsers(ctx context.Context, s *Settings, ns *natsembed.Server, log *slog.Logger) {
	if s.NATSNoAuth {
		return
	}
	dir := natsauth.Dir(s.DataDir)
	seen := "" // the first look compares: a shop may have come since the server read the folder
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := natsauth.Fingerprint(dir)
		if now == seen {
			continue
		}
		users, err := natsauth.Ensure(dir, natsauth.Internal())
		if err == nil && natsauth.Same(users.Nkeys, ns.Users()) {
			seen = now // the server has them already: no reload
			continue
		}
		if err == nil {
			err = ns.SetUsers(users.Nkeys)
		}
		if err != nil {
			log.Warn("NATS users not reloaded", "err", err)
			continue
		}
		seen = now
		log.Info("NATS users reloaded", "users", len(users.Nkeys))
	}
}
