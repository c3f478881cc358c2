// Package simtest serves the WeChat simulator over HTTPS for other
// packages' tests, with its keys in a temporary folder.
package simtest

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// Start runs a simulator (KeysDir defaults to t.TempDir()) until the test
// ends, and returns it, its base URL and a client that trusts its CA.
func Start(t testing.TB, cfg sim.Config) (*sim.Sim, string, *http.Client) {
	t.Helper()
	if cfg.KeysDir == "" {
		cfg.KeysDir = t.TempDir()
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = s.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	return s, srv.URL, client
}
