package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
)

// scenario is one path an order of the demo takes.
type scenario string

// The demo's scenarios, and the state each order must end in.
const (
	scenarioPay        scenario = "pay"         // paid → notified
	scenarioRefundPart scenario = "refund-part" // paid, a third refunded → refunded
	scenarioRefundFull scenario = "refund-full" // paid, all refunded → refunded
	scenarioExpire     scenario = "expire"      // never paid, expires → closed
	scenarioClose      scenario = "close"       // shop closes it before payment → closed
	scenarioPayFail    scenario = "pay-fail"    // the payer's bank refuses, then it expires → closed
)

var demoScenarios = []scenario{scenarioPay, scenarioRefundPart, scenarioRefundFull, scenarioPay, scenarioExpire, scenarioClose, scenarioPayFail}

// wantState is where an order of each scenario must end.
func (s scenario) wantState() engine.State {
	switch s {
	case scenarioPay:
		return engine.Notified
	case scenarioRefundPart, scenarioRefundFull:
		return engine.Refunded
	}
	return engine.Closed
}

// demoConfig says where the demo finds wxflow's API and the simulator.
type demoConfig struct {
	Orders      int
	Concurrency int
	APIURL      string       // wxflow's shop API
	SimURL      string       // the simulator (payer, login and OAuth codes)
	SimClient   *http.Client // trusts the simulator's CA
	Timeout     time.Duration
	// Forge posts forged payment notifications for every order before its
	// payer pays (they must all be refused); Merchant names the notify URLs.
	Forge    bool
	Merchant string
}

// demoResult is one order's outcome.
type demoResult struct {
	N              int
	Scenario       scenario
	PayAPI         engine.PayAPI
	Client         engine.Client
	Auth           string
	OrderID        engine.OrderID
	Want, Got      engine.State
	AmountFen      int64
	RefundedFen    int64
	NewCodes       int // orders given up because WeChat spent their code with the answer lost
	Forged         int // forged notifications posted for this order
	ForgedAccepted int // … that wxflow answered as accepted (must be 0)
	Err            error
}

func (r demoResult) ok() bool { return r.Err == nil && r.Want == r.Got }

// orderView is the API's answer to GET /v1/orders/{id}.
type orderView struct {
	Order   engine.Order    `json:"order"`
	Refunds []engine.Refund `json:"refunds"`
}

// runDemo drives cfg.Orders orders through every scenario, mixed v2/v3 and
// JSAPI/mini-program, and returns one result per order.
func runDemo(ctx context.Context, cfg demoConfig) []demoResult {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	results := make([]demoResult, cfg.Orders)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				results[i] = demoOne(ctx, cfg, i)
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

func demoOne(ctx context.Context, cfg demoConfig, i int) demoResult {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := demoResult{
		N:         i,
		Scenario:  demoScenarios[i%len(demoScenarios)],
		PayAPI:    []engine.PayAPI{engine.PayV2, engine.PayV3}[i%2],
		Client:    []engine.Client{engine.ClientJSAPI, engine.ClientMiniProgram}[(i/2)%2],
		AmountFen: int64(100 + (i*37)%9900),
	}
	r.Want = r.Scenario.wantState()
	r.Err = demoDrive(ctx, cfg, &r)
	// WeChat spent the code but its answer was lost (a chaos run): the code
	// cannot be exchanged again (40163), the order failed before any money
	// moved, and the front end sends the payer through OAuth once more, which
	// makes a new order.
	for r.Err != nil && r.Got == engine.Failed && strings.Contains(r.Err.Error(), "40163") && r.NewCodes < 3 {
		r.NewCodes++
		r.Err = demoDrive(ctx, cfg, &r)
	}
	return r
}

func demoDrive(ctx context.Context, cfg demoConfig, r *demoResult) error {
	api := &jsonClient{base: cfg.APIURL, http: http.DefaultClient}
	sim := &jsonClient{base: cfg.SimURL, http: cfg.SimClient}
	openid := fmt.Sprintf("oDEMO-%06d-payer", r.N)
	req := map[string]any{
		"amount_fen":  r.AmountFen,
		"description": fmt.Sprintf("wxflow demo #%d", r.N),
		"pay_api":     r.PayAPI,
		"client":      r.Client,
		"client_ip":   "127.0.0.1",
	}
	req["expires_in_seconds"] = 600
	if r.Scenario == scenarioExpire || r.Scenario == scenarioPayFail {
		req["expires_in_seconds"] = 3
	}
	// Every third order comes with an openid; the others with the code the
	// front end would have: an OAuth code on the Official Account page, a
	// wx.login code in the mini-program.
	switch {
	case r.N%3 == 0:
		r.Auth, req["openid"] = "openid", openid
	case r.Client == engine.ClientMiniProgram:
		var code struct{ Code string }
		if err := sim.do(ctx, http.MethodPost, "/sim/login", map[string]string{"openid": openid}, &code); err != nil {
			return fmt.Errorf("sim login: %w", err)
		}
		r.Auth, req["login_code"] = "login_code", code.Code
	default:
		var code struct{ Code string }
		if err := sim.do(ctx, http.MethodPost, "/sim/oauth/code", map[string]string{"openid": openid}, &code); err != nil {
			return fmt.Errorf("sim oauth code: %w", err)
		}
		r.Auth, req["oauth_code"] = "oauth_code", code.Code
	}
	var created struct {
		Order engine.Order `json:"order"`
	}
	if err := api.doHeader(ctx, http.MethodPost, "/v1/orders", req, &created,
		"Idempotency-Key", fmt.Sprintf("demo-%d-%d", time.Now().UnixNano(), r.N)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	r.OrderID = created.Order.ID
	if r.OrderID == "" {
		return errors.New("create: no order id in the answer")
	}
	final := func() error {
		v, err := waitState(ctx, api, r.OrderID, r.Want)
		r.Got, r.RefundedFen = v.Order.State, v.Order.RefundedFen
		return err
	}
	if r.Scenario == scenarioExpire {
		return final()
	}
	v, err := waitState(ctx, api, r.OrderID, engine.Signed)
	r.Got = v.Order.State
	if r.Scenario == scenarioPayFail && r.Got == engine.Closed {
		return nil // it expired (3 s) before the payer came: on a slow run, the same end
	}
	if err != nil {
		return err
	}
	if cfg.Forge {
		sent, accepted := forgeNotifications(ctx, cfg.APIURL, cmp.Or(cfg.Merchant, "default"), v.Order)
		r.Forged += sent
		r.ForgedAccepted += accepted
	}
	var params json.RawMessage
	if err := api.do(ctx, http.MethodGet, "/v1/orders/"+string(r.OrderID)+"/pay-params", nil, &params); err != nil {
		if r.Scenario == scenarioPayFail && isStatus(err, http.StatusConflict) {
			return final() // it expired while the shop fetched its pay parameters
		}
		return fmt.Errorf("pay-params: %w", err)
	}
	switch r.Scenario {
	case scenarioClose:
		if err := api.do(ctx, http.MethodPost, "/v1/orders/"+string(r.OrderID)+"/close", map[string]string{}, nil); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		return final()
	case scenarioPayFail:
		// The order expires in 3 s: on a slow run wxflow may have closed it at
		// WeChat before the payer got there (409), which ends it the same way.
		err := sim.do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": v.Order.PrepayID, "result": "fail"}, nil)
		if err != nil && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("sim pay: %w", err)
		}
		return final()
	}
	if err := sim.do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": v.Order.PrepayID}, nil); err != nil {
		return fmt.Errorf("sim pay: %w", err)
	}
	if v, err = waitState(ctx, api, r.OrderID, engine.Notified); err != nil {
		r.Got = v.Order.State
		return err
	}
	refund := r.AmountFen
	switch r.Scenario {
	case scenarioPay:
		return final()
	case scenarioRefundPart:
		refund = max(1, r.AmountFen/3)
	}
	if err := api.doHeader(ctx, http.MethodPost, "/v1/orders/"+string(r.OrderID)+"/refunds",
		map[string]any{"amount_fen": refund, "reason": "demo"}, nil, "Idempotency-Key", "demo-refund-"+string(r.OrderID)); err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	if err := final(); err != nil {
		return err
	}
	if r.RefundedFen != refund {
		return fmt.Errorf("refunded %d fen, want %d", r.RefundedFen, refund)
	}
	return nil
}

// waitState polls the order until it reaches want, or a resting state that is not want.
func waitState(ctx context.Context, api *jsonClient, id engine.OrderID, want engine.State) (orderView, error) {
	var v orderView
	for {
		v = orderView{}
		err := api.do(ctx, http.MethodGet, "/v1/orders/"+string(id), nil, &v)
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

// printDemoSummary writes the table of final states and returns whether every order is right.
func printDemoSummary(w io.Writer, results []demoResult, took time.Duration) bool {
	type key struct {
		s   scenario
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
		if r.ok() {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", k.s, k.api, k.s.wantState(), rows[k].total, rows[k].ok)
	}
	tw.Flush()
	newCodes := 0
	for _, r := range results {
		newCodes += r.NewCodes
	}
	if newCodes > 0 {
		fmt.Fprintf(w, "%d orders failed safely (40163: WeChat spent the code, its answer never reached wxflow) and were made again with a new code\n", newCodes)
	}
	for _, r := range results {
		if !r.ok() {
			fmt.Fprintf(w, "order #%d %s (%s, %s, %s, %s): got %s, want %s: %v\n",
				r.N, r.OrderID, r.Scenario, r.PayAPI, r.Client, r.Auth, r.Got, r.Want, r.Err)
		}
	}
	verdict := "all orders reached the state they should"
	if !allOK {
		verdict = "SOME ORDERS DID NOT reach the state they should"
	}
	fmt.Fprintf(w, "%d orders in %s: %s\n", len(results), took.Round(time.Millisecond), verdict)
	return allOK
}

// jsonClient is a tiny JSON-over-HTTP client for the demo.
type jsonClient struct {
	base string
	http *http.Client
}

func (c *jsonClient) do(ctx context.Context, method, path string, in, out any) error {
	return c.doHeader(ctx, method, path, in, out)
}

func (c *jsonClient) doHeader(ctx context.Context, method, path string, in, out any, header ...string) error {
	for {
		retry, err := c.once(ctx, method, path, in, out, header...)
		if err == nil || !retry {
			return err
		}
		// The process may be restarting (the reliability run kills it): every
		// request the demo makes is idempotent, so it tries again.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// once makes one request and says whether a failure is worth retrying
// (no answer, or a 5xx).
func (c *jsonClient) once(ctx context.Context, method, path string, in, out any, header ...string) (bool, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return false, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return true, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode >= 500, &statusError{Status: resp.StatusCode,
			msg: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))}
	}
	if out == nil || len(raw) == 0 {
		return false, nil
	}
	return false, json.Unmarshal(raw, out)
}

// statusError is an answer other than 2xx, so callers can tell a conflict
// from a failure.
type statusError struct {
	Status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// isStatus says whether err is an answer with the given HTTP status.
func isStatus(err error, status int) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == status
}

// demoCommand drives orders through a running deployment (the Procfile's)
// and its simulator, like `wxflow dev --demo N` does in one process.
func demoCommand() *cobra.Command {
	var cfg demoConfig
	var ca string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Drive N orders through a running wxflow and its WeChat simulator; exit 0 only if all end right",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pemBytes, err := os.ReadFile(ca)
			if err != nil {
				return fmt.Errorf("simulator CA: %w", err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemBytes)
			cfg.SimClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
			start := time.Now()
			results := runDemo(cmd.Context(), cfg)
			ok := printDemoSummary(cmd.OutOrStdout(), results, time.Since(start))
			l, err := auditLedger(cmd.Context(), cfg, results)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), l)
			if !ok || !l.ok() {
				return errors.New("demo: some orders did not end right, or the books disagree")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Orders, "orders", 20, "orders to drive")
	f.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent orders")
	f.StringVar(&cfg.APIURL, "api", "http://127.0.0.1:8080", "wxflow's API")
	f.StringVar(&cfg.SimURL, "sim", "https://127.0.0.1:8443", "the WeChat simulator")
	f.StringVar(&ca, "sim-ca", "data/sim/sim_ca.pem", "the simulator's CA certificate")
	f.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "how long one order may take")
	f.BoolVar(&cfg.Forge, "forge", false, "post forged payment notifications for every order before it is paid (all must be refused)")
	f.StringVar(&cfg.Merchant, "merchant", "default", "the merchant name in wxflow's notify URLs")
	return cmd
}
