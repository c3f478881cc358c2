package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/chromedp"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/cli"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestStuckOrdersAndReplay forces the prepay worker to fail (WeChat answers
// SYSTEMERROR to everything) until its orders are dead-lettered; they must
// show up as stuck, one is replayed from the admin page in a real headless
// Chromium, and `wxflow admin replay --stuck` finishes the others.
func TestStuckOrdersAndReplay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = time.Minute, time.Minute
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0", Sim: sim.Config{TimeScale: 0.01, Faults: sim.Faults{SystemErrorRate: 1, Seed: 5}}, Workers: stack.WorkerOptions{MaxDeliver: 2}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	api := &demo.Client{Base: st.APIURL, HTTP: http.DefaultClient, Key: st.ShopKey}
	for i := range 4 {
		body := map[string]any{"amount_fen": 100 + i, "description": "stuck demo", "openid": fmt.Sprintf("oSTUCK-%d", i), "pay_api": []string{"v2", "v3"}[i%2]}
		if err := api.Do(ctx, http.MethodPost, "/v1/orders", body, nil); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		cmd := cli.Root()
		cmd.SetOut(&out)
		cmd.SetArgs(append(args, "--data", s.DataDir))
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("wxflow %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	var stuck []engine.StuckOrder
	enginetest.WaitFor(t, 20*time.Second, func() error {
		stuck = nil
		_ = json.Unmarshal([]byte(admin("admin", "stuck", "--json")), &stuck)
		if len(stuck) != 4 {
			return fmt.Errorf("%d stuck orders, want 4", len(stuck))
		}
		return nil
	})
	if !strings.HasPrefix(stuck[0].Why, "flagged: dead_letter:prepay") {
		t.Fatalf("why: %q", stuck[0].Why)
	}
	// WeChat recovers.
	if err := (&demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}).Do(ctx, http.MethodPost, "/sim/faults", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	want := "4 replays sent"
	if replayInBrowser(t, st, stuck[0].ID) {
		want = "3 replays sent"
	}
	out := admin("admin", "replay", "--stuck", "--reason", "WeChat is back", "--who", "ops")
	if !strings.Contains(out, want) {
		t.Fatalf("replay --stuck: %s", out)
	}
	for _, o := range stuck {
		enginetest.WaitFor(t, 10*time.Second, func() error {
			got, _ := st.Store.Order(ctx, o.ID)
			if got.State != engine.Signed || got.Flag != "" {
				return fmt.Errorf("order %s is %s (flag %q)", o.ID, got.State, got.Flag)
			}
			return nil
		})
	}
	if out := admin("admin", "stuck"); !strings.Contains(out, "0 stuck") {
		t.Fatalf("after the replays: %s", out)
	}
	out = admin("admin", "show", string(stuck[1].ID))
	if !strings.Contains(out, "admin:ops") || !strings.Contains(out, "WeChat is back") {
		t.Fatalf("show does not tell who and why: %s", out)
	}
	if !strings.Contains(out, "calls to WeChat") || !strings.Contains(out, "retry  SYSTEM") || !strings.Contains(out, "dead") {
		t.Fatalf("show does not list the calls to WeChat and their outcomes: %s", out)
	}
}

// replayInBrowser signs in to the admin page in headless Chromium, opens the
// stuck order from the list, presses Replay and waits to see it move on. It
// says false when it skipped (no Chromium, outside CI).
func replayInBrowser(t *testing.T, st *stack.Dev, id engine.OrderID) bool {
	t.Helper()
	bctx, ok := adminBrowser(t, st.APIURL+"/admin/")
	if !ok {
		return false
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	defer cancelTimeout()
	err := chromedp.Do(tctx,
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", st.AdminToken),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#stuck"),
	)
	if err != nil {
		t.Fatalf("browser: sign in and list: %v", err)
	}
	listed, err := chromedp.Run(tctx, chromedp.Text("#stuck"))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(tctx,
		chromedp.Click(`a[href="/admin/orders/`+string(id)+`"]`),
		chromedp.WaitVisible("#why"),
		chromedp.SendKeys("#reason", "replayed from the admin page"),
		chromedp.Click("#replay"),
		chromedp.WaitVisible("#message"),
	)
	if err != nil {
		t.Fatalf("browser: open and replay: %v", err)
	}
	if !strings.Contains(listed, string(id)) {
		t.Fatalf("the stuck list does not show %s: %s", id, listed)
	}
	// Reload until the order has moved on; the page reads the store, so a
	// signed order on the page is the replay done.
	var state string
	enginetest.WaitFor(t, 15*time.Second, func() error {
		if err := chromedp.Do(tctx, chromedp.Reload(), chromedp.WaitVisible("#state")); err != nil {
			return err
		}
		if state, err = chromedp.Run(tctx, chromedp.Text("#state")); err != nil {
			return err
		}
		if state != string(engine.Signed) {
			return fmt.Errorf("the order is %s after Replay", state)
		}
		return nil
	})
	adminShot(t, tctx, "admin-order-after-replay.png")
	// The history names the admin the session belongs to (dev's one token: "admin").
	hist, err := st.Store.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var replayed bool
	for _, e := range hist {
		if strings.Contains(e.Reason, "replayed from the admin page") {
			replayed = e.Actor == "admin:admin"
			if !replayed {
				t.Fatalf("the page's replay is written as %q, want admin:admin", e.Actor)
			}
		}
	}
	if !replayed {
		t.Fatal("the page's replay is not in the history")
	}
	// Sign out: the page sends the sign-in form again.
	if err := chromedp.Do(tctx, chromedp.Click("#signout"), chromedp.WaitVisible("#token")); err != nil {
		t.Fatalf("browser: sign out: %v", err)
	}
	return true
}

// inCI says whether the test runs in CI, where a missing browser or font is
// a failure, not a skip: CI sets CI, and .ci/run sets WXFLOW_ARTIFACTS.
func inCI() bool { return os.Getenv("CI") != "" || os.Getenv("WXFLOW_ARTIFACTS") != "" }

// adminBrowser starts headless Chromium (1280 px wide, the test's own
// profile) on url and returns its context, stopped when the test ends; false
// when there is no Chromium outside CI (the test then skips its browser
// part, saying so).
func adminBrowser(t *testing.T, url string) (context.Context, bool) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if inCI() {
			t.Fatal("chromium is not installed: .ci/run installs Debian's chromium package")
		}
		t.Log("SKIPPING the browser part: no chromium on PATH (apt-get install chromium)")
		return nil, false
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("browser: %v", err)
	}
	return bctx, true
}

// adminShot saves a screenshot of the whole page as name in
// $WXFLOW_ARTIFACTS (CI keeps that folder), else in .ci/out.
func adminShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("WXFLOW_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(".ci", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

// TestAdminPage drives the admin page in headless Chromium as an admin meets
// it: WeChat fails every pay call (SYSTEMERROR, 系统错误) until the orders are
// stuck; the sign-in page has no search; the stuck list and the order list
// show money as yuan and fen; a stuck order's calls show WeChat's Chinese
// message, drawn with a CJK font (checked in CI); once WeChat is back the
// order is replayed from the page, its payment query answering "not paid
// yet" shows as a call, it is paid, a refund is asked through the refund form
// and its confirmation, the refund's calls show though they produced no
// command, and once WeChat settles it the refunded order offers no Close and
// a refund of what remains. Screenshots of the stuck list, the order list,
// the Chinese message and the refunded order go to $WXFLOW_ARTIFACTS.
func TestAdminPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0"}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = time.Hour, time.Hour // the page's replays ask, not the reconciler
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim:     sim.Config{TimeScale: 0.01, RefundDelay: 100_000 * time.Hour, Faults: sim.Faults{SystemErrorRate: 1, Seed: 7}},
		Workers: stack.WorkerOptions{MaxDeliver: 2}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	shop := &demo.Client{Base: st.APIURL, HTTP: http.DefaultClient, Key: st.ShopKey}
	var ids []engine.OrderID
	for i, o := range []struct {
		fen  int64
		api  string
		desc string
	}{{1234, "v3", "绿茶 green tea"}, {300, "v2", "stuck demo"}, {5000, "v3", "月饼礼盒 mooncakes"}} {
		var out struct{ Order engine.Order }
		body := map[string]any{"amount_fen": o.fen, "description": o.desc, "openid": fmt.Sprintf("oADMINPAGE-%d", i), "pay_api": o.api}
		if err := shop.Do(ctx, http.MethodPost, "/v1/orders", body, &out); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Order.ID)
	}
	id := ids[0]
	enginetest.WaitFor(t, 30*time.Second, func() error {
		stuck, err := st.Store.Stuck(ctx, engine.StuckFilter{})
		if err != nil || len(stuck) != len(ids) {
			return fmt.Errorf("%d stuck orders (%v), want %d", len(stuck), err, len(ids))
		}
		return nil
	})

	bctx, ok := adminBrowser(t, st.APIURL+"/admin/")
	if !ok {
		t.Skip("SKIPPING: the admin page test needs chromium")
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelTimeout()
	js := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("browser: %s: %v", expr, err)
		}
		return v
	}
	present := func(sel string) bool {
		return js(`document.querySelector(`+strconvQuote(sel)+`) ? "yes" : "no"`) == "yes"
	}
	text := func(sel string) string {
		return js(`(document.querySelector(` + strconvQuote(sel) + `) || {innerText: ""}).innerText`)
	}
	// fits: the page does not scroll sideways at 1280 px.
	fits := func(what string) {
		t.Helper()
		const check = `(document.documentElement.scrollWidth <= window.innerWidth) + ": " + document.documentElement.scrollWidth + " px in " + window.innerWidth`
		if got := js(check); !strings.HasPrefix(got, "true") {
			t.Errorf("%s is wider than the window: %s", what, got)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	orderURL := st.APIURL + "/admin/orders/" + string(id)
	// openUntil opens the order's page until check passes: the page reads
	// the store and the call records, which the workers write a moment later.
	openUntil := func(what string, check func() error) {
		t.Helper()
		enginetest.WaitFor(t, 60*time.Second, func() error {
			if err := chromedp.Do(tctx, chromedp.Navigate(orderURL), chromedp.WaitVisible("#state")); err != nil {
				return err
			}
			if err := check(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	contains := func(sel, want string) func() error {
		return func() error {
			if got := text(sel); !strings.Contains(got, want) {
				return fmt.Errorf("%s shows %q, want %q in it", sel, got, want)
			}
			return nil
		}
	}

	// The sign-in page: the token, nothing else.
	do("sign-in page", chromedp.WaitVisible("#token"))
	if present(`input[name="q"]`) || present("#search") {
		t.Error("the sign-in page shows the search box")
	}
	do("sign in", chromedp.SendKeys("#token", st.AdminToken), chromedp.Click("#signin"), chromedp.WaitVisible("#stuck"))
	stuckList := text("#stuck")
	for _, want := range []string{string(id), "¥12.34 (1234 fen)", "¥50.00 (5000 fen)", "dead_letter:prepay"} {
		if !strings.Contains(stuckList, want) {
			t.Errorf("the stuck list does not show %q:\n%s", want, stuckList)
		}
	}
	fits("the stuck list")
	adminShot(t, tctx, "admin-stuck.png")
	do("order list", chromedp.Click("#orders-link"), chromedp.WaitVisible("#orders"))
	if list := text("#orders"); !strings.Contains(list, "¥3.00 (300 fen)") || !strings.Contains(list, string(ids[2])) {
		t.Errorf("the order list does not show the orders with yuan and fen:\n%s", list)
	}
	fits("the order list")
	adminShot(t, tctx, "admin-orders.png")

	// The stuck order: WeChat's message in Chinese, as it came, in a CJK font.
	openUntil("the calls of the stuck order", contains("#calls", "系统错误"))
	calls := text("#calls")
	for _, want := range []string{"prepay SYSTEM_ERROR", "retry", "dead", " ms"} {
		if !strings.Contains(calls, want) {
			t.Errorf("the calls table does not show %q:\n%s", want, calls)
		}
	}
	if !present("#close") || present("#refund-form") {
		t.Error("an unpaid order: want Close and no refund form")
	}
	checkCJKFont(t, tctx)
	if w := js(`String(document.querySelector("#calls").getBoundingClientRect().right <= document.querySelector("main").getBoundingClientRect().right + 1)`); w != "true" {
		t.Error("the calls table overflows its column")
	}
	fits("the stuck order's page")
	adminShot(t, tctx, "admin-order-wechat-error.png")

	// WeChat is back: replay from the page, then ask about the payment.
	if err := (&demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}).Do(ctx, http.MethodPost, "/sim/faults", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	do("replay", chromedp.SendKeys("#reason", "WeChat is back"), chromedp.Click("#replay"), chromedp.WaitVisible("#message"))
	openUntil("the replayed order", contains("#state", string(engine.Signed)))
	do("ask about the payment", chromedp.SendKeys("#reason", "did the payer pay?"), chromedp.Click("#replay"), chromedp.WaitVisible("#message"))
	openUntil("the query's call", contains("#calls", "query NOTPAY"))

	// The payer pays: a paid order offers a refund, not a Close.
	o, err := st.Store.Order(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}).Do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": o.PrepayID}, nil); err != nil {
		t.Fatal(err)
	}
	openUntil("the paid order", contains("#state", string(engine.Notified)))
	if present("#close") || present("#replay") || !present("#refund-form") {
		t.Fatalf("a paid order: Close %v, Replay %v, refund form %v; want only the refund form", present("#close"), present("#replay"), present("#refund-form"))
	}
	if v := js(`document.querySelector("#refund-amount").value`); v != "12.34" || !strings.Contains(text("#refund-remaining"), "¥12.34 (1234 fen)") {
		t.Fatalf("the refund form offers %q (%s), want 12.34 of ¥12.34 (1234 fen)", v, text("#refund-remaining"))
	}

	// A refund through the form and its confirmation.
	do("refund form", chromedp.SetValue("#refund-amount", "5"), chromedp.SendKeys("#refund-reason", "退一半 half back"),
		chromedp.Click("#refund"), chromedp.WaitVisible("#confirm-refund"))
	if got := text("#confirm-amount"); got != "¥5.00 (500 fen)" {
		t.Fatalf("the confirmation asks for %q, want ¥5.00 (500 fen)", got)
	}
	no := js(`document.querySelector('input[name="out_refund_no"]').value`)
	do("confirm the refund", chromedp.Click("#confirm-refund"), chromedp.WaitVisible("#message"))
	if msg := text("#message"); !strings.Contains(msg, "refund of ¥5.00 (500 fen) asked") {
		t.Fatalf("after the confirmation: %q", msg)
	}
	// WeChat has it processing: the refund's calls show, though they produced no command.
	openUntil("the refund's calls", contains("#calls", "refund PROCESSING → refund query PROCESSING"))
	if got := text("#refunds"); !strings.Contains(got, no) || !strings.Contains(got, "¥5.00 (500 fen)") || !strings.Contains(got, "pending") {
		t.Fatalf("the refunds table: %q", got)
	}
	if !st.Sim.SettleRefund(no) {
		t.Fatalf("WeChat has no refund %s processing", no)
	}
	openUntil("the settled refund", func() error {
		if err := contains("#state", string(engine.Refunded))(); err != nil {
			return err
		}
		return contains("#refunds", "succeeded")()
	})
	if present("#close") {
		t.Error("a refunded order shows Close")
	}
	if v := js(`document.querySelector("#refund-amount").value`); v != "7.34" || !strings.Contains(text("#refund-remaining"), "¥7.34 (734 fen) remain of ¥12.34 (1234 fen) paid") {
		t.Errorf("after a refund of 5.00 the form offers %q (%s), want 7.34", v, text("#refund-remaining"))
	}
	if got := text("#refunded"); got != "¥5.00 (500 fen)" {
		t.Errorf("refunded: %q", got)
	}
	fits("the refunded order's page")
	adminShot(t, tctx, "admin-order-refunded.png")
	refunds, err := st.Store.Refunds(ctx, id)
	if err != nil || len(refunds) != 1 || refunds[0].AmountFen != 500 || refunds[0].State != engine.RefundSucceeded {
		t.Fatalf("refunds in the store: %+v (%v)", refunds, err)
	}
	hist, err := st.Store.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist {
		if e.Type == string(engine.EventRefunding) && e.Actor != "admin:admin" {
			t.Errorf("the refund is written as %q, want admin:admin", e.Actor)
		}
	}
}

// strconvQuote quotes s as a JavaScript string literal.
func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkCJKFont asks Chromium which fonts drew the calls table's error cells
// (CSS.getPlatformFontsForNode) and wants one of them to be a font that
// covers Chinese (fc-list :lang=zh): with none installed, 系统错误 is drawn as
// empty boxes. It fails in CI when no such font is installed (.ci/run
// installs fonts-noto-cjk) and skips the check elsewhere.
func checkCJKFont(t *testing.T, ctx context.Context) {
	t.Helper()
	out, _ := exec.Command("fc-list", ":lang=zh", "family").Output()
	zh := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		for _, f := range strings.Split(strings.TrimSpace(line), ",") {
			if f = strings.TrimSpace(f); f != "" {
				zh[f] = true
			}
		}
	}
	if len(zh) == 0 {
		if inCI() {
			t.Fatal("no font covers Chinese (fc-list :lang=zh is empty): .ci/run installs fonts-noto-cjk")
		}
		t.Log("SKIPPING the CJK font check: no font covers Chinese here (apt-get install fonts-noto-cjk)")
		return
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("#calls td.err")))
	if err != nil || len(nodes) == 0 {
		t.Fatalf("the calls' error cells: %d (%v)", len(nodes), err)
	}
	var used []string
	for _, n := range nodes {
		fonts, err := chromedp.Run(ctx, chromedp.Action[css.GetPlatformFontsForNodeResult](func(ctx context.Context, tg *chromedp.Target) (css.GetPlatformFontsForNodeResult, error) {
			return cdp.Call(ctx, tg, css.GetPlatformFontsForNode, css.GetPlatformFontsForNodeParams{NodeID: n.NodeID})
		}))
		if err != nil {
			t.Fatalf("platform fonts: %v", err)
		}
		for _, f := range fonts.Fonts {
			if zh[f.FamilyName] {
				t.Logf("系统错误 is drawn with %s (%d glyphs), a font that covers Chinese", f.FamilyName, int(f.GlyphCount))
				return
			}
			used = append(used, f.FamilyName)
		}
	}
	t.Fatalf("系统错误 is drawn with %v, none of which covers Chinese (%d such fonts installed)", used, len(zh))
}
