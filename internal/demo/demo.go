// Package demo drives orders through a running wxflow and its WeChat
// simulator as a shop and its payers would, over HTTP only: every scenario
// of the lifecycle, mixed v2/v3, JSAPI/mini-program, openid/OAuth code/login
// code. It then compares WeChat's books (the simulator's) with wxflow's.
// `wxflow dev --demo`, `wxflow demo` and the end-to-end tests run it.
package demo

import (
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// Scenario is one path an order of the demo takes.
type Scenario string

// The demo's scenarios, and the state each order must end in.
const (
	ScenarioPay        Scenario = "pay"         // paid → notified
	ScenarioRefundPart Scenario = "refund-part" // paid, a third refunded → refunded
	ScenarioRefundFull Scenario = "refund-full" // paid, all refunded → refunded
	ScenarioExpire     Scenario = "expire"      // never paid, expires → closed
	ScenarioClose      Scenario = "close"       // shop closes it before payment → closed
	ScenarioPayFail    Scenario = "pay-fail"    // the payer's bank refuses, then it expires → closed
)

var scenarios = []Scenario{ScenarioPay, ScenarioRefundPart, ScenarioRefundFull, ScenarioPay, ScenarioExpire, ScenarioClose, ScenarioPayFail}

// WantState is where an order of the scenario must end.
func (s Scenario) WantState() engine.State {
	switch s {
	case ScenarioPay:
		return engine.Notified
	case ScenarioRefundPart, ScenarioRefundFull:
		return engine.Refunded
	}
	return engine.Closed
}

// Config says where the demo finds wxflow's API and the simulator.
type Config struct {
	Orders      int
	Concurrency int
	APIURL      string       // wxflow's shop API (its internal listener)
	NotifyURL   string       // wxflow's public listener, where forged notifications go; APIURL when empty
	ShopKey     string       // the shop's API key, sent on every request to APIURL
	SimURL      string       // the simulator (payer, login and OAuth codes)
	SimClient   *http.Client // trusts the simulator's CA
	Timeout     time.Duration
	// Forge posts forged payment notifications for every order before its
	// payer pays (they must all be refused); Merchant names the notify URLs.
	Forge    bool
	Merchant string
	// Registry, when set, lists the merchants the demo spreads its orders
	// over, round-robin over every lane (Lanes: merchant, app, payer kind);
	// nil puts every order on the default merchant and its default apps.
	Registry *wechat.Registry
	// WechatPayKeys are WeChat Pay's signing keys by mchid (the simulator's,
	// sim.Keys.WechatPayKeys): with them the forged v3 notifications of
	// another merchant carry a valid signature. Optional.
	WechatPayKeys map[string]*rsa.PrivateKey
	// Events, when set, is read whole after the run: every event of a demo
	// order must be on wxflow.evt.<its merchant>.… (AuditCrossings).
	Events jetstream.JetStream

	lanes []Lane
}

// Result is one order's outcome.
type Result struct {
	N              int
	Scenario       Scenario
	PayAPI         engine.PayAPI
	Client         engine.Client
	Auth           string
	Lane           *Lane // nil when the demo has no registry
	OutTradeNo     string
	OutRefundNos   []string
	OrderID        engine.OrderID
	Want, Got      engine.State
	AmountFen      int64
	RefundedFen    int64
	NewCodes       int // orders given up because WeChat spent their code with the answer lost
	Forged         int // forged notifications posted for this order
	ForgedAccepted int // … that wxflow answered as accepted (must be 0)
	Err            error
}

// OK says whether the order ended where it should, without error.
func (r Result) OK() bool { return r.Err == nil && r.Want == r.Got }

// OrderView is the API's answer to GET /v1/orders/{id}.
type OrderView struct {
	Order   engine.Order    `json:"order"`
	Refunds []engine.Refund `json:"refunds"`
}

// Run drives cfg.Orders orders through every scenario, mixed v2/v3 and
// JSAPI/mini-program, and returns one result per order.
func Run(ctx context.Context, cfg Config) []Result {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Registry != nil {
		cfg.lanes = Lanes(cfg.Registry)
	}
	results := make([]Result, cfg.Orders)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				results[i] = runOne(ctx, cfg, i)
			}
		})
	}
	for i := range cfg.Orders {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

func runOne(ctx context.Context, cfg Config, i int) Result {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := Result{
		N:         i,
		Scenario:  scenarios[i%len(scenarios)],
		PayAPI:    []engine.PayAPI{engine.PayV2, engine.PayV3}[i%2],
		Client:    []engine.Client{engine.ClientJSAPI, engine.ClientMiniProgram}[(i/2)%2],
		AmountFen: int64(100 + (i*37)%9900),
	}
	if n := len(cfg.lanes); n > 0 {
		// Lanes round-robin; each lane meets both pay APIs in turn (and,
		// with 7 scenarios, every scenario).
		l := cfg.lanes[i%n]
		r.Lane, r.Client, r.PayAPI = &l, l.Client(), []engine.PayAPI{engine.PayV2, engine.PayV3}[(i/n)%2]
	}
	r.Want = r.Scenario.WantState()
	r.Err = drive(ctx, cfg, &r)
	// WeChat spent the code but its answer was lost (a chaos run): the code
	// cannot be exchanged again (40163), the order failed before any money
	// moved, and the front end sends the payer through OAuth once more, which
	// makes a new order.
	for r.Err != nil && r.Got == engine.Failed && strings.Contains(r.Err.Error(), "40163") && r.NewCodes < 3 {
		r.NewCodes++
		r.Err = drive(ctx, cfg, &r)
	}
	return r
}

func drive(ctx context.Context, cfg Config, r *Result) error {
	api := &Client{Base: cfg.APIURL, HTTP: http.DefaultClient, Key: cfg.ShopKey}
	sim := &Client{Base: cfg.SimURL, HTTP: cfg.SimClient}
	openid := fmt.Sprintf("oDEMO-%06d-payer", r.N)
	req := map[string]any{
		"amount_fen":  r.AmountFen,
		"description": fmt.Sprintf("wxflow demo #%d", r.N),
		"pay_api":     r.PayAPI,
		"client":      r.Client,
		"client_ip":   "127.0.0.1",
	}
	req["expires_in_seconds"] = 600
	if r.Scenario == ScenarioExpire || r.Scenario == ScenarioPayFail {
		req["expires_in_seconds"] = 3
	}
	// Every third order comes with an openid; the others with the code the
	// front end would have: an OAuth code on the Official Account page, a
	// wx.login code in the mini-program.
	if r.Lane != nil {
		req["merchant"], req["appid"] = r.Lane.Merchant, r.Lane.AppID
		if err := laneAuth(ctx, sim, r, req); err != nil {
			return err
		}
	}
	switch {
	case r.Lane != nil:
	case r.N%3 == 0:
		r.Auth, req["openid"] = "openid", openid
	case r.Client == engine.ClientMiniProgram:
		var code struct{ Code string }
		if err := sim.Do(ctx, http.MethodPost, "/sim/login", map[string]string{"openid": openid}, &code); err != nil {
			return fmt.Errorf("sim login: %w", err)
		}
		r.Auth, req["login_code"] = "login_code", code.Code
	default:
		var code struct{ Code string }
		if err := sim.Do(ctx, http.MethodPost, "/sim/oauth/code", map[string]string{"openid": openid}, &code); err != nil {
			return fmt.Errorf("sim oauth code: %w", err)
		}
		r.Auth, req["oauth_code"] = "oauth_code", code.Code
	}
	var created struct {
		Order engine.Order `json:"order"`
	}
	if err := api.DoHeader(ctx, http.MethodPost, "/v1/orders", req, &created,
		"Idempotency-Key", fmt.Sprintf("demo-%d-%d", time.Now().UnixNano(), r.N)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	r.OrderID, r.OutTradeNo = created.Order.ID, created.Order.OutTradeNo
	if r.OrderID == "" {
		return errors.New("create: no order id in the answer")
	}
	final := func() error {
		v, err := WaitState(ctx, api, r.OrderID, r.Want)
		r.Got, r.RefundedFen = v.Order.State, v.Order.RefundedFen
		return err
	}
	if r.Scenario == ScenarioExpire {
		return final()
	}
	v, err := WaitState(ctx, api, r.OrderID, engine.Signed)
	r.Got = v.Order.State
	if r.Scenario == ScenarioPayFail && r.Got == engine.Closed {
		return nil // it expired (3 s) before the payer came: on a slow run, the same end
	}
	if err != nil {
		return err
	}
	if cfg.Forge {
		notifyURL := cmp.Or(cfg.NotifyURL, cfg.APIURL)
		merchant := cmp.Or(cfg.Merchant, "default")
		if r.Lane != nil {
			merchant = r.Lane.Merchant
		}
		sent, accepted := forge(ctx, notifyURL, merchant, v.Order)
		r.Forged += sent
		r.ForgedAccepted += accepted
		if r.Lane != nil {
			sent, accepted = forgeCross(ctx, cfg, notifyURL, *r.Lane, v.Order)
			r.Forged += sent
			r.ForgedAccepted += accepted
		}
	}
	var params json.RawMessage
	if err := api.Do(ctx, http.MethodGet, "/v1/orders/"+string(r.OrderID)+"/pay-params", nil, &params); err != nil {
		if r.Scenario == ScenarioPayFail && IsStatus(err, http.StatusConflict) {
			return final() // it expired while the shop fetched its pay parameters
		}
		return fmt.Errorf("pay-params: %w", err)
	}
	switch r.Scenario {
	case ScenarioClose:
		if err := api.Do(ctx, http.MethodPost, "/v1/orders/"+string(r.OrderID)+"/close", map[string]string{}, nil); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		return final()
	case ScenarioPayFail:
		// The order expires in 3 s: on a slow run wxflow may have closed it at
		// WeChat before the payer got there (409), which ends it the same way.
		err := sim.Do(ctx, http.MethodPost, "/sim/pay", payBody(r, v.Order, params, "fail"), nil)
		if err != nil && !IsStatus(err, http.StatusConflict) {
			return fmt.Errorf("sim pay: %w", err)
		}
		return final()
	}
	if err := sim.Do(ctx, http.MethodPost, "/sim/pay", payBody(r, v.Order, params, ""), nil); err != nil {
		return fmt.Errorf("sim pay: %w", err)
	}
	if v, err = WaitState(ctx, api, r.OrderID, engine.Notified); err != nil {
		r.Got = v.Order.State
		return err
	}
	refund := r.AmountFen
	r.OutRefundNos = nil
	switch r.Scenario {
	case ScenarioPay:
		return final()
	case ScenarioRefundPart:
		refund = max(1, r.AmountFen/3)
	}
	var rv struct {
		OutRefundNo string `json:"out_refund_no"`
	}
	if err := api.DoHeader(ctx, http.MethodPost, "/v1/orders/"+string(r.OrderID)+"/refunds",
		map[string]any{"amount_fen": refund, "reason": "demo"}, &rv, "Idempotency-Key", "demo-refund-"+string(r.OrderID)); err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	if rv.OutRefundNo != "" {
		r.OutRefundNos = append(r.OutRefundNos, rv.OutRefundNo)
	}
	if err := final(); err != nil {
		return err
	}
	if r.RefundedFen != refund {
		return fmt.Errorf("refunded %d fen, want %d", r.RefundedFen, refund)
	}
	return nil
}

// WaitState polls the order until it reaches want, or a resting state that is not want.
func WaitState(ctx context.Context, api *Client, id engine.OrderID, want engine.State) (OrderView, error) {
	var v OrderView
	for {
		v = OrderView{}
		err := api.Do(ctx, http.MethodGet, "/v1/orders/"+string(id), nil, &v)
		if err == nil && v.Order.State == want {
			return v, nil
		}
		if err == nil && !v.Order.State.Waiting() && v.Order.State != engine.Notified {
			if v.Order.FailReason != "" {
				return v, fmt.Errorf("order %s ended %s (%s), want %s", id, v.Order.State, v.Order.FailReason, want)
			}
			return v, fmt.Errorf("order %s ended %s, want %s", id, v.Order.State, want)
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("order %s is %s, want %s: %w", id, v.Order.State, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PrintSummary writes the table of final states and returns whether every order is right.
func PrintSummary(w io.Writer, results []Result, took time.Duration) bool {
	type key struct {
		s   Scenario
		api engine.PayAPI
	}
	type row struct{ total, ok int }
	rows := map[key]*row{}
	allOK := true
	for _, r := range results {
		k := key{r.Scenario, r.PayAPI}
		if rows[k] == nil {
			rows[k] = &row{}
		}
		rows[k].total++
		if r.OK() {
			rows[k].ok++
		} else {
			allOK = false
		}
	}
	keys := make([]key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].s != keys[j].s {
			return keys[i].s < keys[j].s
		}
		return keys[i].api < keys[j].api
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tPAY API\tWANT\tORDERS\tOK")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", k.s, k.api, k.s.WantState(), rows[k].total, rows[k].ok)
	}
	tw.Flush()
	printLanes(w, results)
	newCodes := 0
	for _, r := range results {
		newCodes += r.NewCodes
	}
	if newCodes > 0 {
		fmt.Fprintf(w, "%d orders failed safely (40163: WeChat spent the code, its answer never reached wxflow) and were made again with a new code\n", newCodes)
	}
	for _, r := range results {
		if !r.OK() {
			lane := ""
			if r.Lane != nil {
				lane = ", " + r.Lane.String()
			}
			fmt.Fprintf(w, "order #%d %s (%s, %s, %s, %s%s): got %s, want %s: %v\n",
				r.N, r.OrderID, r.Scenario, r.PayAPI, r.Client, r.Auth, lane, r.Got, r.Want, r.Err)
		}
	}
	verdict := "all orders reached the state they should"
	if !allOK {
		verdict = "SOME ORDERS DID NOT reach the state they should"
	}
	fmt.Fprintf(w, "%d orders in %s: %s\n", len(results), took.Round(time.Millisecond), verdict)
	return allOK
}

// laneAuth gets the payer's credential in the lane's app, as its front end
// would: an OAuth code on an Official Account's page, a wx.login code in a
// mini-program; every third order instead comes with the openid the app
// knows its payer by (the simulator's answer names it).
func laneAuth(ctx context.Context, sim *Client, r *Result, req map[string]any) error {
	path := "/sim/oauth/code"
	if r.Lane.Kind == wechat.AppMiniProgram {
		path = "/sim/login"
	}
	var code struct {
		Code   string `json:"code"`
		OpenID string `json:"openid"`
	}
	if err := sim.Do(ctx, http.MethodPost, path, map[string]string{"appid": r.Lane.AppID, "user": fmt.Sprintf("demo-payer-%06d", r.N)}, &code); err != nil {
		return fmt.Errorf("sim %s for %s: %w", path, r.Lane, err)
	}
	switch {
	case r.N%3 == 0:
		r.Auth, req["openid"] = "openid", code.OpenID
	case r.Lane.Kind == wechat.AppMiniProgram:
		r.Auth, req["login_code"] = "login_code", code.Code
	default:
		r.Auth, req["oauth_code"] = "oauth_code", code.Code
	}
	return nil
}

// payBody is the payer's POST /sim/pay: on a lane, the pay sheet's
// parameters and the app it opens in, so that WeChat's client (the
// simulator) checks paySign over the payer's app; without one, the prepay_id
// alone.
func payBody(r *Result, o engine.Order, params json.RawMessage, result string) map[string]any {
	body := map[string]any{"prepay_id": o.PrepayID}
	if result != "" {
		body["result"] = result
	}
	var p map[string]string
	if r.Lane != nil && json.Unmarshal(params, &p) == nil && len(p) > 0 {
		body["params"], body["appid"] = p, r.Lane.AppID
	}
	return body
}

// printLanes writes how the orders spread over the lanes (merchant, app,
// payer kind), when the run had any.
func printLanes(w io.Writer, results []Result) {
	type row struct{ total, ok int }
	rows := map[string]*row{}
	var names []string
	for _, r := range results {
		if r.Lane == nil {
			continue
		}
		n := r.Lane.String() + "\t" + r.Lane.AppID
		if rows[n] == nil {
			rows[n] = &row{}
			names = append(names, n)
		}
		rows[n].total++
		if r.OK() {
			rows[n].ok++
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MERCHANT/APP/PAYER\tAPPID\tORDERS\tOK")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, rows[n].total, rows[n].ok)
	}
	tw.Flush()
}
