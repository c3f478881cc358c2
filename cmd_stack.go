package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/pay"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// connectNATS connects to the deployment's NATS and provisions wxflow's
// streams and buckets (idempotent), so any process may start first. It keeps
// trying for 60 s: a server still starting, or a cluster still electing its
// JetStream leader, answers nothing useful for a moment.
func connectNATS(ctx context.Context, s *settings, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	url := s.NATSURL
	nc, err := nats.Connect(url,
		nats.Name("wxflow "+name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect NATS %s: %w", url, err)
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
		err := engine.Provision(actx, js, engine.StreamsConfig{Replicas: s.Replicas, EventMaxAge: s.EventRetention})
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

// wechatClients are the WeChat clients of one merchant.
type wechatClients struct {
	Merchant *wechat.Merchant
	V2       *v2.Client
	V3       *v3.Client
	MP       *mp.Client
	Pay      *pay.Payments
}

// newWechatClients loads the merchant's keys and builds its clients, pointed
// at WeChat's hosts or at the simulator (WXFLOW_WECHAT_URL).
func newWechatClients(s *settings, metrics *api.Metrics) (*wechatClients, error) {
	m, err := wechat.LoadMerchant(s.MerchantName, s.MerchantDir)
	if err != nil {
		return nil, fmt.Errorf("merchant keys in %s: %w", s.MerchantDir, err)
	}
	roots, err := s.rootCAs()
	if err != nil {
		return nil, err
	}
	var transport http.RoundTripper = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	if metrics != nil {
		transport = metrics.WrapTransport(transport)
	}
	httpClient := &http.Client{Timeout: cmp.Or(s.WechatTimeout, 10*time.Second), Transport: transport}
	mpURL, payURL, _ := s.wechatHosts()
	c := &wechatClients{Merchant: m}
	v2cfg := v2.Config{BaseURL: payURL, Merchant: m, HTTPClient: httpClient, RootCAs: roots}
	if metrics != nil {
		v2cfg.WrapTransport = metrics.WrapTransport
	}
	if c.V2, err = v2.NewClient(v2cfg); err != nil {
		return nil, err
	}
	if c.V3, err = v3.NewClient(v3.Config{BaseURL: payURL, Merchant: m, HTTPClient: httpClient}); err != nil {
		return nil, err
	}
	if c.MP, err = mp.NewClient(mp.Config{BaseURL: mpURL, AppID: m.AppID, AppSecret: m.AppSecret, HTTPClient: httpClient}); err != nil {
		return nil, err
	}
	if c.Pay, err = pay.New(pay.Config{Merchant: m, V2: c.V2, V3: c.V3, NotifyBaseURL: s.PublicURL}); err != nil {
		return nil, err
	}
	return c, nil
}

// codeBucket is the KV bucket where the authorize worker keeps each code's
// openid; nil (codes are then not remembered) when it cannot be opened.
func codeBucket(ctx context.Context, js jetstream.JetStream) jetstream.KeyValue {
	kv, err := js.KeyValue(ctx, engine.CodeBucket)
	if err != nil {
		return nil
	}
	return kv
}

// serveMetrics serves /metrics on addr until ctx ends (for the processes
// other than the API, which serves them itself); nothing when addr is empty.
func serveMetrics(ctx context.Context, addr string, m *api.Metrics, log *slog.Logger) {
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
