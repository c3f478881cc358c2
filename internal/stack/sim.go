package stack

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// Sim is the WeChat simulator's process part: the simulator and the
// listener it serves HTTPS on.
type Sim struct {
	*sim.Sim
	Listener net.Listener
	// URL is the simulator's base URL (https://HOST:PORT).
	URL string
	// Backup is the listener of the simulator's second site, WeChat Pay's
	// backup host (sim.SiteBackup), and BackupURL its base URL; nil and ""
	// until ListenBackup.
	Backup    net.Listener
	BackupURL string
}

// NewSim builds the simulator with its keys in cfg.KeysDir (made on first
// start, reused after) and listens on addr. With freePort, an addr already
// in use gives way to any free port of the same host.
func NewSim(cfg sim.Config, addr string, freePort bool) (*Sim, error) {
	simulator, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := listen(addr, freePort)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	return &Sim{Sim: simulator, Listener: ln, URL: "https://" + ln.Addr().String()}, nil
}

// ListenBackup listens on addr for the simulator's second site, WeChat
// Pay's backup host: an empty addr is any free port of the first site's
// host; with freePort, an addr in use gives way as in NewSim. Serve it with
// ServeSite(ctx, s.Backup, sim.SiteBackup).
func (s *Sim) ListenBackup(addr string, freePort bool) error {
	if addr == "" {
		host, _, err := net.SplitHostPort(s.Listener.Addr().String())
		if err != nil {
			return err
		}
		addr = net.JoinHostPort(host, "0")
	}
	ln, err := listen(addr, freePort)
	if err != nil {
		return fmt.Errorf("simulator's backup site: %w", err)
	}
	s.Backup, s.BackupURL = ln, "https://"+ln.Addr().String()
	return nil
}

// Client returns an HTTP client that trusts the simulator's CA, with its
// connections kept open (a TLS handshake per call would cost more than the call).
func (s *Sim) Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}, MaxIdleConnsPerHost: 64}}
}

// listen listens on addr; with freePort, on any free port of addr's host
// when addr is taken.
func listen(addr string, freePort bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !freePort {
		return ln, err
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}
