package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/client"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// The tests that need wxflow share one real `wxflow dev` (embedded NATS,
// SQLite, the simulator, the engine, every worker, the API), started by
// the first of them: two shops, demo and other, acting for the merchant
// "default", each with an API key and a NATS user; webhooks may go to
// loopback receivers.
var (
	devOnce sync.Once
	devErr  error
	theDev  *deployment
	devStop func()
)

// deployment is the running wxflow of the tests.
type deployment struct {
	dev      *stack.Dev
	settings stack.Settings
	otherKey string // shop other's API key
	merchant string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if devStop != nil {
		devStop()
	}
	os.Exit(code)
}

// wxflow returns the shared deployment, starting it on first use.
func wxflow(t *testing.T) *deployment {
	t.Helper()
	devOnce.Do(func() { theDev, devErr = startDeployment() })
	if devErr != nil {
		t.Fatalf("wxflow dev: %v", devErr)
	}
	return theDev
}

func startDeployment() (*deployment, error) {
	dir, err := os.MkdirTemp("", "wxflow-client-test-")
	if err != nil {
		return nil, err
	}
	s := stack.Settings{DataDir: dir, HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn",
		WebhookAllowPrivate: true, ExpiryInterval: 200 * time.Millisecond, ReconcilePaymentAfter: 5 * time.Second, ReconcileRefundAfter: 5 * time.Second}
	// The shops' NATS users exist before the server starts.
	for _, shop := range []string{"demo", "other"} {
		if _, err := natsauth.AddShop(natsauth.Dir(dir), shop, []string{"default"}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("WXFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{FreePorts: true, Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.01}}, log)
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, err
	}
	devStop = func() { cancel(); _ = st.Wait(); os.RemoveAll(dir) }
	secret, err := s.ServerSecret()
	if err != nil {
		return nil, err
	}
	otherKey, _, err := stack.EnsureShop(ctx, st.Store, secret, "other", []string{"default"}, filepath.Join(dir, "shops", "other.key"))
	if err != nil {
		return nil, err
	}
	return &deployment{dev: st, settings: s, otherKey: otherKey, merchant: s.MerchantName}, nil
}

// shop is a client of the API as the demo shop.
func (d *deployment) shop(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(d.dev.APIURL, d.dev.ShopKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// other is a client of the API as the shop other.
func (d *deployment) other(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(d.dev.APIURL, d.otherKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// natsConn connects as shop's NATS user, with its seed and inbox prefix.
func (d *deployment) natsConn(t *testing.T, shop string) *nats.Conn {
	t.Helper()
	opts, err := client.ShopNATSOptions(shop, natsauth.SeedFile(natsauth.Dir(d.settings.DataDir), natsauth.Shop(shop)))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(d.dev.NATSURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// simulator plays the payer at the simulator.
func (d *deployment) simulator() *demo.Client {
	return &demo.Client{Base: d.dev.SimURL, HTTP: d.dev.Sim.Client()}
}

// code asks the simulator for an OAuth code ("/sim/oauth/code") or a
// mini-program login code ("/sim/login") of openid.
func (d *deployment) code(t *testing.T, path, openid string) string {
	t.Helper()
	var v struct {
		Code string `json:"code"`
	}
	if err := d.simulator().Do(context.Background(), http.MethodPost, path, map[string]string{"openid": openid}, &v); err != nil {
		t.Fatal(err)
	}
	return v.Code
}

// pay confirms the payment of a signed order at the simulator, as the payer would.
func (d *deployment) pay(t *testing.T, prepayID string) {
	t.Helper()
	if err := d.simulator().Do(context.Background(), http.MethodPost, "/sim/pay", map[string]string{"prepay_id": prepayID}, nil); err != nil {
		t.Fatal(err)
	}
}

// waitOrder polls the order until ok says it is as wanted.
func waitOrder(t *testing.T, c *client.Client, id string, what string, ok func(client.Order) bool) client.OrderView {
	t.Helper()
	var v client.OrderView
	enginetest.WaitFor(t, 60*time.Second, func() error {
		var err error
		if v, err = c.GetOrder(context.Background(), id); err != nil {
			return err
		}
		if !ok(v.Order) {
			return fmt.Errorf("order %s not %s: %s", id, what, v.Order.State)
		}
		return nil
	})
	return v
}

func inState(s client.State) func(client.Order) bool {
	return func(o client.Order) bool { return o.State == s }
}

// key is a fresh Idempotency-Key.
func key(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}
