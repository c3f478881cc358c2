package client_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/client"
)

// TestOrderLifecycle drives orders through a real wxflow with the client
// alone: created by openid (v3), OAuth code (v2) and login code (v3,
// mini-program), each signed; one paid at the simulator and read as paid;
// one closed unpaid. Idempotency-Key replays and conflicts as documented.
func TestOrderLifecycle(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t)
	ctx := context.Background()

	k := key(t)
	req := client.CreateOrderRequest{AmountFen: 1990, Description: "tea", PayAPI: client.PayV3,
		Payer: client.PayerOpenID("oClientTest"), ExpiresIn: time.Hour, IdempotencyKey: k}
	res, err := c.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	o := res.Order
	if res.Pending || res.Replayed || o.State != client.StateAuthorized || o.Shop != "demo" || o.AmountFen != 1990 ||
		o.OpenID != "oClientTest" || o.Frontend != client.FrontendJSAPI || o.PayAPI != client.PayV3 || o.Merchant != d.merchant {
		t.Fatalf("create by openid: %+v", res)
	}
	if !o.ExpiresAt.After(o.CreatedAt.Add(59*time.Minute)) || o.Paid() || o.Final() {
		t.Fatalf("create: expiry %s, paid %v, final %v", o.ExpiresAt, o.Paid(), o.Final())
	}
	// The same key and request: the same order, as it is now.
	again, err := c.CreateOrder(ctx, req)
	if err != nil || !again.Replayed || again.Order.ID != o.ID {
		t.Fatalf("the same create again: %+v %v", again, err)
	}
	// The same key, another request: a conflict.
	other := req
	other.AmountFen = 2990
	if _, err := c.CreateOrder(ctx, other); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("the key with another request: %v, want ErrConflict", err)
	}

	signed := waitOrder(t, c, o.ID, "signed", inState(client.StateSigned))
	pp, err := c.PayParams(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := pp.Signed()
	if err != nil || sg.Package != "prepay_id="+signed.Order.PrepayID || sg.SignType != "RSA" || sg.PaySign == "" || sg.AppID == "" {
		t.Fatalf("pay parameters: %+v %v", sg, err)
	}
	for name, raw := range map[string][]byte{"choose_wx_pay": pp.ChooseWXPay, "request_payment": pp.RequestPayment} {
		if !strings.Contains(string(raw), sg.PaySign) || strings.Contains(string(raw), "appId") {
			t.Errorf("%s: %s", name, raw)
		}
	}
	if !strings.Contains(string(pp.ChooseWXPay), `"timestamp"`) {
		t.Errorf("choose_wx_pay has no lower-case timestamp: %s", pp.ChooseWXPay)
	}

	d.pay(t, signed.Order.PrepayID)
	paid := waitOrder(t, c, o.ID, "paid", client.Order.Paid)
	if paid.Order.State != client.StateNotified || paid.Order.TransactionID == "" || len(paid.History) < 5 {
		t.Fatalf("paid: %+v", paid)
	}
	if _, err := c.PayParams(ctx, o.ID); !errors.Is(err, client.ErrNotSigned) {
		t.Fatalf("pay parameters of a paid order: %v, want ErrNotSigned", err)
	}
	if _, err := c.CloseOrder(ctx, o.ID); !errors.Is(err, client.ErrInvalidState) {
		t.Fatalf("closing a paid order: %v, want ErrInvalidState", err)
	}

	// An OAuth code (v2) and a mini-program login code (v3): signed too.
	oauth, err := c.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 2500, Description: "green tea", PayAPI: client.PayV2,
		Payer: client.PayerOAuthCode(d.code(t, "/sim/oauth/code", "oAlice")), ClientIP: "203.0.113.7", IdempotencyKey: key(t) + "-oauth"})
	if err != nil || oauth.Order.State != client.StateCreated || oauth.Order.ClientIP != "203.0.113.7" {
		t.Fatalf("create by OAuth code: %+v %v", oauth, err)
	}
	mini, err := c.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 880, Description: "milk tea", PayAPI: client.PayV3,
		Payer: client.PayerLoginCode(d.code(t, "/sim/login", "oBob")), ExpiresIn: 15 * time.Minute})
	if err != nil || mini.Order.Frontend != client.FrontendMiniProgram {
		t.Fatalf("create by login code: %+v %v", mini, err)
	}
	v2 := waitOrder(t, c, oauth.Order.ID, "signed", inState(client.StateSigned))
	if v2.Order.OpenID != "oAlice" {
		t.Errorf("the OAuth code gave openid %q", v2.Order.OpenID)
	}
	if pp, err := c.PayParams(ctx, oauth.Order.ID); err != nil || !strings.Contains(string(pp.Bridge), `"MD5"`) {
		t.Errorf("v2 pay parameters: %s %v", pp.Bridge, err)
	}
	waitOrder(t, c, mini.Order.ID, "signed", inState(client.StateSigned))

	// Closing a signed order: closed at WeChat first, then closed; again is a replay.
	cl, err := c.CloseOrder(ctx, mini.Order.ID)
	if err != nil || cl.Order.ID != mini.Order.ID {
		t.Fatalf("close: %+v %v", cl, err)
	}
	closed := waitOrder(t, c, mini.Order.ID, "closed", inState(client.StateClosed))
	if !closed.Order.Final() {
		t.Error("a closed order is not final")
	}
	if cl, err := c.CloseOrder(ctx, mini.Order.ID); err != nil || !cl.Replayed || cl.Order.State != client.StateClosed {
		t.Fatalf("close again: %+v %v", cl, err)
	}
}

// TestErrors: every refusal is an *Error with the API's status, code,
// reason and problems, matched by the sentinels; another shop's order is
// not found; ids that are no order id never leave the client.
func TestErrors(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t)
	ctx := context.Background()

	res, err := c.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 100, Description: "mine", PayAPI: client.PayV3,
		Payer: client.PayerOpenID("oMine")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.other(t).GetOrder(ctx, res.Order.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another shop's order: %v, want ErrNotFound", err)
	}
	var e *client.Error
	_, err = c.GetOrder(ctx, "o_nosuchorder")
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Code != client.CodeNotFound || e.RequestID == "" || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown order: %#v", err)
	}
	for _, id := range []string{"", "../admin", "o_x/pay-params", "o x", strings.Repeat("o", 65)} {
		if _, err := c.GetOrder(ctx, id); !errors.As(err, &e) || e.StatusCode != 0 || !errors.Is(err, client.ErrNotFound) {
			t.Errorf("GetOrder(%q): %v, want a local not found", id, err)
		}
	}

	// Every problem at once.
	_, err = c.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: -1, Description: "tea\x07", PayAPI: "v4",
		Payer: client.PayerOpenID("oUser"), Frontend: "app", ClientIP: "nope"})
	if !errors.As(err, &e) || e.StatusCode != 422 || e.Code != client.CodeInvalidFields || !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("invalid create: %v", err)
	}
	fields := map[string]string{}
	for _, p := range e.Problems {
		fields[p.Field] = p.Code
	}
	want := map[string]string{"amount_fen": client.ProblemOutOfRange, "description": client.ProblemControlCharacter,
		"pay_api": client.ProblemInvalidValue, "client": client.ProblemInvalidValue, "client_ip": client.ProblemInvalidFormat}
	for f, code := range want {
		if fields[f] != code {
			t.Errorf("problem of %s: %q, want %q (all: %v)", f, fields[f], code, e.Problems)
		}
	}
	if !strings.Contains(err.Error(), "amount_fen") {
		t.Errorf("the error's text names no field: %s", err)
	}

	bad, err := client.New(d.dev.APIURL, "wxs_nope_nope")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.GetOrder(ctx, res.Order.ID); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("a wrong key: %v, want ErrUnauthenticated", err)
	}
	// A refund of an unpaid order.
	if _, err := c.Refund(ctx, res.Order.ID, client.RefundRequest{AmountFen: 1, OutRefundNo: "rf-unpaid-1"}); !errors.Is(err, client.ErrInvalidState) {
		t.Fatalf("refund of an unpaid order: %v, want ErrInvalidState", err)
	}
}

// TestValidateAsTheAPI: the checks the client makes before sending over
// NATS find the same problems as the API, field by field.
func TestValidateAsTheAPI(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t, client.WithRetry(client.RetryPolicy{MaxAttempts: 1}))
	ok := client.CreateOrderRequest{AmountFen: 1, Description: "d", PayAPI: client.PayV2, Payer: client.PayerOpenID("o1")}
	tests := []struct {
		name string
		edit func(r *client.CreateOrderRequest)
	}{
		{"amount zero", func(r *client.CreateOrderRequest) { r.AmountFen = 0 }},
		{"amount huge", func(r *client.CreateOrderRequest) { r.AmountFen = 1_000_000_001 }},
		{"no description", func(r *client.CreateOrderRequest) { r.Description = "  " }},
		{"long description", func(r *client.CreateOrderRequest) { r.Description = strings.Repeat("茶", 43) }},
		{"line separator", func(r *client.CreateOrderRequest) { r.Description = "a\u2028b" }},
		{"bad UTF-8", func(r *client.CreateOrderRequest) { r.Description = "a\xffb" }},
		{"short out_trade_no", func(r *client.CreateOrderRequest) { r.OutTradeNo = "abc" }},
		{"out_trade_no with a dot", func(r *client.CreateOrderRequest) { r.OutTradeNo = "abc.def" }},
		{"no payer", func(r *client.CreateOrderRequest) { r.Payer = client.Payer{} }},
		{"openid with a space", func(r *client.CreateOrderRequest) { r.Payer = client.PayerOpenID("o 1") }},
		{"long code", func(r *client.CreateOrderRequest) { r.Payer = client.PayerOAuthCode(strings.Repeat("c", 129)) }},
		{"pay api", func(r *client.CreateOrderRequest) { r.PayAPI = "v1" }},
		{"front end", func(r *client.CreateOrderRequest) { r.Frontend = "app" }},
		{"login code on a page", func(r *client.CreateOrderRequest) {
			r.Payer, r.Frontend = client.PayerLoginCode("c1"), client.FrontendJSAPI
		}},
		{"client ip", func(r *client.CreateOrderRequest) { r.ClientIP = "1.2.3" }},
		{"expiry", func(r *client.CreateOrderRequest) { r.ExpiresIn = 8 * 24 * time.Hour }},
		{"key", func(r *client.CreateOrderRequest) { r.IdempotencyKey = "a key" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			var local, remote *client.Error
			if err := r.Validate(); !errors.As(err, &local) {
				t.Fatalf("Validate: %v, want problems", err)
			}
			if tc.name == "key" {
				return // the client refuses to send a malformed header
			}
			if _, err := c.CreateOrder(context.Background(), r); !errors.As(err, &remote) {
				t.Fatalf("the API: %v, want problems", err)
			}
			if got, want := problemSet(local.Problems), problemSet(remote.Problems); got != want {
				t.Errorf("Validate found %s, the API %s", got, want)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good request: %v", err)
	}
}

func problemSet(ps []client.Problem) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Field+":"+p.Code)
	}
	return strings.Join(out, ",")
}

// TestJSSDKAndOAuth: wx.config signed for a page on the app domains; the
// OAuth page's address, not followed; pages elsewhere refused with problems.
func TestJSSDKAndOAuth(t *testing.T) {
	d := wxflow(t)
	c := d.shop(t)
	ctx := context.Background()
	cfg, err := c.JSSDKConfig(ctx, "http://localhost/shop/pay?cart=1#top")
	if err != nil || cfg.AppID == "" || len(cfg.Signature) != 40 || cfg.Timestamp == 0 || cfg.NonceStr == "" {
		t.Fatalf("JS-SDK config: %+v %v", cfg, err)
	}
	loc, err := c.OAuthURL(ctx, client.OAuthRequest{RedirectURI: "http://localhost/shop/pay?cart=1", State: "cart1", Scope: client.ScopeUserInfo})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Query().Get("appid") != cfg.AppID || u.Query().Get("state") != "cart1" ||
		u.Query().Get("scope") != "snsapi_userinfo" || u.Query().Get("redirect_uri") != "http://localhost/shop/pay?cart=1" {
		t.Fatalf("OAuth URL %s (%v)", loc, err)
	}
	_, err = c.OAuthURL(ctx, client.OAuthRequest{RedirectURI: "https://evil.example/", Scope: "snsapi_admin", State: "a-b"})
	var e *client.Error
	if !errors.As(err, &e) || len(e.Problems) != 3 {
		t.Fatalf("a bad OAuth request: %v, want three problems", err)
	}
	if _, err := c.JSSDKConfig(ctx, "https://evil.example/pay"); !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("JS-SDK config elsewhere: %v", err)
	}
}
