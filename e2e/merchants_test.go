package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// TestMerchantsDoNotCross runs the dev deployment's five merchants (two
// direct, a provider and its two sub-merchants) through wxflow's API against
// the simulator: partner orders pay and refund under the provider's mchid
// with the right sub_mchid and apps; a notification of one merchant never
// pays another's order; tokens of one app never sign for another; shops see
// and act for their own merchants only; and a merchant broken at load, or
// with a wrong key that loads, fails alone while the others go on.
func TestMerchantsDoNotCross(t *testing.T) {
	d := startMerchants(t)
	t.Run("PartnerOrdersEndToEnd", d.testPartnerOrders)
	t.Run("NotificationsOfAnotherMerchant", d.testForeignNotifications)
	t.Run("TokensPerApp", d.testTokensPerApp)
	t.Run("ShopsActForTheirMerchants", d.testShops)
	t.Run("BrokenAtLoadFailsAlone", d.testBrokenAtLoad)
	t.Run("WrongKeyFailsAlone", d.testWrongKey)
}

// mmDeployment is one wxflow deployment under test and the simulator it
// pays at (its own, or another deployment's).
type mmDeployment struct {
	ctx      context.Context
	apiURL   string // the internal listener: shops
	notify   string // the public listener: WeChat's notifications
	shopKey  string
	store    *engine.Store
	api      *api.Server
	simURL   string
	simHTTP  *http.Client
	sim      *stack.Sim
	settings *stack.Settings
	dataDir  string
}

// startMerchants starts `wxflow dev` with the simulator's dev merchants.
func startMerchants(t *testing.T) *mmDeployment {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "error", AppDomains: "shop.example"}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 5*time.Second, 5*time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stack.StartDev(ctx, s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01}}, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	return &mmDeployment{ctx: ctx, apiURL: st.APIURL, notify: st.PublicURL, shopKey: st.ShopKey, store: st.Store, api: st.API,
		simURL: st.SimURL, simHTTP: st.Sim.Client(), sim: st.Sim, settings: s, dataDir: s.DataDir}
}

// startOnSim starts a second wxflow deployment (its own NATS, SQLite and
// processes, built as `wxflow dev` builds them) whose merchants are read
// from merchantDir but which pays at d's simulator: WeChat keeps the keys
// it was given, the deployment reads whatever its folder says. Its demo
// shop acts for shopMerchants. It stops when the test ends.
func (d *mmDeployment) startOnSim(t *testing.T, merchantDir string, shopMerchants []string) *mmDeployment {
	t.Helper()
	ctx, cancel := context.WithCancel(d.ctx)
	var stops []func()
	t.Cleanup(func() {
		cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &stack.Settings{DataDir: t.TempDir(), MerchantDir: merchantDir, WechatURL: d.simURL, WechatBackupURL: "off",
		WechatCA: filepath.Join(merchantDir, sim.CAFile), LogLevel: "error"}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 5*time.Second, 5*time.Second
	s.RefundGap = 600 * time.Millisecond // the simulator's minute at TimeScale 0.01
	s.PublicRate, s.ShopRate = math.Inf(1), math.Inf(1)
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.HTTPAddr, s.PublicAddr = apiLn.Addr().String(), publicLn.Addr().String()
	s.Resolve()
	ns, err := stack.StartNATS(s, natsembed.Config{Port: -1, ServerName: "mm-second"})
	if err != nil {
		t.Fatal(err)
	}
	stops = append(stops, ns.Stop)
	s.NATSURL = ns.ClientURL()
	c, err := stack.Connect(ctx, s, natsauth.Engine, true, log)
	if err != nil {
		t.Fatal(err)
	}
	stops = append(stops, c.Close)
	apiConns, err := c.As(ctx, s, natsauth.API)
	if err != nil {
		t.Fatal(err)
	}
	stops = append(stops, apiConns.Close)
	workerConns, err := c.As(ctx, s, natsauth.Worker(stack.WorkerAll))
	if err != nil {
		t.Fatal(err)
	}
	stops = append(stops, workerConns.Close)
	wc, err := stack.NewWechatClients(s, c.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := stack.NewEngine(s, c)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.ServerSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := stack.EnsureShop(ctx, c.Store, secret, stack.DemoShop, shopMerchants, stack.ShopKeyFile(s.DataDir, stack.DemoShop))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := stack.NewAPI(s, apiConns, wc)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := stack.NewWorkers(ctx, s, workerConns, wc, stack.WorkerAll, stack.WorkerOptions{BackoffMax: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return eng.Run(gctx) })
	g.Go(func() error { return wk.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, api.Listeners{Public: publicLn, Internal: apiLn}) })
	// Stopped before the connections close (stops run last to first).
	stops = append(stops, func() { cancel(); _ = g.Wait() })
	return &mmDeployment{ctx: ctx, apiURL: "http://" + s.HTTPAddr, notify: s.PublicURL, shopKey: key, store: c.Store, api: srv,
		simURL: d.simURL, simHTTP: d.simHTTP, sim: d.sim, settings: s, dataDir: s.DataDir}
}

// keys are the simulator's merchants and WeChat Pay's keys for them.
func (d *mmDeployment) keys() *sim.Keys { return d.sim.Keys() }

// merchant is a dev merchant as the simulator (and wxflow) loaded it.
func (d *mmDeployment) merchant(t *testing.T, name string) *wechat.Merchant {
	t.Helper()
	reg := d.keys().Registry
	for _, p := range reg.Providers() {
		if p.Name == name {
			return p
		}
	}
	m, err := reg.Merchant(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// appOf is the merchant's own app of kind.
func appOf(t *testing.T, m *wechat.Merchant, kind wechat.AppKind) string {
	t.Helper()
	for _, a := range m.Apps {
		if a.Kind == kind {
			return a.AppID
		}
	}
	t.Fatalf("merchant %s has no %s app", m.Name, kind)
	return ""
}

// do sends one request, without retrying, and returns the status and body.
func do(t *testing.T, ctx context.Context, client *http.Client, method, u, key string, in any, header ...string) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw
}

// shopCall is a request of shop key to the deployment's shop API.
func (d *mmDeployment) shopCall(t *testing.T, key, method, path string, in any) (int, []byte) {
	t.Helper()
	var h []string
	if method == http.MethodPost {
		h = []string{"Idempotency-Key", engine.NewID("mm")}
	}
	return do(t, d.ctx, http.DefaultClient, method, d.apiURL+path, key, in, h...)
}

// simCall is a request to the simulator; out, when not nil, gets its answer.
func (d *mmDeployment) simCall(t *testing.T, path string, in, out any) {
	t.Helper()
	status, raw := do(t, d.ctx, d.simHTTP, http.MethodPost, d.simURL+path, "", in)
	if status != http.StatusOK {
		t.Fatalf("simulator %s %v: HTTP %d: %s", path, in, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// code is a payer's OAuth code (Official Account) or wx.login code
// (mini-program) of app appid, from the simulator.
func (d *mmDeployment) code(t *testing.T, login bool, appid, user string) string {
	t.Helper()
	path := "/sim/oauth/code"
	if login {
		path = "/sim/login"
	}
	var c struct{ Code, AppID string }
	d.simCall(t, path, map[string]string{"appid": appid, "user": user}, &c)
	if c.AppID != appid || c.Code == "" {
		t.Fatalf("simulator code %+v, want one of %s", c, appid)
	}
	return c.Code
}

// create creates an order as the demo shop and returns it.
func (d *mmDeployment) create(t *testing.T, req map[string]any) engine.Order {
	t.Helper()
	req["description"], req["client_ip"] = "merchants e2e", "127.0.0.1"
	if _, ok := req["amount_fen"]; !ok {
		req["amount_fen"] = 1234
	}
	status, raw := d.shopCall(t, d.shopKey, http.MethodPost, "/v1/orders", req)
	if status != http.StatusCreated {
		t.Fatalf("create %v: HTTP %d: %s", req, status, raw)
	}
	var out struct {
		Order engine.Order `json:"order"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Order.ID == "" {
		t.Fatalf("create: %s (%v)", raw, err)
	}
	return out.Order
}

// waitState waits until the order is in want and returns it; an order
// that comes to rest elsewhere fails the test at once.
func (d *mmDeployment) waitState(t *testing.T, id engine.OrderID, want engine.State) engine.Order {
	t.Helper()
	var o engine.Order
	enginetest.WaitFor(t, 60*time.Second, func() error {
		var err error
		if o, err = d.store.Order(d.ctx, id); err != nil {
			return err
		}
		if o.State != want && !o.State.Waiting() && o.State != engine.Notified {
			t.Fatalf("order %s ended %s (flags %v, %s %s), want %s", id, o.State, o.Flags, o.FailCode, o.FailReason, want)
		}
		if o.State != want {
			return fmt.Errorf("order %s is %s, want %s", id, o.State, want)
		}
		return nil
	})
	return o
}

// frontEnd is an order's pay parameters (GET /v1/orders/{id}/pay-params).
type frontEnd struct {
	Bridge         map[string]string `json:"bridge"`
	RequestPayment map[string]string `json:"request_payment"`
}

func (d *mmDeployment) payParams(t *testing.T, id engine.OrderID) frontEnd {
	t.Helper()
	status, raw := d.shopCall(t, d.shopKey, http.MethodGet, "/v1/orders/"+string(id)+"/pay-params", nil)
	if status != http.StatusOK {
		t.Fatalf("pay-params of %s: HTTP %d: %s", id, status, raw)
	}
	var f frontEnd
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// simPay has the payer pay with the front end's parameters in app appid:
// WeChat's client checks the paySign over that app before paying.
func (d *mmDeployment) simPay(t *testing.T, params map[string]string, appid string) {
	t.Helper()
	d.simCall(t, "/sim/pay", map[string]any{"params": params, "appid": appid}, nil)
}

// simOrder is WeChat's record of an order, by out_trade_no.
func (d *mmDeployment) simOrder(t *testing.T, outTradeNo string) sim.State {
	t.Helper()
	var one sim.State
	for _, o := range d.sim.Snapshot().Orders {
		if o.OutTradeNo == outTradeNo {
			one.Orders = append(one.Orders, o)
		}
	}
	if len(one.Orders) != 1 {
		t.Fatalf("WeChat has %d orders %s", len(one.Orders), outTradeNo)
	}
	return one
}

// testPartnerOrders: sub-merchants' orders, in the sub-merchant's own
// mini-program and in the provider's Official Account, v2 and v3, created
// through the API, paid with the pay parameters wxflow signed, refunded.
func (d *mmDeployment) testPartnerOrders(t *testing.T) {
	provider, sub1, sub2 := d.merchant(t, "provider"), d.merchant(t, "provider-sub1"), d.merchant(t, "provider-sub2")
	providerOA, sub1MP := appOf(t, provider, wechat.AppOfficialAccount), appOf(t, sub1, wechat.AppMiniProgram)
	if sub1.MchID != provider.MchID || sub2.MchID != provider.MchID || sub1.SubMchID == sub2.SubMchID || sub1.SubMchID == "" {
		t.Fatalf("dev merchants: provider %s, sub1 %s/%s, sub2 %s/%s", provider.MchID, sub1.MchID, sub1.SubMchID, sub2.MchID, sub2.SubMchID)
	}
	for i, c := range []struct {
		name     string
		merchant *wechat.Merchant
		payAPI   engine.PayAPI
		payApp   string // the app the payer pays in
		login    bool   // a wx.login code (mini-program), else an OAuth code (Official Account)
		subAppID string // WeChat's sub_appid for the order: the payer's app when it is the sub-merchant's
	}{
		{"sub1 mini-program v2", sub1, engine.PayV2, sub1MP, true, sub1MP},
		{"sub1 mini-program v3", sub1, engine.PayV3, sub1MP, true, sub1MP},
		{"sub1 in the provider's OA v3", sub1, engine.PayV3, providerOA, false, ""},
		{"sub1 in the provider's OA v2", sub1, engine.PayV2, providerOA, false, ""},
		{"sub2 (no app) v2", sub2, engine.PayV2, providerOA, false, ""},
		{"sub2 (no app) v3", sub2, engine.PayV3, providerOA, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := map[string]any{"merchant": c.merchant.Name, "pay_api": c.payAPI, "amount_fen": 1000 + i}
			if c.login {
				req["login_code"], req["client"] = d.code(t, true, c.payApp, "partner-payer"), engine.ClientMiniProgram
			} else {
				req["oauth_code"] = d.code(t, false, c.payApp, "partner-payer")
			}
			if i%2 == 0 {
				req["appid"] = c.payApp // named, or left to wxflow: the same app
			}
			o := d.create(t, req)
			if o.Merchant != c.merchant.Name {
				t.Fatalf("order of merchant %s, want %s", o.Merchant, c.merchant.Name)
			}
			o = d.waitState(t, o.ID, engine.Signed)
			if o.AppID != c.payApp {
				t.Errorf("order's app %s, want the payer's %s", o.AppID, c.payApp)
			}
			f := d.payParams(t, o.ID)
			params := f.Bridge
			if c.login {
				params = f.RequestPayment
				if _, has := params["appId"]; has {
					t.Errorf("wx.requestPayment's parameters name an appId: %v", params)
				}
			}
			if f.Bridge["appId"] != c.payApp {
				t.Errorf("pay params' appId %s, want the payer's app %s (sp_appid %s)", f.Bridge["appId"], c.payApp, providerOA)
			}
			d.simPay(t, params, c.payApp)
			o = d.waitState(t, o.ID, engine.Notified)

			w := d.simOrder(t, o.OutTradeNo).Orders[0]
			if w.MchID != provider.MchID || w.SubMchID != c.merchant.SubMchID || w.AppID != providerOA || w.SubAppID != c.subAppID ||
				w.API != string(c.payAPI) || w.State != "SUCCESS" || w.TotalFen != o.AmountFen {
				t.Errorf("WeChat's order: %+v; want mchid %s sub_mchid %s appid %s sub_appid %q, %s, paid %d",
					w, provider.MchID, c.merchant.SubMchID, providerOA, c.subAppID, c.payAPI, o.AmountFen)
			}

			// Test 4: the refund goes to the merchant that took the payment.
			outRefundNo := fmt.Sprintf("MMR%s%d", strings.ToUpper(string(c.payAPI)), 100+i)
			status, raw := d.shopCall(t, d.shopKey, http.MethodPost, "/v1/orders/"+string(o.ID)+"/refunds",
				map[string]any{"amount_fen": o.AmountFen, "out_refund_no": outRefundNo})
			if status != http.StatusCreated && status != http.StatusAccepted && status != http.StatusOK {
				t.Fatalf("refund: HTTP %d: %s", status, raw)
			}
			o = d.waitState(t, o.ID, engine.Refunded)
			if o.RefundedFen != o.AmountFen {
				t.Errorf("refunded %d of %d fen", o.RefundedFen, o.AmountFen)
			}
			var found int
			for _, r := range d.sim.Snapshot().Refunds {
				if r.OutRefundNo != outRefundNo {
					continue
				}
				found++
				if r.MchID != provider.MchID || r.SubMchID != c.merchant.SubMchID || r.OutTradeNo != o.OutTradeNo ||
					r.AppID != providerOA || r.SubAppID != c.subAppID || r.RefundFen != o.AmountFen || r.Status != "SUCCESS" {
					t.Errorf("WeChat's refund %+v; want mchid %s sub_mchid %s of %s", r, provider.MchID, c.merchant.SubMchID, o.OutTradeNo)
				}
			}
			if found != 1 {
				t.Errorf("WeChat has %d refunds %s", found, outRefundNo)
			}
		})
	}

	// A direct merchant's refund names its own mchid, no sub_mchid.
	second := d.merchant(t, "second")
	o := d.create(t, map[string]any{"merchant": "second", "pay_api": engine.PayV3, "oauth_code": d.code(t, false, appOf(t, second, wechat.AppOfficialAccount), "direct-payer")})
	o = d.waitState(t, o.ID, engine.Signed)
	d.simPay(t, d.payParams(t, o.ID).Bridge, o.AppID)
	o = d.waitState(t, o.ID, engine.Notified)
	if status, raw := d.shopCall(t, d.shopKey, http.MethodPost, "/v1/orders/"+string(o.ID)+"/refunds",
		map[string]any{"amount_fen": 200, "out_refund_no": "MMR-SECOND-1"}); status >= 300 {
		t.Fatalf("refund: HTTP %d: %s", status, raw)
	}
	d.waitState(t, o.ID, engine.Refunded)
	for _, r := range d.sim.Snapshot().Refunds {
		if r.OutRefundNo == "MMR-SECOND-1" && (r.MchID != second.MchID || r.SubMchID != "" || r.OutTradeNo != o.OutTradeNo) {
			t.Errorf("WeChat's refund %+v; want mchid %s", r, second.MchID)
		}
	}
}

// notice is one crafted notification and where it goes.
type notice struct {
	name     string
	merchant string // the URL's merchant
	api      string // v2 or v3
	body     []byte
	header   http.Header
	order    engine.Order // the order it is about
	want     api.Refusal
}

// v2PayNotice is a v2 payment notification of order o with fields, signed
// with apiKey (MD5): WeChat's own when apiKey is the order's merchant's.
func v2PayNotice(o engine.Order, fields map[string]string, apiKey string) []byte {
	p := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "nonce_str": v2.NonceStr(),
		"out_trade_no": o.OutTradeNo, "total_fee": strconv.FormatInt(o.AmountFen, 10), "cash_fee": strconv.FormatInt(o.AmountFen, 10),
		"fee_type": "CNY", "trade_type": "JSAPI", "bank_type": "OTHERS", "is_subscribe": "N", "openid": o.OpenID,
		"transaction_id": "4200" + time.Now().Format("20060102") + strconv.FormatInt(time.Now().UnixNano()%1e10, 10), "time_end": v2.FormatTime(time.Now())}
	for k, v := range fields {
		p[k] = v
	}
	p["sign"] = v2.Sign(p, apiKey, v2.SignMD5)
	return v2.EncodeXML(p)
}

// v3PayNotice is a v3 payment notification whose resource is transaction
// (encrypted with apiV3Key), signed by WeChat Pay key wxKey named serial.
func v3PayNotice(t *testing.T, transaction map[string]any, apiV3Key string, wxKey *rsa.PrivateKey, serial string) ([]byte, http.Header) {
	t.Helper()
	plain, _ := json.Marshal(transaction)
	res, err := v3.EncryptResource(apiV3Key, v3.NonceStr()[:12], "transaction", "transaction", plain)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(v3.Notification{ID: "EV-" + v3.NonceStr()[:12], CreateTime: time.Now().Format(time.RFC3339),
		EventType: "TRANSACTION.SUCCESS", ResourceType: "encrypt-resource", Summary: "支付成功", Resource: res})
	h, err := v3.SignResponseHeaders(wxKey, serial, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Content-Type", "application/json")
	return body, h
}

// v3Transaction is WeChat's v3 transaction of order o: direct when sub is
// empty, else the partner shape under spMchID and spAppID.
func v3Transaction(o engine.Order, mchid, appid, sub, subAppID string) map[string]any {
	t := map[string]any{"out_trade_no": o.OutTradeNo, "transaction_id": "4200" + time.Now().Format("20060102") + strconv.FormatInt(time.Now().UnixNano()%1e10, 10),
		"trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
		"success_time": time.Now().Format(time.RFC3339), "amount": map[string]any{"total": o.AmountFen, "payer_total": o.AmountFen, "currency": "CNY"}}
	if sub == "" {
		t["appid"], t["mchid"], t["payer"] = appid, mchid, map[string]string{"openid": o.OpenID}
		return t
	}
	t["sp_appid"], t["sp_mchid"], t["sub_mchid"] = appid, mchid, sub
	payer := map[string]string{"sp_openid": o.OpenID}
	if subAppID != "" {
		t["sub_appid"] = subAppID
		payer = map[string]string{"sub_openid": o.OpenID}
	}
	t["payer"] = payer
	return t
}

// testForeignNotifications: an order of merchant A is never paid by a
// notification posted to merchant B's URL, signed with B's keys, or naming
// another sub-merchant of the same provider.
func (d *mmDeployment) testForeignNotifications(t *testing.T) {
	k := d.keys()
	def, second := d.merchant(t, "default"), d.merchant(t, "second")
	provider, sub1, sub2 := d.merchant(t, "provider"), d.merchant(t, "provider-sub1"), d.merchant(t, "provider-sub2")
	providerOA, defOA := appOf(t, provider, wechat.AppOfficialAccount), appOf(t, def, wechat.AppOfficialAccount)
	secondOA := appOf(t, second, wechat.AppOfficialAccount)
	wxKey := func(m *wechat.Merchant) *rsa.PrivateKey { return k.WechatPayKeys[m.MchID] }

	// Real orders, signed and unpaid: default's and sub1's, each in v2 and v3.
	orderOf := func(merchant string, payAPI engine.PayAPI, appid string) engine.Order {
		o := d.create(t, map[string]any{"merchant": merchant, "pay_api": payAPI, "oauth_code": d.code(t, false, appid, "victim")})
		return d.waitState(t, o.ID, engine.Signed)
	}
	aV2, aV3 := orderOf("default", engine.PayV2, defOA), orderOf("default", engine.PayV3, defOA)
	s1V2, s1V3 := orderOf("provider-sub1", engine.PayV2, providerOA), orderOf("provider-sub1", engine.PayV3, providerOA)

	v2Direct := func(o engine.Order, m *wechat.Merchant, appid string) []byte {
		return v2PayNotice(o, map[string]string{"appid": appid, "mch_id": m.MchID}, string(m.APIKey))
	}
	v2Partner := func(o engine.Order, subMchID string) []byte {
		return v2PayNotice(o, map[string]string{"appid": providerOA, "mch_id": provider.MchID, "sub_mch_id": subMchID}, string(provider.APIKey))
	}
	v3Direct := func(o engine.Order, m *wechat.Merchant, appid string) ([]byte, http.Header) {
		return v3PayNotice(t, v3Transaction(o, m.MchID, appid, "", ""), string(m.APIv3Key), wxKey(m), m.WechatPayPublicKeyID)
	}
	v3Partner := func(o engine.Order, subMchID string) ([]byte, http.Header) {
		return v3PayNotice(t, v3Transaction(o, provider.MchID, providerOA, subMchID, ""), string(provider.APIv3Key), wxKey(provider), provider.WechatPayPublicKeyID)
	}
	with := func(n notice) func([]byte, http.Header) notice {
		return func(body []byte, h http.Header) notice { n.body, n.header = body, h; return n }
	}
	xml := http.Header{"Content-Type": {"text/xml"}}

	cases := []notice{
		// A's genuine notification, posted to B's URL: B's keys do not verify it.
		{name: "default's genuine v2 to second's URL", merchant: "second", api: "v2", body: v2Direct(aV2, def, defOA), header: xml, order: aV2, want: api.RefusedSignature},
		with(notice{name: "default's genuine v3 to second's URL", merchant: "second", api: "v3", order: aV3, want: api.RefusedSignature})(v3Direct(aV3, def, defOA)),
		// Signed with B's keys, about A's order, to A's URL.
		{name: "v2 signed with second's key to default's URL", merchant: "default", api: "v2", body: v2PayNotice(aV2, map[string]string{"appid": defOA, "mch_id": def.MchID}, string(second.APIKey)), header: xml, order: aV2, want: api.RefusedSignature},
		with(notice{name: "v3 signed and sealed with second's keys to default's URL", merchant: "default", api: "v3", order: aV3, want: api.RefusedSignature})(v3PayNotice(t, v3Transaction(aV3, def.MchID, defOA, "", ""), string(second.APIv3Key), wxKey(second), second.WechatPayPublicKeyID)),
		// B's genuine notification naming A's out_trade_no, to B's URL: B has no such order.
		{name: "second's genuine v2 naming default's order to second's URL", merchant: "second", api: "v2", body: v2Direct(aV2, second, secondOA), header: xml, order: aV2, want: api.RefusedUnknownOrder},
		with(notice{name: "second's genuine v3 naming default's order to second's URL", merchant: "second", api: "v3", order: aV3, want: api.RefusedUnknownOrder})(v3Direct(aV3, second, secondOA)),
		// sub1's genuine notification (the provider's signature verifies at
		// sub2 too) posted to sub2's URL.
		{name: "sub1's genuine v2 to sub2's URL", merchant: "provider-sub2", api: "v2", body: v2Partner(s1V2, sub1.SubMchID), header: xml, order: s1V2, want: api.RefusedForeign},
		with(notice{name: "sub1's genuine v3 to sub2's URL", merchant: "provider-sub2", api: "v3", order: s1V3, want: api.RefusedForeign})(v3Partner(s1V3, sub1.SubMchID)),
		// A notification of sub1's order naming sub2's sub_mchid, to sub1's URL.
		{name: "v2 of sub1's order naming sub2, to sub1's URL", merchant: "provider-sub1", api: "v2", body: v2Partner(s1V2, sub2.SubMchID), header: xml, order: s1V2, want: api.RefusedForeign},
		with(notice{name: "v3 of sub1's order naming sub2, to sub1's URL", merchant: "provider-sub1", api: "v3", order: s1V3, want: api.RefusedForeign})(v3Partner(s1V3, sub2.SubMchID)),
		// …and naming sub2 to sub2's URL: sub2 has no such order.
		{name: "v2 of sub1's order naming sub2, to sub2's URL", merchant: "provider-sub2", api: "v2", body: v2Partner(s1V2, sub2.SubMchID), header: xml, order: s1V2, want: api.RefusedUnknownOrder},
		with(notice{name: "v3 of sub1's order naming sub2, to sub2's URL", merchant: "provider-sub2", api: "v3", order: s1V3, want: api.RefusedUnknownOrder})(v3Partner(s1V3, sub2.SubMchID)),
		// A direct merchant's genuine notification to a sub-merchant's URL.
		with(notice{name: "default's genuine v3 to sub1's URL", merchant: "provider-sub1", api: "v3", order: aV3, want: api.RefusedSignature})(v3Direct(aV3, def, defOA)),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := refusals(d.api)
			status, reply := post(t, d.ctx, d.notify+"/wechat/notify/"+c.merchant+"/"+c.api+"/pay", c.body, c.header)
			if c.api == "v3" && status < 300 || c.api == "v2" && !bytes.Contains(reply, []byte("<return_code><![CDATA[FAIL]]>")) {
				t.Errorf("accepted: HTTP %d %s", status, reply)
			}
			after := refusals(d.api)
			for r := range after {
				want := int64(0)
				if api.Refusal(r) == c.want {
					want = 1
				}
				if got := after[r] - before[r]; got != want {
					t.Errorf("refused as %s %d times, want %d (reply %s)", api.Refusal(r), got, want, reply)
				}
			}
		})
	}

	// Nothing happened to the orders: still signed, nothing of WeChat's in
	// their histories, unpaid at WeChat. Then the payer pays, and each is
	// paid once, by WeChat's own notification.
	for _, o := range []engine.Order{aV2, aV3, s1V2, s1V3} {
		got, err := d.store.Order(d.ctx, o.ID)
		if err != nil || got.State != engine.Signed || got.PaidFen != 0 {
			t.Errorf("order %s after the forged notifications: %s, %d fen paid (%v)", o.ID, got.State, got.PaidFen, err)
		}
		h, _ := d.store.History(d.ctx, o.ID)
		for _, e := range h {
			if e.Actor == "wechat:notify" || e.Type == string(engine.EventNotified) {
				t.Errorf("order %s: %+v in its history", o.ID, e)
			}
		}
		if w := d.simOrder(t, o.OutTradeNo).Orders[0]; w.State != "NOTPAY" {
			t.Errorf("WeChat's order %s is %s", o.OutTradeNo, w.State)
		}
		d.simPay(t, d.payParams(t, o.ID).Bridge, o.AppID)
		paid := d.waitState(t, o.ID, engine.Notified)
		h, _ = d.store.History(d.ctx, o.ID)
		notified := 0
		for _, e := range h {
			if e.Applied && e.Type == string(engine.EventNotified) {
				notified++
			}
		}
		if w := d.simOrder(t, o.OutTradeNo).Orders[0]; notified != 1 || paid.TransactionID != w.TransactionID {
			t.Errorf("order %s: %d notified events, transaction %s, WeChat's %s", o.ID, notified, paid.TransactionID, w.TransactionID)
		}
	}
}

// refusals reads the API's refused-notification counters by reason.
func refusals(s *api.Server) []int64 {
	var out []int64
	for i := range s.Counters.NotificationsRefused {
		out = append(out, s.Counters.NotificationsRefused[i].Load())
	}
	return out
}

// post sends one notification and returns the status and body.
func post(t *testing.T, ctx context.Context, u string, body []byte, h http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// testTokensPerApp: the JS-SDK config of each Official Account is signed
// with that app's own jsapi_ticket, which WeChat issued for it, and the
// shared tokens are kept per appid.
func (d *mmDeployment) testTokensPerApp(t *testing.T) {
	def, second, provider := d.merchant(t, "default"), d.merchant(t, "second"), d.merchant(t, "provider")
	apps := map[string]string{"default": appOf(t, def, wechat.AppOfficialAccount), "second": appOf(t, second, wechat.AppOfficialAccount),
		"provider-sub2": appOf(t, provider, wechat.AppOfficialAccount)}
	page := "https://shop.example/pay?order=7"
	nc, js := connectAs(t, d.settings, natsauth.Monitor)
	defer nc.Close()

	configs := map[string]mp.JSSDKConfig{}
	tickets := map[string]string{}
	for merchant, appid := range apps {
		var cfg mp.JSSDKConfig
		enginetest.WaitFor(t, 30*time.Second, func() error { // the tokens worker fetches each app's ticket at start
			status, raw := d.shopCall(t, d.shopKey, http.MethodGet, "/v1/jssdk/config?merchant="+merchant+"&appid="+appid+"&url="+url.QueryEscape(page+"#top"), nil)
			if status != http.StatusOK {
				return fmt.Errorf("jssdk config of %s: HTTP %d: %s", merchant, status, raw)
			}
			return json.Unmarshal(raw, &cfg)
		})
		if cfg.AppID != appid {
			t.Fatalf("config of %s is for app %s, want %s", merchant, cfg.AppID, appid)
		}
		ticket, err := (&tokens.Reader{AppID: appid, NC: nc, JS: js}).JSAPITicket(d.ctx)
		if err != nil {
			t.Fatal(err)
		}
		configs[merchant], tickets[merchant] = cfg, ticket
	}
	// Each app's ticket is its own.
	seen := map[string]string{}
	for merchant, ticket := range tickets {
		if other, dup := seen[ticket]; dup {
			t.Errorf("%s and %s share a jsapi_ticket", merchant, other)
		}
		seen[ticket] = merchant
	}
	// WeChat's client (the simulator's preVerifyJSAPI, over the tickets it
	// issued per app) accepts each config in its own app and in no other;
	// the signature is over that app's ticket alone.
	for merchant, cfg := range configs {
		for other, appid := range apps {
			var a sim.BridgeAnswer
			d.simCall(t, "/sim/jsbridge/invoke", map[string]any{"name": "preVerifyJSAPI", "url": page, "params": map[string]any{
				"verifyAppId": appid, "verifyTimestamp": strconv.FormatInt(cfg.Timestamp, 10), "verifyNonceStr": cfg.NonceStr,
				"verifySignature": cfg.Signature}}, &a)
			if ok := a.ErrMsg == "preVerifyJSAPI:ok"; ok != (other == merchant) {
				t.Errorf("%s's wx.config presented as app %s (%s's): %s %s", merchant, appid, other, a.ErrMsg, a.ErrDesc)
			}
			if match := cfg.Signature == mp.JSSDKSignature(tickets[other], cfg.NonceStr, cfg.Timestamp, page); match != (other == merchant) {
				t.Errorf("%s's signature matches %s's ticket: %v", merchant, other, match)
			}
		}
	}
	// The shared tokens are keyed by appid: one access_token and one
	// jsapi_ticket per app.
	kv, err := js.KeyValue(d.ctx, engine.TokenBucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(d.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for key := range lister.Keys() {
		keys = append(keys, key)
	}
	for _, appid := range apps {
		for _, want := range []string{"access_token." + appid, "jsapi_ticket." + appid} {
			if !slices.Contains(keys, want) {
				t.Errorf("token bucket lacks %s: %v", want, keys)
			}
		}
	}
	for _, key := range keys {
		_, appid, _ := strings.Cut(key, ".")
		if !slices.ContainsFunc(d.keys().Registry.Apps(), func(a wechat.App) bool { return a.AppID == appid }) {
			t.Errorf("token bucket key %s is not per app", key)
		}
	}
}

// problem is the API's error body.
type problem struct {
	Error struct {
		Code     string        `json:"code"`
		Reason   string        `json:"reason"`
		Problems []api.Problem `json:"problems"`
	} `json:"error"`
}

func readProblem(t *testing.T, raw []byte) problem {
	t.Helper()
	var p problem
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	return p
}

// testShops: a shop acts for its merchants only, must name one when it has
// several, and may name only an app of the merchant, of the payer's kind.
func (d *mmDeployment) testShops(t *testing.T) {
	secret, err := d.settings.ServerSecret()
	if err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	shop := func(name string, merchants ...string) string {
		key, _, err := stack.EnsureShop(d.ctx, d.store, secret, name, merchants, filepath.Join(keyDir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	secondOnly, two := shop("second-only", "second"), shop("two-merchants", "second", "provider-sub2")
	def, second := d.merchant(t, "default"), d.merchant(t, "second")
	defOA, defMP, secondOA := appOf(t, def, wechat.AppOfficialAccount), appOf(t, def, wechat.AppMiniProgram), appOf(t, second, wechat.AppOfficialAccount)
	defOrder := d.create(t, map[string]any{"merchant": "default", "pay_api": engine.PayV3, "openid": "oMM-default-payer"})
	defOrder = d.waitState(t, defOrder.ID, engine.Signed)

	base := func() map[string]any {
		return map[string]any{"amount_fen": 100, "description": "shops", "pay_api": "v3", "openid": "oMM-shop-payer", "client_ip": "127.0.0.1"}
	}
	with := func(kv ...any) map[string]any {
		m := base()
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		key    string
		req    map[string]any
		status int
		code   string // the error's code
		field  string // the problem's field, for a 422
	}{
		{"second-only creates for default", secondOnly, with("merchant", "default"), http.StatusForbidden, "merchant_not_allowed", ""},
		{"second-only creates for provider-sub1", secondOnly, with("merchant", "provider-sub1"), http.StatusForbidden, "merchant_not_allowed", ""},
		{"two merchants, none named", two, base(), http.StatusUnprocessableEntity, "", "merchant"},
		{"a merchant not of this deployment", d.shopKey, with("merchant", "nosuch"), http.StatusForbidden, "merchant_not_allowed", ""},
		{"another merchant's appid", d.shopKey, with("merchant", "second", "appid", defOA), http.StatusUnprocessableEntity, "", "appid"},
		{"a direct merchant's appid for a sub-merchant", d.shopKey, with("merchant", "provider-sub1", "appid", secondOA), http.StatusUnprocessableEntity, "", "appid"},
		{"a login_code with an OA appid", d.shopKey, with("merchant", "default", "appid", defOA, "openid", nil, "login_code", "SIMCODEnotspent"), http.StatusUnprocessableEntity, "", "appid"},
		{"an oauth_code with a mini-program appid", d.shopKey, with("merchant", "default", "appid", defMP, "openid", nil, "oauth_code", "SIMCODEnotspent"), http.StatusUnprocessableEntity, "", "appid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.req {
				if v == nil {
					delete(c.req, k)
				}
			}
			status, raw := d.shopCall(t, c.key, http.MethodPost, "/v1/orders", c.req)
			if status != c.status {
				t.Fatalf("HTTP %d, want %d: %s", status, c.status, raw)
			}
			p := readProblem(t, raw)
			if c.code != "" && p.Error.Code != c.code {
				t.Errorf("code %s, want %s: %s", p.Error.Code, c.code, raw)
			}
			if c.field != "" && !slices.ContainsFunc(p.Error.Problems, func(q api.Problem) bool { return q.Field == c.field }) {
				t.Errorf("no problem on %s: %s", c.field, raw)
			}
		})
	}

	// second-only cannot see, pay, refund nor close default's order.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v1/orders/" + string(defOrder.ID)},
		{http.MethodGet, "/v1/orders/" + string(defOrder.ID) + "/pay-params"},
		{http.MethodGet, "/v1/orders/" + string(defOrder.ID) + "/refunds"},
		{http.MethodPost, "/v1/orders/" + string(defOrder.ID) + "/refunds"},
		{http.MethodPost, "/v1/orders/" + string(defOrder.ID) + "/close"},
	} {
		var in any
		if c.method == http.MethodPost {
			in = map[string]any{"amount_fen": 1}
		}
		if status, raw := d.shopCall(t, secondOnly, c.method, c.path, in); status != http.StatusNotFound {
			t.Errorf("second-only %s %s: HTTP %d, want 404: %s", c.method, c.path, status, raw)
		}
	}
	if got, _ := d.store.Order(d.ctx, defOrder.ID); got.State != engine.Signed {
		t.Errorf("default's order is %s after second-only's tries", got.State)
	}
	// …and its own orders are second's, by default.
	status, raw := d.shopCall(t, secondOnly, http.MethodPost, "/v1/orders", base())
	var out struct {
		Order engine.Order `json:"order"`
	}
	if status != http.StatusCreated || json.Unmarshal(raw, &out) != nil || out.Order.Merchant != "second" || out.Order.AppID != secondOA {
		t.Errorf("second-only's order: HTTP %d %s", status, raw)
	}
}

// copyMerchants copies the merchant folder of d (its <data>/sim) to a new
// folder, for a deployment whose configuration is then broken on purpose.
func (d *mmDeployment) copyMerchants(t *testing.T) string {
	t.Helper()
	src, dst := filepath.Join(d.dataDir, "sim"), filepath.Join(t.TempDir(), "merchants")
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !strings.HasSuffix(p, ".pem") && !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".p12") {
			return nil // the simulator's ledger
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// payDefault pays an order of default's through the API and the simulator.
func (d *mmDeployment) payDefault(t *testing.T, payAPI engine.PayAPI) engine.Order {
	t.Helper()
	o := d.create(t, map[string]any{"merchant": "default", "pay_api": payAPI, "openid": "oMM-default-" + string(payAPI)})
	o = d.waitState(t, o.ID, engine.Signed)
	d.simPay(t, d.payParams(t, o.ID).Bridge, o.AppID)
	return d.waitState(t, o.ID, engine.Notified)
}

// testBrokenAtLoad: a deployment whose `second` lost its private key
// refuses second's orders (503 merchant_unavailable) and pays default's.
func (d *mmDeployment) testBrokenAtLoad(t *testing.T) {
	dir := d.copyMerchants(t)
	if err := os.Remove(filepath.Join(dir, "second", wechat.PrivateKeyFile)); err != nil {
		t.Fatal(err)
	}
	b := d.startOnSim(t, dir, []string{"default", "second", "provider-sub1", "provider-sub2"})
	for _, payAPI := range []engine.PayAPI{engine.PayV2, engine.PayV3} {
		status, raw := b.shopCall(t, b.shopKey, http.MethodPost, "/v1/orders", map[string]any{"merchant": "second", "amount_fen": 100,
			"description": "broken", "pay_api": payAPI, "openid": "oMM-broken", "client_ip": "127.0.0.1"})
		if p := readProblem(t, raw); status != http.StatusServiceUnavailable || p.Error.Code != "merchant_unavailable" {
			t.Errorf("order for broken second: HTTP %d %s, want 503 merchant_unavailable", status, raw)
		}
		if strings.Contains(string(raw), wechat.PrivateKeyFile) || strings.Contains(string(raw), dir) {
			t.Errorf("the answer names the merchant's files: %s", raw)
		}
	}
	if orders, _ := b.store.Orders(b.ctx, engine.OrderFilter{Limit: 100}); len(orders) != 0 {
		t.Errorf("%d orders stored for a broken merchant", len(orders))
	}
	b.payDefault(t, engine.PayV2)
	b.payDefault(t, engine.PayV3)
	// Sub-merchants of the provider, untouched, go on too.
	provider := d.merchant(t, "provider")
	o := b.create(t, map[string]any{"merchant": "provider-sub2", "pay_api": engine.PayV3, "oauth_code": d.code(t, false, appOf(t, provider, wechat.AppOfficialAccount), "broken-run")})
	o = b.waitState(t, o.ID, engine.Signed)
	b.simPay(t, b.payParams(t, o.ID).Bridge, o.AppID)
	b.waitState(t, o.ID, engine.Notified)
}

// testWrongKey: a deployment whose `second` has a wrong API v2 key and a
// wrong private key and certificate (they load, but are not what WeChat
// holds) fails second's v2 and v3 orders with the flag merchant_misconfigured, while default's orders in the same
// run are paid.
func (d *mmDeployment) testWrongKey(t *testing.T) {
	dir := d.copyMerchants(t)
	mj := filepath.Join(dir, "second", wechat.MerchantFile)
	raw, err := os.ReadFile(mj)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["api_key"] = strings.Repeat("K", 32)
	raw, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(mj, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// …and a private key and certificate that go together, with the
	// certificate serial WeChat knows, but not the pair WeChat holds.
	serial, ok := new(big.Int).SetString(cfg["merchant_serial_no"].(string), 16)
	if !ok {
		t.Fatalf("merchant_serial_no %v", cfg["merchant_serial_no"])
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cfg["mchid"].(string)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, block := range map[string]*pem.Block{wechat.PrivateKeyFile: {Type: "PRIVATE KEY", Bytes: pk}, wechat.CertificateFile: {Type: "CERTIFICATE", Bytes: der}} {
		if err := os.WriteFile(filepath.Join(dir, "second", name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := d.startOnSim(t, dir, []string{"default", "second"})

	var broken []engine.Order
	for _, payAPI := range []engine.PayAPI{engine.PayV2, engine.PayV3, engine.PayV2, engine.PayV3} {
		broken = append(broken, b.create(t, map[string]any{"merchant": "second", "pay_api": payAPI, "openid": "oMM-wrongkey"}))
	}
	var good []engine.Order
	for _, payAPI := range []engine.PayAPI{engine.PayV2, engine.PayV3, engine.PayV2} {
		good = append(good, b.payDefault(t, payAPI))
	}
	for _, o := range broken {
		o = b.waitState(t, o.ID, engine.Failed)
		if !o.Flags.Has(workers.FlagMerchantMisconfigured) {
			t.Errorf("second's order %s failed with flags %v (%s: %s), want %s", o.ID, o.Flags, o.FailCode, o.FailReason, workers.FlagMerchantMisconfigured)
		}
	}
	for _, o := range good {
		if got, _ := b.store.Order(b.ctx, o.ID); got.State != engine.Notified || len(got.Flags) != 0 {
			t.Errorf("default's order %s: %s %v", o.ID, got.State, got.Flags)
		}
	}
}
