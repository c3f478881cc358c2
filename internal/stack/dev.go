package stack

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demoshop"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/workers/books"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// DevOptions are what `wxflow dev`, the bench and the end-to-end tests set
// beyond [Settings].
type DevOptions struct {
	NATSPort int    // embedded NATS port; natsembed.DefaultPort when 0, any free port when -1
	NATSURL  string // an external NATS (a cluster, in tests) instead of the embedded one
	SimAddr  string // where the simulator listens (127.0.0.1:8443)
	// SimBackupAddr is where the simulator's second site, WeChat Pay's
	// backup host, listens; any free port of SimAddr's host when empty. The
	// pay clients fail over to it unless Settings.WechatBackupURL is "off".
	SimBackupAddr string
	// FreePorts lets the defaults give way: a NATS port, simulator address or
	// API address already in use is replaced by a free port.
	FreePorts bool
	// Unlimited lifts the API's rate limits: the bench and the tests drive
	// thousands of requests a second from one address.
	Unlimited bool
	Sim       sim.Config // the simulator; its KeysDir is <data>/sim, and so is its LedgerDir unless it sets Retain
	Workers   WorkerOptions
	// DemoShopAddr is where the demo shop (internal/demoshop, at /demo/)
	// listens; any free port of 127.0.0.1 when empty. With FreePorts or
	// DemoShopFreePort (the address is dev's default, not the user's), an
	// address in use gives way to a free port.
	DemoShopAddr     string
	DemoShopFreePort bool
	// DemoShopJSSDK is where the demo shop's page loads WeChat's JS-SDK: a
	// URL, or a file it serves (demoshop.DefaultJSSDK, WeChat's CDN, when empty).
	DemoShopJSSDK string
}

// Dev is everything of `wxflow dev`, running in one process.
type Dev struct {
	// APIURL is the internal listener (shops, admins, /metrics); PublicURL
	// the public one (WeChat's notifications).
	APIURL, PublicURL, SimURL, NATSURL string
	AdminToken                         string
	Sim                                *Sim
	Store                              *engine.Store
	NATS                               *natsembed.Server // nil with an external NATS
	API                                *api.Server
	Conns                              *Conns
	// ShopKey is the API key of the demo shop (DemoShop), acting for the
	// merchant dev serves; it is also in <data>/shops/demo.key.
	ShopKey string
	// Books are the daily books of each direct merchant dev serves.
	Books []*books.Books
	// DemoShopURL is the demo shop's front page (http://HOST:PORT/demo/):
	// a shop's pages and backend, calling the API with ShopKey.
	DemoShopURL string
	// SimBackupURL is the simulator's second site: WeChat Pay's backup host.
	SimBackupURL string

	g     *errgroup.Group
	parts []*Conns // the API's and the workers' connections, beside Conns (the engine's)
}

// StartDev starts embedded NATS, SQLite, the simulator, the engine, every
// worker and the API, each built as its own process would be, and returns
// once all of them accept work. Everything stops when ctx ends; Wait then
// returns once it has. s is resolved and updated with the addresses chosen.
func StartDev(ctx context.Context, s *Settings, o DevOptions, log *slog.Logger) (*Dev, error) {
	s.Resolve()
	d := &Dev{}
	var cleanups []func()
	fail := func(err error) (*Dev, error) {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		return nil, err
	}
	if o.NATSURL != "" {
		s.NATSURL = o.NATSURL
	} else {
		port := o.NATSPort
		if port == 0 {
			port = natsembed.DefaultPort
		}
		if port > 0 && o.FreePorts && !portFree(port) {
			log.Warn("NATS port in use: taking a free one", "port", port)
			port = -1
		}
		ns, err := StartNATS(s, natsembed.Config{Port: port, ServerName: "wxflow-dev"})
		if err != nil {
			return fail(fmt.Errorf("embedded NATS (--nats-port): %w", err))
		}
		cleanups = append(cleanups, ns.Stop)
		d.NATS, s.NATSURL = ns, ns.ClientURL()
	}
	s.natsGuessed = false
	d.NATSURL = s.NATSURL

	// The simulator, with its keys in <data>/sim: the merchants wxflow
	// serves (sim.DevMerchants: two direct merchants, a provider and two
	// sub-merchants, one folder each), unless the caller chose others. A
	// data folder of before, with one merchant's files at the top of
	// <data>/sim, keeps its one merchant.
	s.MerchantDir = filepath.Join(s.DataDir, "sim")
	o.Sim.KeysDir = s.MerchantDir
	if _, err := os.Stat(filepath.Join(s.MerchantDir, wechat.MerchantFile)); o.Sim.Merchants == nil && errors.Is(err, os.ErrNotExist) {
		o.Sim.Merchants = sim.DevMerchants()
	}
	if o.Sim.LedgerDir == "" && o.Sim.Retain == 0 { // WeChat remembers across restarts; a bounded one forgets by design
		o.Sim.LedgerDir = s.MerchantDir
	}
	if o.Sim.Logger == nil {
		o.Sim.Logger = log
	}
	simulator, err := NewSim(o.Sim, o.SimAddr, o.FreePorts)
	if err != nil {
		return fail(fmt.Errorf("%w (--sim-addr)", err))
	}
	cleanups = append(cleanups, func() { simulator.Listener.Close() })
	d.Sim, d.SimURL = simulator, simulator.URL
	s.WechatURL, s.WechatCA = simulator.URL, filepath.Join(s.MerchantDir, sim.CAFile)
	if err := simulator.ListenBackup(o.SimBackupAddr, o.FreePorts); err != nil {
		return fail(fmt.Errorf("%w (--sim-backup-addr)", err))
	}
	cleanups = append(cleanups, func() { simulator.Backup.Close() })
	d.SimBackupURL = simulator.BackupURL
	if s.WechatBackupURL != "off" {
		s.WechatBackupURL = simulator.BackupURL
	}
	if s.RefundGap == 0 {
		// WeChat's minute between two refunds of an order, on the
		// simulator's clock: it refuses a refund sooner (FREQUENCY_LIMITED).
		s.RefundGap = time.Minute
		if o.Sim.TimeScale > 0 {
			s.RefundGap = time.Duration(float64(time.Minute) * o.Sim.TimeScale)
		}
	}

	apiLn, err := listen(s.HTTPAddr, o.FreePorts)
	if err != nil {
		return fail(fmt.Errorf("API (--http): %w", err))
	}
	cleanups = append(cleanups, func() { apiLn.Close() })
	publicLn, err := listen(s.PublicAddr, o.FreePorts)
	if err != nil {
		return fail(fmt.Errorf("API's public listener (--public-addr): %w", err))
	}
	cleanups = append(cleanups, func() { publicLn.Close() })
	shopLn, err := listen(cmp.Or(o.DemoShopAddr, "127.0.0.1:0"), o.FreePorts || o.DemoShopFreePort)
	if err != nil {
		return fail(fmt.Errorf("demo shop (--demo-shop-addr): %w", err))
	}
	cleanups = append(cleanups, func() { shopLn.Close() })
	d.DemoShopURL = "http://" + shopLn.Addr().String() + "/demo/"
	s.HTTPAddr, s.PublicAddr = apiLn.Addr().String(), publicLn.Addr().String()
	s.PublicURL = "http://" + s.PublicAddr
	d.APIURL, d.PublicURL = "http://"+s.HTTPAddr, s.PublicURL
	if o.Unlimited {
		s.PublicRate, s.ShopRate = math.Inf(1), math.Inf(1)
	}

	// Each part connects as its own NATS user, as separate processes do.
	c, err := Connect(ctx, s, natsauth.Engine, true, log)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, c.Close)
	d.Conns, d.Store = c, c.Store
	apiConns, err := c.As(ctx, s, natsauth.API)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, apiConns.Close)
	workerConns, err := c.As(ctx, s, natsauth.Worker(WorkerAll))
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, workerConns.Close)
	d.parts = []*Conns{apiConns, workerConns}
	wc, err := NewWechatClients(s, c.Metrics)
	if err != nil {
		return fail(err)
	}
	eng, err := NewEngine(s, c)
	if err != nil {
		return fail(err)
	}
	if s.AdminToken == "" {
		if s.AdminToken, err = NewAdminToken(); err != nil { // printed at start
			return fail(err)
		}
	}
	d.AdminToken = s.AdminToken
	// The demo's shop, its key printed at start and kept for `wxflow demo`;
	// the shop's pages may be on this host or localhost.
	secret, err := s.ServerSecret()
	if err != nil {
		return fail(err)
	}
	// It acts for every merchant dev serves.
	if d.ShopKey, _, err = EnsureShop(ctx, c.Store, secret, DemoShop, wc.Registry.Names(), ShopKeyFile(s.DataDir, DemoShop)); err != nil {
		return fail(err)
	}
	s.AppDomains = strings.Join(append(s.AppDomainList(), "localhost"), ",")
	if host, _, _ := net.SplitHostPort(shopLn.Addr().String()); !slices.Contains(s.AppDomainList(), host) {
		s.AppDomains += "," + host // the demo shop's pages
	}
	srv, err := NewAPI(s, apiConns, wc)
	if err != nil {
		return fail(err)
	}
	d.API = srv
	if o.Workers.BackoffMax == 0 {
		o.Workers.BackoffMax = 2 * time.Second // dev's orders are quick; a retry need not wait 30 s
	}
	if o.Workers.Webhook.PollInterval == 0 {
		o.Workers.Webhook.PollInterval = 200 * time.Millisecond // a shop's developer waits for their webhook
	}
	if o.Workers.Webhook.BackoffMax == 0 {
		o.Workers.Webhook.BackoffMax = 30 * time.Second
	}
	wk, err := NewWorkers(ctx, s, workerConns, wc, WorkerAll, o.Workers)
	if err != nil {
		return fail(err)
	}
	d.Books = wk.Books

	shop, err := demoshop.New(demoshop.Config{APIURL: d.APIURL, ShopKey: d.ShopKey, JSSDK: o.DemoShopJSSDK, SimURL: simulator.URL, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("demo shop (--demo-shop-jssdk): %w", err))
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return simulator.Run(gctx) })
	g.Go(func() error { return simulator.Serve(gctx, simulator.Listener) })
	g.Go(func() error { return simulator.ServeSite(gctx, simulator.Backup, sim.SiteBackup) })
	g.Go(func() error { return eng.Run(gctx) })
	g.Go(func() error { return wk.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, api.Listeners{Public: publicLn, Internal: apiLn}) })
	g.Go(func() error { return shop.Serve(gctx, shopLn) })
	if d.NATS != nil {
		g.Go(func() error { WatchUsers(gctx, s, d.NATS, log); return nil })
	}
	d.g = g
	return d, nil
}

// Wait waits until every part has stopped (ctx ended, or one failed), then
// drains NATS, stops the embedded server and closes the store.
func (d *Dev) Wait() error {
	err := d.g.Wait()
	for _, p := range d.parts {
		p.Close()
	}
	d.Conns.Close()
	if d.NATS != nil {
		d.NATS.Stop()
	}
	return err
}

// NewAdminToken is a fresh admin token: 32 random bytes in hex, for `wxflow
// dev` when WXFLOW_ADMIN_TOKEN is not set.
func NewAdminToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// portFree says whether 127.0.0.1:port can be listened on now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
