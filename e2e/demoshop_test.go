package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// The JS-SDK the demo shop's browser test loads: npm's build of WeChat's
// jweixin 1.6.0, the file the simulator's WeixinJSBridge was written
// against (the CDN's file differs only in its wrapper).
const (
	jssdkPackage = "weixin-js-sdk@1.6.5"
	jssdkSHA256  = "dbb0451e1b72d7c2c18095ffd1950d6de464413ce8d343eff8b82865b983ab97"
	// wechatUA is an Android WeChat's user agent: the JS-SDK sends wx.config
	// to the bridge only when it says MicroMessenger, and calls wx.error only
	// from client version 6.0.2 on.
	wechatUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) " +
		"Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36 XWEB/1200143 MMWEBSDK/20231202 MMWEBID/1136 " +
		"MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)

// TestDemoShop drives the demo shop in headless Chromium with WeChat's own
// JS-SDK (from npm) and the simulator's WeixinJSBridge: an Official Account
// payment with API v3 and its refund; an API v2 payment whose notification
// WeChat never sends, which the page calls paid only once wxflow's order
// query found it; wx.config with a wrong signature and wx.chooseWXPay
// without signType, each showing WeChat's error on the page; and the
// mini-program flow. Screenshots go to $WXFLOW_ARTIFACTS.
func TestDemoShop(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: .ci/run installs Debian's chromium package")
		}
		t.Skip("SKIPPING TestDemoShop: no chromium on PATH (apt-get install chromium)")
	}
	sdk := installJSSDK(t)

	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	// A payment whose notification is lost is found by the reconciler's
	// query 2 s after the order was signed, then 4 s, 8 s … later.
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 2*time.Second, time.Minute
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		DemoShopAddr: "127.0.0.1:0", DemoShopJSSDK: sdk, Sim: sim.Config{TimeScale: 0.01}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	b := openShopBrowser(t, chromium, st)
	simClient := &demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}

	order := func(t *testing.T, id string) engine.Order {
		t.Helper()
		o, err := st.Store.Order(ctx, engine.OrderID(id))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	paidBy := func(t *testing.T, id string) string {
		t.Helper()
		hist, err := st.Store.History(ctx, engine.OrderID(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range hist {
			if e.Applied && e.Type == "notified" {
				return e.Actor
			}
		}
		return ""
	}
	// buy goes from the shop's front page through WeChat's OAuth (the
	// simulator) to the new order's page, and returns the order's id.
	buy := func(t *testing.T, button string) string {
		t.Helper()
		b.do(t, chromedp.Navigate(st.DemoShopURL), chromedp.WaitVisible(button), chromedp.Click(button),
			chromedp.WaitVisible(`main[data-page="order"]`))
		return b.eval(t, `document.querySelector('main').dataset.id`)
	}

	t.Run("API v3: wx.config, chooseWXPay, paid by the notification, refunded", func(t *testing.T) {
		id := buy(t, "#buy-green-tea-v3")
		b.until(t, "wx.config answered ok", `document.querySelector('main').dataset.config === 'ok'`)
		b.until(t, "the pay button", `!document.getElementById('pay').disabled`)
		b.do(t, chromedp.Click("#pay"), chromedp.WaitVisible("#wxsim-pay-ok"))
		if got := b.eval(t, `document.getElementById('wxsim-amount').textContent`); got != "¥19.90" {
			t.Fatalf("the pay sheet shows %q", got)
		}
		b.shot(t, "demoshop-pay-sheet.png")
		b.do(t, chromedp.Click("#wxsim-pay-ok"))
		b.until(t, "chooseWXPay's success", `document.getElementById('pay-callback').textContent === 'chooseWXPay:ok'`)
		b.until(t, "paid", `!document.getElementById('paid').hidden`)
		if o := order(t, id); o.State != engine.Notified || o.PaidFen != 1990 {
			t.Fatalf("the page says paid; wxflow has %s, paid %d", o.State, o.PaidFen)
		}
		if actor := paidBy(t, id); actor != "wechat:notify" {
			t.Fatalf("paid by %q, want WeChat's notification", actor)
		}
		if text := b.eval(t, `document.getElementById('paid').textContent`); !strings.Contains(text, "verified payment notification") {
			t.Fatalf("paid banner: %q", text)
		}
		b.shot(t, "demoshop-paid.png")
		b.until(t, "the refund button", `!document.getElementById('refund').disabled`)
		b.do(t, chromedp.Click("#refund"))
		b.until(t, "refunded", `!document.getElementById('refunded').hidden`)
		if text := b.eval(t, `document.getElementById('refunded').textContent`); !strings.Contains(text, "Refunded ¥19.90") {
			t.Fatalf("refunded banner: %q", text)
		}
		if o := order(t, id); o.State != engine.Refunded || o.RefundedFen != 1990 {
			t.Fatalf("the page says refunded; wxflow has %s, refunded %d", o.State, o.RefundedFen)
		}
		b.shot(t, "demoshop-refunded.png")
	})

	t.Run("API v2, the notification lost: paid only once wxflow's query finds it", func(t *testing.T) {
		if err := simClient.Do(ctx, http.MethodPost, "/sim/faults", sim.Faults{DropNotifyRate: 1}, nil); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = simClient.Do(ctx, http.MethodPost, "/sim/faults", sim.Faults{}, nil) }()
		id := buy(t, "#buy-oolong-v2")
		// Again, with the bridge defined before the JS-SDK runs (the other
		// order of WeChat's clients).
		b.do(t, chromedp.Navigate(st.DemoShopURL+"orders/"+id+"?bridge=now"), chromedp.WaitVisible(`main[data-page="order"]`))
		if b.eval(t, `String(document.querySelector('script[src$="jsbridge.js?inject=now"]') !== null)`) != "true" {
			t.Fatal("the page does not load the bridge with inject=now")
		}
		b.until(t, "wx.config answered ok", `document.querySelector('main').dataset.config === 'ok'`)
		b.until(t, "the pay button", `!document.getElementById('pay').disabled`)
		b.do(t, chromedp.Click("#pay"), chromedp.WaitVisible("#wxsim-pay-ok"), chromedp.Click("#wxsim-pay-ok"))
		b.until(t, "chooseWXPay's success", `document.getElementById('pay-callback').textContent === 'chooseWXPay:ok'`)
		// The JS-SDK said ok; WeChat sent nothing. Two more reads of the
		// order later, the page says paid only if wxflow does.
		polls := b.eval(t, `document.querySelector('main').dataset.polls`)
		b.until(t, "two more reads", `Number(document.querySelector('main').dataset.polls) >= `+polls+` + 2`)
		pageSaysPaid := b.eval(t, `String(!document.getElementById('paid').hidden)`) == "true"
		if o := order(t, id); pageSaysPaid && o.PaidFen == 0 {
			t.Fatalf("the page says paid on the JS-SDK's word; wxflow has %s", o.State)
		} else if !pageSaysPaid {
			b.shot(t, "demoshop-waiting-for-wechat.png")
		}
		b.until(t, "paid", `!document.getElementById('paid').hidden`)
		if actor := paidBy(t, id); actor == "" || actor == "wechat:notify" {
			t.Fatalf("paid by %q, want wxflow's order query (no notification was sent)", actor)
		}
		if text := b.eval(t, `document.getElementById('paid').textContent`); !strings.Contains(text, "by asking WeChat") {
			t.Fatalf("paid banner: %q", text)
		}
		b.shot(t, "demoshop-paid-by-query.png")
	})

	t.Run("mistakes: a wrong wx.config signature, chooseWXPay without signType", func(t *testing.T) {
		id := buy(t, "#buy-milk-tea-v3")
		b.do(t, chromedp.Click("#mistake-sign-other-url"), chromedp.WaitVisible(`main[data-mistake="sign-other-url"]`))
		b.until(t, "wx.error", `document.querySelector('main').dataset.config === 'error'`)
		if got := b.eval(t, `document.getElementById('config-error').textContent`); got != "config:invalid signature" {
			t.Fatalf("wx.error shows %q, want WeChat's config:invalid signature", got)
		}
		b.until(t, "the order signed", `document.querySelector('main').dataset.state === 'signed'`)
		if b.eval(t, `String(document.getElementById('pay').disabled)`) != "true" {
			t.Fatal("the pay button is enabled after wx.config failed")
		}
		b.shot(t, "demoshop-config-invalid-signature.png")

		b.do(t, chromedp.Click("#mistake-forget-sign-type"), chromedp.WaitVisible(`main[data-mistake="forget-sign-type"]`))
		b.until(t, "wx.config answered ok", `document.querySelector('main').dataset.config === 'ok'`)
		b.until(t, "the pay button", `!document.getElementById('pay').disabled`)
		b.do(t, chromedp.Click("#pay"))
		b.until(t, "chooseWXPay's failure", `document.getElementById('pay-callback').textContent === 'chooseWXPay:invalid signature'`)
		if b.eval(t, `String(document.getElementById('wxsim-sheet') === null && JSON.parse(document.getElementById('pay-params').textContent).signType === undefined)`) != "true" {
			t.Fatal("the pay sheet opened, or the shop sent a signType")
		}
		if o := order(t, id); o.State != engine.Signed {
			t.Fatalf("after a refused paySign wxflow has %s", o.State)
		}
		b.shot(t, "demoshop-chooseWXPay-without-signType.png")
	})

	t.Run("mini-program: wx.login code, requestPayment parameters, the simulator's payer", func(t *testing.T) {
		b.do(t, chromedp.Navigate(st.DemoShopURL), chromedp.WaitVisible("#mp-buy-oolong"), chromedp.Click("#mp-buy-oolong"),
			chromedp.WaitVisible(`main[data-client="miniprogram"]`))
		id := b.eval(t, `document.querySelector('main').dataset.id`)
		b.until(t, "the requestPayment parameters", `!document.getElementById('mp-pay').disabled`)
		params := b.eval(t, `document.getElementById('mp-params').textContent`)
		if !strings.Contains(params, `"signType": "RSA"`) || !strings.Contains(params, `"paySign"`) || strings.Contains(params, `"appId"`) {
			t.Fatalf("requestPayment parameters: %s", params)
		}
		b.do(t, chromedp.Click("#mp-pay"))
		b.until(t, "paid", `!document.getElementById('paid').hidden`)
		if o := order(t, id); o.State != engine.Notified || o.Client != "miniprogram" {
			t.Fatalf("wxflow has %s (%s)", o.State, o.Client)
		}
		b.shot(t, "demoshop-miniprogram-paid.png")
	})

	b.noExceptions(t)
}

// installJSSDK installs npm's weixin-js-sdk into a temporary folder and
// returns its index.js; the test skips when npm or its registry is not
// there.
func installJSSDK(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("SKIPPING TestDemoShop: no npm on PATH (apt-get install npm): the page loads WeChat's JS-SDK from npm's " + jssdkPackage)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline", jssdkPackage)
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("SKIPPING TestDemoShop: npm could not install %s (is the npm registry reachable?): %v\n%s", jssdkPackage, err, out)
	}
	file := filepath.Join(dir, "node_modules", "weixin-js-sdk", "index.js")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != jssdkSHA256 {
		t.Fatalf("npm's %s has sha256 %x, not the file the simulator's bridge was written against", jssdkPackage, sum)
	}
	return file
}

// shopBrowser is headless Chromium as a payer's phone: WeChat's user agent,
// the simulator's certificate accepted (its key pinned, nothing else), and
// WeChat's hosts blocked so nothing of the test leaves the machine.
type shopBrowser struct {
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	// away are the requests for hosts other than this machine, by id, and
	// blocked those the browser did not send.
	away    map[network.RequestID]string
	blocked map[network.RequestID]string
}

func openShopBrowser(t *testing.T, chromium string, st *stack.Dev) *shopBrowser {
	t.Helper()
	leaf, err := x509.ParseCertificate(st.Sim.Keys().Server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.UserAgent(wechatUA), chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	b := &shopBrowser{ctx: bctx, away: map[network.RequestID]string{}, blocked: map[network.RequestID]string{}}
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Listen(bctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u, err := url.Parse(ev.Request.URL); err == nil && u.Hostname() != "127.0.0.1" && u.Scheme != "data" {
				b.away[ev.RequestID] = ev.Request.URL
			}
		case *network.EventLoadingFailed:
			if ev.BlockedReason != "" {
				b.blocked[ev.RequestID] = string(ev.BlockedReason)
			}
		}
	}); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if _, err := chromedp.Call(bctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{
		{URLPattern: "*://open.weixin.qq.com/*", Block: true}, {URLPattern: "*://res.wx.qq.com/*", Block: true}}}); err != nil {
		t.Fatalf("browser: block WeChat's hosts: %v", err)
	}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, m := range b.console {
				t.Logf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
			}
		}
	})
	return b
}

// do runs actions, a minute at most.
func (b *shopBrowser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v; the page: %s", err, b.page())
	}
}

// eval evaluates a JavaScript expression of the page as a string.
func (b *shopBrowser) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// until waits, a minute at most, for a JavaScript condition of the page.
func (b *shopBrowser) until(t *testing.T, what, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 70*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("browser: waiting for %s: %v; the page: %s", what, err, b.page())
	}
}

// page sums the page up, for a failure's message.
func (b *shopBrowser) page() string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
		var t = function (id) { var e = document.getElementById(id); return e ? e.textContent.trim() : null; };
		return JSON.stringify({url: location.href, main: Object.assign({}, (document.querySelector('main') || {}).dataset),
			config: t('config-status'), error: t('config-error'), pay: t('pay-callback'), note: t('pay-note'),
			paid: t('paid'), refund: t('refund-status'), mp: t('mp-pay-result'), message: t('message')});
	})()`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return v
}

// shot keeps a screenshot of the page in $WXFLOW_ARTIFACTS (.ci/out when unset).
func (b *shopBrowser) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("WXFLOW_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(".ci", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name), png, 0o644)
	}
}

// noExceptions fails the test on any uncaught exception of the pages, and
// on any request that left the machine.
func (b *shopBrowser) noExceptions(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, u := range b.away {
		if b.blocked[id] == "" {
			t.Errorf("the page reached %s", u)
		} else if testing.Verbose() {
			t.Logf("blocked (%s): %s", b.blocked[id], u)
		}
	}
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleException {
			t.Errorf("uncaught in the page: %s (%s:%d)", m.Text, m.URL, m.Line)
		}
	}
	if testing.Verbose() {
		for _, m := range b.console {
			t.Logf("console %s: %s (%s)", m.Type, m.Text, m.URL)
		}
	}
}
