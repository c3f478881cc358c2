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
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: .ci/run installs Debian's chromium package")
		}
		t.Log("SKIPPING the browser part: no chromium on PATH (apt-get install chromium)")
		return false
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(bctx, chromedp.Navigate(st.APIURL+"/admin/")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	defer cancelTimeout()
	err = chromedp.Do(tctx,
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
	if shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
		dir := os.Getenv("WXFLOW_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join(".ci", "out")
		}
		if os.MkdirAll(dir, 0o755) == nil {
			_ = os.WriteFile(filepath.Join(dir, "admin-order-after-replay.png"), shot, 0o644)
		}
	}
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
