package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/metrics"
	"github.com/wxflow/wxflow/internal/openapitest"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// harness is the API over a real engine, NATS and SQLite, with the
// simulator's keys to make genuine WeChat notifications.
type harness struct {
	srv    *api.Server
	url    string
	store  *engine.Store
	eng    *engine.Engine
	keys   *sim.Keys
	client *http.Client
	// key is shop alpha's API key, sent on every /v1 request that sets no
	// Authorization of its own; betaKey is shop beta's (same merchant).
	key, betaKey string
	// clock is how far the server's clock is ahead of the real one.
	clock *atomic.Int64

	// publicHandler is the public listener's handler. It and client check
	// every exchange against api/openapi.json (internal/openapitest).
	publicHandler http.Handler
}

// testSecret is the harness's server secret.
var testSecret = []byte("test-server-secret-of-32-bytes!!")

// keyCacheTTL is the harness's cache bound of verified keys.
const keyCacheTTL = 30 * time.Second

func newHarness(t *testing.T) *harness {
	t.Helper()
	m := metrics.New()
	clock := &atomic.Int64{}
	h, _ := startHarness(t, func(cfg *api.Config) {
		cfg.OAuthBaseURL, cfg.Responses, cfg.MetricsHandler = "https://open.example", m, m.Handler()
		cfg.KeyCacheTTL, cfg.AppDomains = keyCacheTTL, []string{"shop.example"}
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
	})
	h.clock = clock
	h.betaKey = h.addShop(t, "beta", h.keys.Merchant.Name)
	return h
}

// startHarness serves the API over a real engine, NATS and SQLite, with
// the merchant's clients, testSecret and adminToken; adjust sets the rest
// of its config (fields it leaves zero take those defaults), which it
// returns whole. Shop alpha is made, and its key sent on every /v1 request.
func startHarness(t *testing.T, adjust func(cfg *api.Config)) (*harness, api.Config) {
	t.Helper()
	eng, store, nc, js := enginetest.StartEngine(t)
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: keys.Merchant})
	c3, _ := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: keys.Merchant})
	var cfg api.Config
	adjust(&cfg)
	cfg.Store, cfg.NC, cfg.JS = store, nc, js
	cfg.Merchants = append([]api.Merchant{{Merchant: keys.Merchant, V2: c2, V3: c3}}, cfg.Merchants...)
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = adminToken
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	h := &harness{srv: srv, url: hs.URL, store: store, eng: eng, keys: keys,
		client:        openapitest.New(t, openapitest.Internal).Client(hs.Client()),
		publicHandler: openapitest.New(t, openapitest.Public).Handler(srv.PublicHandler())}
	h.key = h.addShop(t, "alpha", keys.Merchant.Name)
	return h, cfg
}

// addShop stores a shop acting for merchants (none: it exists already)
// and returns a new key of it.
func (h *harness) addShop(t *testing.T, name string, merchants ...string) string {
	t.Helper()
	ctx := context.Background()
	if len(merchants) > 0 {
		if err := h.store.AddShop(ctx, engine.Shop{Name: name, Merchants: merchants, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	key, rec := engine.NewShopKey(testSecret, name, time.Now())
	if err := h.store.AddShopKey(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return key
}

// do sends a request; a /v1 request without an Authorization header of its
// own carries shop alpha's key.
func (h *harness) do(t *testing.T, method, path, contentType string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	resp, out := h.doResp(t, method, path, contentType, body, header...)
	return resp.StatusCode, out
}

// doResp is do with the whole answer.
func (h *harness) doResp(t *testing.T, method, path, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if strings.HasPrefix(path, "/v1/") {
		req.Header.Set("Authorization", "Bearer "+h.key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// public sends a request to the public listener's handler.
func (h *harness) public(t *testing.T, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, "http://public"+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.publicHandler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (h *harness) create(t *testing.T, body string, header ...string) (int, engine.Order) {
	t.Helper()
	status, out := h.do(t, http.MethodPost, "/v1/orders", "application/json", []byte(body), header...)
	var v struct{ Order engine.Order }
	_ = json.Unmarshal(out, &v)
	return status, v.Order
}

// prepaid creates an order and moves it to prepaid, as the workers would.
func (h *harness) prepaid(t *testing.T, amount int64, api string) engine.Order {
	t.Helper()
	status, o := h.create(t, fmt.Sprintf(`{"amount_fen":%d,"description":"d","openid":"o1","pay_api":%q}`, amount, api))
	if status != http.StatusCreated {
		t.Fatalf("create: %d", status)
	}
	ctx := context.Background()
	// Created with an openid, the order is authorized already.
	for _, c := range []engine.Command{
		{ID: "p:" + string(o.ID), Verb: engine.VerbPrepaid, OrderID: o.ID, Prepaid: &engine.PrepaidInfo{PrepayID: "wx1"}},
	} {
		if res, err := h.eng.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
	o, _ = h.store.Order(ctx, o.ID)
	return o
}

func (h *harness) state(t *testing.T, id engine.OrderID) engine.Order {
	o, err := h.store.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t)
	ok := `"description":"d","openid":"o1","pay_api":"v2"`
	tests := []struct {
		name, body, contentType string
		want                    int
	}{
		{"zero amount", `{"amount_fen":0,` + ok + `}`, "application/json", 422},
		{"negative amount", `{"amount_fen":-5,` + ok + `}`, "application/json", 422},
		{"float amount", `{"amount_fen":19.9,` + ok + `}`, "application/json", 422},
		{"overflowing amount", `{"amount_fen":99999999999999999999999,` + ok + `}`, "application/json", 422},
		{"too large amount", `{"amount_fen":100000000000,` + ok + `}`, "application/json", 422},
		{"unknown field", `{"amount_fen":1,"price":1,` + ok + `}`, "application/json", 422},
		{"two objects", `{"amount_fen":1,` + ok + `}{}`, "application/json", 400},
		{"no payer", `{"amount_fen":1,"description":"d","pay_api":"v2"}`, "application/json", 422},
		{"two payers", `{"amount_fen":1,"description":"d","openid":"o","oauth_code":"c","pay_api":"v2"}`, "application/json", 422},
		{"bad pay_api", `{"amount_fen":1,"description":"d","openid":"o","pay_api":"v4"}`, "application/json", 422},
		{"bad out_trade_no", `{"amount_fen":1,"out_trade_no":"a b","description":"d","openid":"o","pay_api":"v2"}`, "application/json", 422},
		{"wrong content type", `{"amount_fen":1,` + ok + `}`, "text/plain", 415},
		{"oversized body", `{"amount_fen":1,"description":"` + strings.Repeat("x", 70<<10) + `","openid":"o","pay_api":"v2"}`, "application/json", 413},
		{"not JSON", `amount=1`, "application/json", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := h.do(t, http.MethodPost, "/v1/orders", tc.contentType, []byte(tc.body))
			if status != tc.want || !bytes.Contains(out, []byte(`"reason"`)) {
				t.Errorf("status %d, body %s; want %d with a reason", status, out, tc.want)
			}
		})
	}
	n, _ := h.store.CountOrders(context.Background())
	if n != 0 {
		t.Errorf("%d orders were created by refused requests", n)
	}
	// Each refusal is counted, by route and status.
	want := map[int]int{}
	for _, tc := range tests {
		want[tc.want]++
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", nil)
	for status, n := range want {
		line := fmt.Sprintf(`wxflow_http_responses_total{route="POST /v1/orders",status="%d"} %d`, status, n)
		if !bytes.Contains(metrics, []byte(line)) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

func TestCreateIdempotency(t *testing.T) {
	h := newHarness(t)
	body := `{"amount_fen":100,"description":"d","openid":"o1","pay_api":"v3"}`
	s1, o1 := h.create(t, body, "Idempotency-Key", "k1")
	s2, o2 := h.create(t, body, "Idempotency-Key", "k1")
	if s1 != http.StatusCreated || s2 != http.StatusCreated || o1.ID == "" || o1.ID != o2.ID {
		t.Fatalf("same key twice: %d %s, %d %s", s1, o1.ID, s2, o2.ID)
	}
	if s3, _ := h.create(t, strings.Replace(body, "100", "200", 1), "Idempotency-Key", "k1"); s3 != http.StatusConflict {
		t.Fatalf("same key, other content: %d, want 409", s3)
	}
	withNo := `{"amount_fen":100,"out_trade_no":"SHOP-000001","description":"d","openid":"o1","pay_api":"v3"}`
	if s, _ := h.create(t, withNo); s != http.StatusCreated {
		t.Fatalf("create: %d", s)
	}
	if s, _ := h.create(t, strings.Replace(withNo, "100", "300", 1)); s != http.StatusConflict {
		t.Fatalf("duplicate out_trade_no with other content: %d, want 409", s)
	}
}

// v2Notification is a genuine v2 payment notification for o.
func (h *harness) v2Notification(o engine.Order, amount int64, mutate func(map[string]string)) []byte {
	m := h.keys.Merchant
	p := map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID, "nonce_str": "n1",
		"result_code": "SUCCESS", "openid": "o1", "trade_type": "JSAPI", "bank_type": "OTHERS",
		"total_fee": strconv.FormatInt(amount, 10), "cash_fee": strconv.FormatInt(amount, 10),
		"transaction_id": "4200" + string(o.ID[2:12]), "out_trade_no": o.OutTradeNo, "time_end": "20261124120000"}
	if mutate != nil {
		mutate(p)
	}
	p["sign"] = v2.Sign(p, string(m.APIKey), v2.SignMD5)
	return v2.EncodeXML(p)
}

func TestV2PaymentNotification(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 1000, "v2")
	path := "/wechat/notify/default/v2/pay"
	refused := []struct {
		name        string
		body        []byte
		contentType string
		why         api.Refusal
	}{
		{"forged sign", bytes.Replace(h.v2Notification(o, 1000, nil), []byte("<sign><![CDATA["), []byte("<sign><![CDATA[0"), 1), "text/xml", api.RefusedSignature},
		{"changed amount", bytes.Replace(h.v2Notification(o, 1000, nil), []byte("<total_fee><![CDATA[1000]]>"), []byte("<total_fee><![CDATA[1]]>"), 1), "text/xml", api.RefusedSignature},
		{"another appid", h.v2Notification(o, 1000, func(p map[string]string) { p["appid"] = "wxother" }), "text/xml", api.RefusedForeign},
		{"another mch_id", h.v2Notification(o, 1000, func(p map[string]string) { p["mch_id"] = "1" }), "text/xml", api.RefusedForeign},
		{"unknown order", h.v2Notification(o, 1000, func(p map[string]string) { p["out_trade_no"] = "NOPE-1234" }), "text/xml", api.RefusedUnknownOrder},
		{"DOCTYPE", append([]byte(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`), h.v2Notification(o, 1000, nil)...), "text/xml", api.RefusedMalformed},
		{"huge body", bytes.Repeat([]byte("<xml>"), 20000), "text/xml", api.RefusedRequest},
		{"JSON", []byte(`{"return_code":"SUCCESS"}`), "application/json", api.RefusedRequest},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := h.srv.Counters.NotificationsRefused[tc.why].Load()
			status, out := h.do(t, http.MethodPost, path, tc.contentType, tc.body)
			p, _ := v2.ParseXML(out)
			if status != http.StatusOK || p["return_code"] != "FAIL" {
				t.Errorf("answered %d %s, want a FAIL reply", status, out)
			}
			if n := h.srv.Counters.NotificationsRefused[tc.why].Load(); n != before+1 {
				t.Errorf("refused as %s %d times, want once", tc.why, n-before)
			}
		})
	}
	if got := h.state(t, o.ID); got.State != engine.Prepaid || got.Flag != "" {
		t.Fatalf("refused notifications changed the order: %+v", got)
	}
	if n := h.srv.Counters.NotificationsRejected.Load(); n != int64(len(refused)) {
		t.Errorf("rejected counter %d, want %d", n, len(refused))
	}
	// A genuine notification, three times: one payment.
	for range 3 {
		status, out := h.do(t, http.MethodPost, path, "text/xml", h.v2Notification(o, 1000, nil))
		if status != http.StatusOK || string(out) != string(v2.NotifyReply(true, "OK")) {
			t.Fatalf("genuine notification: %d %s", status, out)
		}
	}
	enginetest.WaitFor(t, 5*time.Second, func() error {
		if st := h.state(t, o.ID).State; st != engine.Notified {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
	hist, _ := h.store.History(context.Background(), o.ID)
	paid := 0
	for _, e := range hist {
		if e.Applied && e.Type == string(engine.EventNotified) {
			paid++
		}
	}
	if paid != 1 {
		t.Fatalf("%d notified events, want 1", paid)
	}
	// A refund above what was paid is refused.
	if status, out := h.do(t, http.MethodPost, "/v1/orders/"+string(o.ID)+"/refunds", "application/json", []byte(`{"amount_fen":1001}`)); status != http.StatusUnprocessableEntity {
		t.Fatalf("over-refund: %d %s", status, out)
	}
	refunds := "/v1/orders/" + string(o.ID) + "/refunds"
	if status, out := h.do(t, http.MethodPost, refunds, "application/json", []byte(`{"amount_fen":400,"out_refund_no":"SHOP-R-0001"}`)); status != http.StatusAccepted {
		t.Fatalf("refund: %d %s", status, out)
	}
	// Asked again: the same answer; with another amount under the same
	// out_refund_no: a conflict, and the refund stays as first asked.
	if status, out := h.do(t, http.MethodPost, refunds, "application/json", []byte(`{"amount_fen":400,"out_refund_no":"SHOP-R-0001"}`)); status != http.StatusAccepted {
		t.Fatalf("refund repeated: %d %s", status, out)
	}
	if status, out := h.do(t, http.MethodPost, refunds, "application/json", []byte(`{"amount_fen":500,"out_refund_no":"SHOP-R-0001"}`)); status != http.StatusConflict {
		t.Fatalf("same out_refund_no, another amount: %d %s", status, out)
	}
	rs, err := h.store.Refunds(context.Background(), o.ID)
	if err != nil || len(rs) != 1 || rs[0].AmountFen != 400 {
		t.Fatalf("refunds %+v (%v), want one of 400 fen", rs, err)
	}
}

func TestV3PaymentNotification(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 500, "v3")
	m := h.keys.Merchant
	notification := func(amount int64, at time.Time) ([]byte, http.Header) {
		plain, _ := json.Marshal(v3.Transaction{AppID: m.AppID, MchID: m.MchID, OutTradeNo: o.OutTradeNo, TransactionID: "4200" + string(o.ID[2:12]),
			TradeState: "SUCCESS", Amount: v3.Amount{Total: amount}, Payer: v3.Payer{OpenID: "o1"}})
		res, _ := v3.EncryptResource(string(m.APIv3Key), "abcdefghijkl", "transaction", "transaction", plain)
		body, _ := json.Marshal(v3.Notification{ID: "EV-1", EventType: "TRANSACTION.SUCCESS", ResourceType: "encrypt-resource", Resource: res})
		hdr, _ := v3.SignResponseHeaders(h.keys.WechatPayKey, m.WechatPayPublicKeyID, body, at)
		return body, hdr
	}
	post := func(body []byte, hdr http.Header) int {
		args := []string{}
		for k := range hdr {
			args = append(args, k, hdr.Get(k))
		}
		status, _ := h.do(t, http.MethodPost, "/wechat/notify/default/v3/pay", "application/json", body, args...)
		return status
	}
	body, hdr := notification(500, time.Now())
	if s := post(append([]byte(" "), body...), hdr); s != http.StatusBadRequest {
		t.Errorf("tampered body: %d", s)
	}
	stale, staleHdr := notification(500, time.Now().Add(-10*time.Minute))
	if s := post(stale, staleHdr); s != http.StatusBadRequest {
		t.Errorf("stale: %d", s)
	}
	wrongSerial := hdr.Clone()
	wrongSerial.Set("Wechatpay-Serial", "PUB_KEY_ID_0000")
	if s := post(body, wrongSerial); s != http.StatusBadRequest {
		t.Errorf("unknown serial: %d", s)
	}
	if got := h.state(t, o.ID); got.State != engine.Prepaid {
		t.Fatalf("refused notifications changed the order: %s", got.State)
	}
	// Tampered and unknown-serial ones do not verify; the stale one does, too late.
	refused := &h.srv.Counters.NotificationsRefused
	if sig, st := refused[api.RefusedSignature].Load(), refused[api.RefusedStale].Load(); sig != 2 || st != 1 {
		t.Errorf("refused: %d for the signature, %d stale; want 2 and 1", sig, st)
	}
	mismatch, mhdr := notification(499, time.Now())
	if s := post(mismatch, mhdr); s != http.StatusNoContent {
		t.Errorf("genuine, other amount: %d", s)
	}
	enginetest.WaitFor(t, 5*time.Second, func() error {
		if got := h.state(t, o.ID); got.Flag != string(engine.CodeAmountMismatch) || got.State != engine.Prepaid {
			return fmt.Errorf("order %s flag %q", got.State, got.Flag)
		}
		return nil
	})
	if s := post(body, hdr); s != http.StatusNoContent {
		t.Fatalf("genuine: %d", s)
	}
	enginetest.WaitFor(t, 5*time.Second, func() error {
		if st := h.state(t, o.ID).State; st != engine.Notified {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
}

func TestReadAndHealth(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if s, out := h.do(t, http.MethodGet, path, "", nil); s != http.StatusOK {
			t.Errorf("%s: %d %s", path, s, out)
		}
	}
	if s, _ := h.do(t, http.MethodGet, "/v1/orders/o_missing", "", nil); s != http.StatusNotFound {
		t.Errorf("unknown order: %d", s)
	}
	if s, _ := h.do(t, http.MethodGet, "/v1/orders/a.b", "", nil); s != http.StatusNotFound {
		t.Errorf("malformed id: %d", s)
	}
	o := h.prepaid(t, 100, "v2")
	if s, _ := h.do(t, http.MethodGet, "/v1/orders/"+string(o.ID)+"/pay-params", "", nil); s != http.StatusConflict {
		t.Errorf("pay-params before signing: %d", s)
	}
	noRedirect := *h.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/oauth/authorize?redirect_uri=https%3A%2F%2Fshop.example%2Fcb&state=s1", nil)
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := noRedirect.Do(req)
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasSuffix(resp.Header.Get("Location"), "&response_type=code&scope=snsapi_base&state=s1#wechat_redirect") {
		t.Errorf("oauth redirect: %v %v", resp, err)
	}
}

func FuzzCreateOrder(f *testing.F) {
	f.Add([]byte(`{"amount_fen":100,"description":"d","openid":"o1","pay_api":"v2"}`))
	f.Add([]byte(`{"amount_fen":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var q api.CreateOrderRequest
		if json.Unmarshal(body, &q) != nil || q.Validate() != nil {
			return
		}
		if q.AmountFen <= 0 || q.PayAPI != "v2" && q.PayAPI != "v3" {
			t.Fatalf("accepted %+v", q)
		}
	})
}

func ExampleCreateOrderRequest() {
	q := api.CreateOrderRequest{AmountFen: 1990, Description: "wxflow-测试", OAuthCode: "CODE", PayAPI: "v3", Client: "jsapi"}
	b, _ := json.Marshal(q)
	fmt.Println(string(b), q.Validate())
	// Output: {"amount_fen":1990,"description":"wxflow-测试","oauth_code":"CODE","pay_api":"v3","client":"jsapi"} <nil>
}
