package sim_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// world is a simulator over HTTPS, the merchant's three clients pointed at
// it, and a shop endpoint that receives and verifies the notifications.
type world struct {
	sim     *sim.Sim
	url     string
	v2, v2h *v2.Client
	v3      *v3.Client
	mp      *mp.Client
	http    *http.Client
	shop    *httptest.Server
	logs    *lockedWriter

	mu       sync.Mutex
	received []string // "kind key"
	ackAfter int      // acknowledge only from this attempt on
	attempts int
}

func newWorld(t testing.TB, cfg sim.Config) *world {
	t.Helper()
	w := &world{logs: &lockedWriter{w: &bytes.Buffer{}}}
	cfg.KeysDir = t.TempDir()
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 0.001
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w.logs, nil))
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.sim = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = s.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	w.url = srv.URL
	m, err := wechat.LoadMerchant("default", cfg.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	w.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	if w.v2, err = v2.NewClient(v2.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, RootCAs: s.RootCAs()}); err != nil {
		t.Fatal(err)
	}
	if w.v2h, err = v2.NewClient(v2.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http, RootCAs: s.RootCAs(), SignType: v2.SignHMACSHA256}); err != nil {
		t.Fatal(err)
	}
	if w.v3, err = v3.NewClient(v3.Config{BaseURL: w.url, Merchant: m, HTTPClient: w.http}); err != nil {
		t.Fatal(err)
	}
	if w.mp, err = mp.NewClient(mp.Config{BaseURL: w.url, AppID: m.AppID, AppSecret: m.AppSecret, HTTPClient: w.http}); err != nil {
		t.Fatal(err)
	}
	w.shop = httptest.NewServer(http.HandlerFunc(w.receive))
	t.Cleanup(w.shop.Close)
	return w
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// receive is the shop's notification endpoint: it verifies with the real clients.
func (w *world) receive(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.attempts++
	ack := w.attempts > w.ackAfter
	w.mu.Unlock()
	var kind, key string
	var err error
	switch r.URL.Path {
	case "/v2/pay":
		var n v2.PaymentNotification
		n, err = w.v2.ParseNotify(body)
		kind, key = "v2-pay", n.OutTradeNo
	case "/v2/refund":
		var n v2.RefundNotification
		n, err = w.v2.ParseRefundNotify(body)
		kind, key = "v2-refund", n.OutRefundNo+":"+n.Status
	case "/v3/pay":
		var n v3.Transaction
		n, err = w.v3.ParsePaymentNotify(r.Header, body)
		kind, key = "v3-pay", n.OutTradeNo+":"+n.TradeState
	case "/v3/refund":
		var n v3.RefundNotification
		n, err = w.v3.ParseRefundNotify(r.Header, body)
		kind, key = "v3-refund", n.OutRefundNo+":"+n.RefundStatus
	}
	if err != nil || !ack {
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = rw.Write(v2.NotifyReply(false, "not now"))
		return
	}
	w.mu.Lock()
	w.received = append(w.received, kind+" "+key)
	w.mu.Unlock()
	if strings.HasPrefix(kind, "v3") {
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	_, _ = rw.Write(v2.NotifyReply(true, "OK"))
}

func (w *world) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.received...)
}

func (w *world) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range w.got() {
			if g == want {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never received %q; got %v", want, w.got())
}

func (w *world) pay(t *testing.T, prepayID string) {
	t.Helper()
	resp, err := w.http.Post(w.url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+prepayID+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sim pay: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestV2RoundTrip(t *testing.T) {
	for _, hmac := range []bool{false, true} {
		w := newWorld(t, sim.Config{})
		ctx := context.Background()
		c := w.v2
		if hmac {
			c = w.v2h
		}
		req := v2.UnifiedOrderRequest{Body: "wxflow-测试", OutTradeNo: "T2-0001", TotalFen: 250, ClientIP: "127.0.0.1",
			NotifyURL: w.shop.URL + "/v2/pay", OpenID: "oTEST-openid-1"}
		uo, err := c.UnifiedOrder(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.UnifiedOrder(ctx, req)
		if err != nil || again.PrepayID != uo.PrepayID {
			t.Fatalf("same order again: %v %v", again, err)
		}
		req.TotalFen = 251
		if _, err := c.UnifiedOrder(ctx, req); wechat.CodeOf(err) != "OUT_TRADE_NO_USED" {
			t.Fatalf("changed amount: err = %v", err)
		}
		if q, err := c.OrderQuery(ctx, "T2-0001"); err != nil || q.TradeState != "NOTPAY" {
			t.Fatalf("query: %+v %v", q, err)
		}
		w.pay(t, uo.PrepayID)
		w.waitFor(t, "v2-pay T2-0001")
		if q, err := c.OrderQuery(ctx, "T2-0001"); err != nil || q.TradeState != "SUCCESS" || q.TotalFen != 250 || q.TransactionID == "" {
			t.Fatalf("query after pay: %+v %v", q, err)
		}
		if err := c.CloseOrder(ctx, "T2-0001"); !errors.Is(err, wechat.ErrOrderPaid) {
			t.Fatalf("close a paid order: err = %v", err)
		}
		rr := v2.RefundRequest{OutTradeNo: "T2-0001", OutRefundNo: "R2-0001", TotalFen: 250, RefundFen: 100, NotifyURL: w.shop.URL + "/v2/refund"}
		if _, err := c.Refund(ctx, rr); err != nil {
			t.Fatalf("refund: %v", err)
		}
		if _, err := c.Refund(ctx, rr); err != nil {
			t.Fatalf("same refund again: %v", err)
		}
		w.waitFor(t, "v2-refund R2-0001:SUCCESS")
		if st, err := c.RefundQuery(ctx, "R2-0001"); err != nil || st.Status != "SUCCESS" || st.RefundFen != 100 {
			t.Fatalf("refund query: %+v %v", st, err)
		}
		rr.OutRefundNo, rr.RefundFen = "R2-0002", 151
		if _, err := c.Refund(ctx, rr); wechat.CodeOf(err) != "NOTENOUGH" {
			t.Fatalf("over-refund: err = %v", err)
		}
		if err := c.CloseOrder(ctx, "NOPE"); !errors.Is(err, wechat.ErrOrderNotExist) {
			t.Fatalf("close unknown: %v", err)
		}
		for _, tt := range []string{"NATIVE", "APP", "MWEB"} {
			res, err := c.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "b", OutTradeNo: "T2-" + tt, TotalFen: 1, ClientIP: "127.0.0.1",
				NotifyURL: w.shop.URL + "/v2/pay", TradeType: tt, ProductID: "p1"})
			if err != nil || res.PrepayID == "" || tt == "NATIVE" && res.CodeURL == "" || tt == "MWEB" && res.MWebURL == "" {
				t.Fatalf("%s: %+v %v", tt, res, err)
			}
		}
	}
}

func TestV2RefundNeedsClientCertificate(t *testing.T) {
	w := newWorld(t, sim.Config{})
	m := *w.sim.Keys().Merchant
	m.Certificate = nil
	c, err := v2.NewClient(v2.Config{BaseURL: w.url, Merchant: &m, HTTPClient: w.http})
	if err != nil {
		t.Fatal(err)
	}
	// Without a certificate the client refuses to call; over plain TLS the simulator refuses too.
	if _, err := c.Refund(context.Background(), v2.RefundRequest{OutTradeNo: "x", OutRefundNo: "y", TotalFen: 1, RefundFen: 1}); err == nil {
		t.Fatal("refund without a client certificate succeeded")
	}
	body := map[string]string{"appid": m.AppID, "mch_id": m.MchID, "nonce_str": "n", "out_trade_no": "x", "out_refund_no": "y", "total_fee": "1", "refund_fee": "1"}
	body["sign"] = v2.Sign(body, string(m.APIKey), v2.SignMD5)
	resp, err := w.http.Post(w.url+"/secapi/pay/refund", "text/xml", bytes.NewReader(v2.EncodeXML(body)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p, _ := v2.ParseXML(raw)
	if p["return_code"] != "FAIL" {
		t.Fatalf("refund without client certificate answered %s", raw)
	}
}

func TestV2BadSignatureRefused(t *testing.T) {
	w := newWorld(t, sim.Config{})
	m := *w.sim.Keys().Merchant
	m.APIKey = wechat.Secret(strings.Repeat("k", 32))
	c, _ := v2.NewClient(v2.Config{BaseURL: w.url, Merchant: &m, HTTPClient: w.http})
	_, err := c.UnifiedOrder(context.Background(), v2.UnifiedOrderRequest{Body: "b", OutTradeNo: "T2-X", TotalFen: 1, ClientIP: "127.0.0.1", NotifyURL: w.shop.URL + "/v2/pay", OpenID: "o1"})
	if wechat.CodeOf(err) != "FAIL" || wechat.IsRetryable(err) {
		t.Fatalf("bad signature: err = %v", err)
	}
}

func TestV3RoundTrip(t *testing.T) {
	w := newWorld(t, sim.Config{})
	ctx := context.Background()
	req := v3.PrepayRequest{Description: "wxflow-测试", OutTradeNo: "T3-0001", TotalFen: 300, OpenID: "oTEST-openid-3", NotifyURL: w.shop.URL + "/v3/pay"}
	id, err := w.v3.PrepayJSAPI(ctx, req)
	if err != nil || id == "" {
		t.Fatal(err)
	}
	if again, err := w.v3.PrepayJSAPI(ctx, req); err != nil || again != id {
		t.Fatalf("same prepay again: %q %v", again, err)
	}
	if tx, err := w.v3.QueryByOutTradeNo(ctx, "T3-0001"); err != nil || tx.TradeState != "NOTPAY" {
		t.Fatalf("query: %+v %v", tx, err)
	}
	w.pay(t, id)
	w.waitFor(t, "v3-pay T3-0001:SUCCESS")
	if err := w.v3.Close(ctx, "T3-0001"); !errors.Is(err, wechat.ErrOrderPaid) {
		t.Fatalf("close paid: %v", err)
	}
	rr := v3.RefundRequest{OutTradeNo: "T3-0001", OutRefundNo: "R3-0001", TotalFen: 300, RefundFen: 300, NotifyURL: w.shop.URL + "/v3/refund"}
	if r, err := w.v3.Refund(ctx, rr); err != nil || r.Status != "PROCESSING" {
		t.Fatalf("refund: %+v %v", r, err)
	}
	w.waitFor(t, "v3-refund R3-0001:SUCCESS")
	if r, err := w.v3.QueryRefund(ctx, "R3-0001"); err != nil || r.Status != "SUCCESS" {
		t.Fatalf("refund query: %+v %v", r, err)
	}
	// Another order: closed before payment, then paying it is refused.
	id2, err := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: "T3-0002", TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.v3.Close(ctx, "T3-0002"); err != nil {
		t.Fatalf("close: %v", err)
	}
	resp, _ := w.http.Post(w.url+"/sim/pay", "application/json", strings.NewReader(`{"prepay_id":"`+id2+`"}`))
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("paying a closed order: HTTP %d", resp.StatusCode)
	}
	if _, err := w.v3.QueryByOutTradeNo(ctx, "NOPE"); !errors.Is(err, wechat.ErrOrderNotExist) {
		t.Fatalf("query unknown: %v", err)
	}
	if u, err := w.v3.PrepayNative(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: "T3-NATIVE", TotalFen: 1, NotifyURL: w.shop.URL + "/v3/pay"}); err != nil || !strings.HasPrefix(u, "weixin://") {
		t.Fatalf("native: %q %v", u, err)
	}
}

func TestV3WrongKeyIsSignError(t *testing.T) {
	w := newWorld(t, sim.Config{})
	m := *w.sim.Keys().Merchant
	other, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m.PrivateKey = other.Merchant.PrivateKey
	c, _ := v3.NewClient(v3.Config{BaseURL: w.url, Merchant: &m, HTTPClient: w.http})
	_, err = c.QueryByOutTradeNo(context.Background(), "x")
	if !errors.Is(err, wechat.ErrSignature) || wechat.IsRetryable(err) {
		t.Fatalf("err = %v, want a final SIGN_ERROR", err)
	}
}

func TestNotificationRetriedUntilAcknowledged(t *testing.T) {
	w := newWorld(t, sim.Config{Faults: sim.Faults{DuplicateNotify: true}})
	w.ackAfter = 3
	id, err := w.v3.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "d", OutTradeNo: "T-RETRY", TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
	if err != nil {
		t.Fatal(err)
	}
	w.pay(t, id)
	w.waitFor(t, "v3-pay T-RETRY:SUCCESS")
	// The shop records the notification before it answers, so the simulator marks it
	// delivered a moment later: wait for that rather than race it.
	deadline := time.Now().Add(10 * time.Second)
	st := w.sim.Snapshot()
	for time.Now().Before(deadline) && (len(st.Notifications) != 1 || !st.Notifications[0].Delivered) {
		time.Sleep(5 * time.Millisecond)
		st = w.sim.Snapshot()
	}
	if len(st.Notifications) != 1 || !st.Notifications[0].Delivered || st.Notifications[0].Attempts < 2 {
		t.Fatalf("notifications = %+v", st.Notifications)
	}
}

func TestDroppedNotification(t *testing.T) {
	w := newWorld(t, sim.Config{Faults: sim.Faults{DropNotifyRate: 1}})
	id, _ := w.v3.PrepayJSAPI(context.Background(), v3.PrepayRequest{Description: "d", OutTradeNo: "T-DROP", TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
	w.pay(t, id)
	if tx, err := w.v3.QueryByOutTradeNo(context.Background(), "T-DROP"); err != nil || tx.TradeState != "SUCCESS" {
		t.Fatalf("query: %+v %v", tx, err)
	}
	if st := w.sim.Snapshot(); len(st.Notifications) != 1 || !st.Notifications[0].Dropped {
		t.Fatalf("notifications = %+v", st.Notifications)
	}
}

func TestPlatform(t *testing.T) {
	w := newWorld(t, sim.Config{Strict: true, TimeScale: 0.0001})
	ctx := context.Background()
	tok, err := w.mp.AccessToken(ctx)
	if err != nil || tok.ExpiresIn != 7200*time.Second {
		t.Fatalf("token: %v %v", tok, err)
	}
	if _, err := w.mp.JSAPITicket(ctx, tok.Value); err != nil {
		t.Fatalf("ticket: %v", err)
	}
	if _, err := w.mp.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	// The previous token survives a grace of 5 minutes (30 ms at this scale), then is refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = w.mp.JSAPITicket(ctx, tok.Value)
		if errors.Is(err, wechat.ErrTokenExpired) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, wechat.ErrTokenExpired) {
		t.Fatalf("old token after the grace: err = %v", err)
	}
	// OAuth: the consent page redirects with a single-use code.
	noRedirect := *w.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(mp.AuthorizeURL(w.url, w.sim.Keys().Merchant.AppID, "https://shop.example/cb", mp.ScopeBase, "s1"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %v %v", err, resp)
	}
	loc, _ := resp.Location()
	code := loc.Query().Get("code")
	ot, err := w.mp.ExchangeCode(ctx, code)
	if err != nil || ot.OpenID == "" {
		t.Fatalf("exchange: %v", err)
	}
	if _, err := w.mp.ExchangeCode(ctx, code); !errors.Is(err, wechat.ErrInvalidCode) {
		t.Fatalf("second exchange: err = %v", err)
	}
	if again, err := w.mp.RefreshOAuthToken(ctx, string(ot.RefreshToken)); err != nil || again.OpenID != ot.OpenID {
		t.Fatalf("refresh: %+v %v", again, err)
	}
	if u, err := w.mp.UserInfo(ctx, ot.AccessToken, ot.OpenID); err != nil || u.OpenID != ot.OpenID {
		t.Fatalf("userinfo: %+v %v", u, err)
	}
	// Mini-program login.
	resp, err = w.http.Post(w.url+"/sim/login", "application/json", strings.NewReader(`{"openid":"oMINI-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	sess, err := w.mp.JSCode2Session(ctx, c.Code)
	if err != nil || sess.OpenID != "oMINI-1" {
		t.Fatalf("jscode2session: %+v %v", sess, err)
	}
	// Strict: only issued openids pay, and only to https notify URLs.
	req := v3.PrepayRequest{Description: "d", OutTradeNo: "T-STRICT", TotalFen: 1, OpenID: "oNEVER-ISSUED", NotifyURL: "https://shop.example/n"}
	if _, err := w.v3.PrepayJSAPI(ctx, req); wechat.CodeOf(err) != "PARAM_ERROR" {
		t.Fatalf("strict, unknown openid: err = %v", err)
	}
	req.OpenID, req.NotifyURL = "oMINI-1", w.shop.URL+"/v3/pay"
	if _, err := w.v3.PrepayJSAPI(ctx, req); wechat.CodeOf(err) != "PARAM_ERROR" {
		t.Fatalf("strict, http notify URL: err = %v", err)
	}
	req.NotifyURL = "https://shop.example/n"
	if _, err := w.v3.PrepayJSAPI(ctx, req); err != nil {
		t.Fatalf("strict, all good: %v", err)
	}
}

func TestFaultsAreRetryable(t *testing.T) {
	w := newWorld(t, sim.Config{Faults: sim.Faults{SystemErrorRate: 1, Seed: 1}})
	_, err := w.v2.OrderQuery(context.Background(), "x")
	if !wechat.IsRetryable(err) || wechat.CodeOf(err) != "SYSTEMERROR" {
		t.Fatalf("v2: err = %v", err)
	}
	_, err = w.v3.QueryByOutTradeNo(context.Background(), "x")
	if !wechat.IsRetryable(err) {
		t.Fatalf("v3: err = %v", err)
	}
	resp, err := w.http.Post(w.url+"/sim/faults", "application/json", strings.NewReader(`{"http_5xx_rate":1}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("set faults: %v", err)
	}
	_, err = w.v3.QueryByOutTradeNo(context.Background(), "x")
	if !wechat.IsRetryable(err) {
		t.Fatalf("5xx: err = %v", err)
	}
}

// TestLostAnswer: WeChat applies the call, the answer is lost; asking again
// finds what the first call did (the same prepay_id, one refund).
func TestLostAnswer(t *testing.T) {
	w := newWorld(t, sim.Config{Faults: sim.Faults{LostAnswerRate: 1, Seed: 1}})
	ctx := context.Background()
	req := v3.PrepayRequest{Description: "d", OutTradeNo: "T3-LOST", TotalFen: 100, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"}
	if _, err := w.v3.PrepayJSAPI(ctx, req); !wechat.IsRetryable(err) {
		t.Fatalf("lost answer: err = %v, want a retryable error", err)
	}
	resp, err := w.http.Post(w.url+"/sim/faults", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("clear faults: %v", err)
	}
	if tx, err := w.v3.QueryByOutTradeNo(ctx, "T3-LOST"); err != nil || tx.TradeState != "NOTPAY" {
		t.Fatalf("the order the lost answer created: %+v %v", tx, err)
	}
	id, err := w.v3.PrepayJSAPI(ctx, req)
	if err != nil || id == "" {
		t.Fatalf("asked again: %q %v", id, err)
	}
}

// TestSlowAnswer: a slow answer comes, late.
func TestSlowAnswer(t *testing.T) {
	w := newWorld(t, sim.Config{Faults: sim.Faults{SlowRate: 1, SlowDelay: 50 * time.Millisecond, Seed: 1}})
	if _, err := w.v3.QueryByOutTradeNo(context.Background(), "NOPE"); !errors.Is(err, wechat.ErrOrderNotExist) {
		t.Fatalf("slow answer: %v", err)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	w := newWorld(t, sim.Config{})
	ctx := context.Background()
	tok, _ := w.mp.AccessToken(ctx)
	id, _ := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: "T-LOG", TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
	w.pay(t, id)
	w.waitFor(t, "v3-pay T-LOG:SUCCESS")
	m := w.sim.Keys().Merchant
	logs := w.logs.String()
	for name, secret := range map[string]string{"appsecret": string(m.AppSecret), "api_key": string(m.APIKey), "api_v3_key": string(m.APIv3Key), "access_token": tok.Value} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the log shows the %s", name)
		}
	}
	if !strings.Contains(logs, "T-LOG") {
		t.Errorf("the log does not show the order: %s", logs)
	}
}

// TestClientCertificateSerials: a merchant serial whose hex starts with 0
// must still be recognised (big.Int formatting drops leading zeros).
func TestClientCertificateSerials(t *testing.T) {
	for range 40 { // new keys each time: about 1 in 16 serials start with a 0 digit
		w := newWorld(t, sim.Config{})
		ctx := context.Background()
		uo, err := w.v2.UnifiedOrder(ctx, v2.UnifiedOrderRequest{Body: "b", OutTradeNo: "T-SERIAL", TotalFen: 2, ClientIP: "127.0.0.1", NotifyURL: w.shop.URL + "/v2/pay", OpenID: "o"})
		if err != nil {
			t.Fatal(err)
		}
		w.pay(t, uo.PrepayID)
		if _, err := w.v2.Refund(ctx, v2.RefundRequest{OutTradeNo: "T-SERIAL", OutRefundNo: "R-SERIAL", TotalFen: 2, RefundFen: 1}); err != nil {
			t.Fatalf("serial %s: %v", w.sim.Keys().Merchant.SerialNo, err)
		}
		if strings.HasPrefix(w.sim.Keys().Merchant.SerialNo, "0") {
			return
		}
	}
}

// TestRetain: with Config.Retain the simulator forgets its oldest settled
// orders and delivered notifications, and never an unpaid order.
func TestRetain(t *testing.T) {
	w := newWorld(t, sim.Config{Retain: 10})
	ctx := context.Background()
	prepay := func(no string) string {
		id, err := w.v3.PrepayJSAPI(ctx, v3.PrepayRequest{Description: "d", OutTradeNo: no, TotalFen: 1, OpenID: "o", NotifyURL: w.shop.URL + "/v3/pay"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := range 3 {
		prepay(fmt.Sprintf("UNPAID-%d", i))
	}
	for i := range 30 {
		no := fmt.Sprintf("PAID-%d", i)
		w.pay(t, prepay(no))
		w.waitFor(t, "v3-pay "+no+":SUCCESS")
	}
	st := w.sim.Snapshot()
	if len(st.Orders) > 11 || len(st.Notifications) > 11 {
		t.Fatalf("%d orders and %d notifications remembered, want at most 11 of each", len(st.Orders), len(st.Notifications))
	}
	unpaid := 0
	for _, o := range st.Orders {
		if strings.HasPrefix(o.OutTradeNo, "UNPAID-") {
			unpaid++
		}
	}
	if unpaid != 3 {
		t.Fatalf("%d unpaid orders remembered, want all 3", unpaid)
	}
	if tx, err := w.v3.QueryByOutTradeNo(ctx, "PAID-29"); err != nil || tx.TradeState != "SUCCESS" {
		t.Fatalf("the newest order: %+v %v", tx, err)
	}
}
