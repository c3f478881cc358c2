// Package natsembed runs a NATS server with JetStream inside a wxflow process,
// for `wxflow dev`, single-host deployments and tests. Other processes (the
// Procfile's engine, api and workers) join it over loopback by its URL.
//
// It never listens on 4222 unless asked: a machine running its own NATS there
// (as CI does) must keep it.
package natsembed

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultPort is where the embedded server listens unless told otherwise:
// not 4222, which belongs to a system NATS when there is one.
const DefaultPort = 4250

// URLFile is written in the data folder so that other processes can find a
// server started on a random port.
const URLFile = "nats.url"

// Config configures the embedded server.
type Config struct {
	// Host to listen on; "127.0.0.1" when empty.
	Host string
	// Port to listen on; DefaultPort when 0, a random free port when -1.
	Port int
	// StoreDir holds JetStream's files; required.
	StoreDir string
	// ServerName is optional; it names the node in logs and clusters.
	ServerName string
	// Logs turns the server's own logging on (off by default).
	Logs bool
	// ReadyTimeout bounds the wait for the server to accept clients (10 s when 0).
	ReadyTimeout time.Duration
	// Cluster joins the server to a JetStream cluster; nil runs it alone.
	Cluster *ClusterConfig
	// Users, when set, are the only clients the server accepts, each with
	// its permissions (internal/natsauth makes them); nil lets anyone in.
	Users []*server.NkeyUser
}

// ClusterConfig makes the embedded server one node of a JetStream cluster, so
// that wxflow's streams and buckets can be replicated (R3) and survive the
// loss of a node. Every node needs its own ServerName and StoreDir.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Port is where the node listens for its peers' routes (a random free
	// port when -1); on the same Host as clients.
	Port int
	// Routes are the peers' route URLs, e.g. "nats://127.0.0.1:6250"; a
	// node's own URL may be listed (it is skipped), so every node can be
	// given the same list.
	Routes []string
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	urlFile string
	opts    *server.Options
}

// ErrNotReady reports a server that did not accept connections in time.
var ErrNotReady = errors.New("natsembed: server not ready")

// Start starts a JetStream-enabled server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      !cfg.Logs,
		Nkeys:      cfg.Users,
	}
	if c := cfg.Cluster; c != nil {
		if cfg.ServerName == "" || c.Name == "" {
			return nil, errors.New("natsembed: a cluster node needs a ServerName and a cluster Name")
		}
		routes, err := parseRoutes(c.Routes)
		if err != nil {
			return nil, err
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: cfg.Host, Port: c.Port}
		opts.Routes = routes
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	if cfg.Logs {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w after %s (is %s:%d already in use?)", ErrNotReady, cfg.ReadyTimeout, cfg.Host, cfg.Port)
	}
	return &Server{Server: ns, opts: opts}, nil
}

// Users are the users the server accepts now (nil: anyone).
func (s *Server) Users() []*server.NkeyUser { return s.opts.Nkeys }

// SetUsers replaces the users the server accepts (a shop added while it
// runs), as a configuration reload does: connected clients of users that
// remain keep their connections.
func (s *Server) SetUsers(users []*server.NkeyUser) error {
	opts := s.opts.Clone()
	opts.Nkeys = users
	if err := s.Server.ReloadOptions(opts); err != nil {
		return fmt.Errorf("natsembed: reload users: %w", err)
	}
	s.opts = opts
	return nil
}

// parseRoutes turns route URLs into the server's options.
func parseRoutes(routes []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, r := range routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("natsembed: bad route %q (want nats://host:port)", r)
		}
		out = append(out, u)
	}
	return out, nil
}

// WriteURLFile records the client URL in dir/URLFile for other processes.
func (s *Server) WriteURLFile(dir string) error {
	s.urlFile = filepath.Join(dir, URLFile)
	return os.WriteFile(s.urlFile, []byte(s.ClientURL()+"\n"), 0o644)
}

// Stop shuts the server down and waits for it; it is safe to call twice.
func (s *Server) Stop() {
	if s == nil || s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
	if s.urlFile != "" {
		_ = os.Remove(s.urlFile)
	}
}
