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
}

// Close drains NATS and closes the store; call it after every part's Run returned.
func (c *Conns) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
	}
	if c.Store != nil {
		_ = c.Store.Close()
	}
}

// Connect opens what a long-running process of the deployment needs: NATS
// with wxflow's streams provisioned (waiting for a server that is not up
// yet, as under a Procfile manager that starts everything at once) and, when
// withStore, the store with its migrations applied.
func Connect(ctx context.Context, s *Settings, name string, withStore bool, log *slog.Logger) (*Conns, error) {
	c := &Conns{Metrics: metrics.New(), Log: log}
	if withStore {
		store, err := engine.Open(ctx, s.DBURL)
		if err != nil {
			return nil, err
		}
		c.Store = store
	}
	nc, js, err := ConnectNATS(ctx, s, name, true, log)
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

// ConnectNATS connects to the deployment's NATS and provisions wxflow's
// streams and buckets (idempotent), so any process may start first. With
// wait, a server that is not up yet is waited for (a process of the
// Procfile); without, nothing answering is [ErrNATSUnreachable] at once (a
// command a person typed), and so is a URL that no setting and no record in
// the data folder gave. Either way a server that answers but is still
// starting (a cluster electing its JetStream leader) is given 60 s.
func ConnectNATS(ctx context.Context, s *Settings, name string, wait bool, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	url := s.NATSURL
	if s.natsGuessed && !wait {
		return nil, nil, fmt.Errorf("%w: no --nats given and --data %s holds no record of a running wxflow (%s): is wxflow running for this data folder?",
			ErrNATSUnreachable, s.DataDir, natsembed.URLFile)
	}
	if wait {
		log.Info("connecting to NATS", "url", url)
	}
	nc, err := nats.Connect(url,
		nats.Name("wxflow "+name),
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
	)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: is wxflow running for --data %s? (%w)", ErrNATSUnreachable, url, s.DataDir, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		// Each try has its own deadline: a cluster without a JetStream leader
		// yet may leave a request unanswered rather than refuse it.
		actx, acancel := context.WithTimeout(pctx, 5*time.Second)
		err := engine.Provision(actx, js, engine.StreamsConfig{Replicas: s.Replicas, EventMaxAge: s.EventRetention,
			MaxBytes: s.StreamMaxBytes, MaxMsgs: s.StreamMaxMsgs})
		acancel()
		if err == nil {
			return nc, js, nil
		}
		log.Warn("provisioning streams, retrying", "err", err)
		select {
		case <-pctx.Done():
			nc.Close()
			return nil, nil, fmt.Errorf("provision streams on %s: %w", url, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
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
// processes, unless it is one node of a cluster.
func StartNATS(s *Settings, cfg natsembed.Config) (*natsembed.Server, error) {
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(s.DataDir, "nats")
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
