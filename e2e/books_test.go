package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/cli"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// booksDev starts `wxflow dev` on dataDir with every payment notification
// dropped and the reconciler's payment queries off (an hour away), the
// simulator serving today's bill at once: only the books can find a payment.
func booksDev(t *testing.T, ctx context.Context, dataDir string) (*stack.Dev, *stack.Settings) {
	t.Helper()
	s := &stack.Settings{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn"}
	s.ExpiryInterval = 200 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = time.Hour, 500*time.Millisecond
	st, err := stack.StartDev(ctx, s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: 0.01, BillsAtOnce: true, Faults: sim.Faults{DropNotifyRate: 1, Seed: 5}}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return st, s
}

// books runs `wxflow books ARGS --data … --nats …` and returns its output and error.
func books(t *testing.T, ctx context.Context, s *stack.Settings, args ...string) (string, error) {
	t.Helper()
	var out, errOut strings.Builder
	cmd := cli.Root()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(append([]string{"books"}, args...), "--data", s.DataDir, "--nats", s.NATSURL))
	err := cmd.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

// TestBooksFindLostPayments: payments whose notifications never came, with
// no reconciler to ask, are found by the books (WeChat's bill has them,
// wxflow does not), queried through the query worker and recorded; the day
// then balances. A restarted `wxflow dev` remembers them at WeChat: a
// refund of an order paid before the restart is refunded, not closed.
func TestBooksFindLostPayments(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := t.TempDir()
	st, s := booksDev(t, ctx, dataDir)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			_ = st.Wait()
		}
	})
	api := &demo.Client{Base: st.APIURL, HTTP: http.DefaultClient, Key: st.ShopKey}
	payer := &demo.Client{Base: st.SimURL, HTTP: st.Sim.Client()}
	var ids []engine.OrderID
	for i := range 4 {
		var created struct {
			Order engine.Order `json:"order"`
		}
		if err := api.DoHeader(ctx, http.MethodPost, "/v1/orders", map[string]any{"amount_fen": 1000 + i, "description": "books",
			"pay_api": []string{"v2", "v3"}[i%2], "client": "jsapi", "openid": fmt.Sprintf("oBOOKS-%d", i), "client_ip": "127.0.0.1",
			"expires_in_seconds": 600}, &created, "Idempotency-Key", fmt.Sprintf("books-%d", i)); err != nil {
			t.Fatal(err)
		}
		v, err := demo.WaitState(ctx, api, created.Order.ID, engine.Signed)
		if err != nil {
			t.Fatal(err)
		}
		if err := payer.Do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": v.Order.PrepayID}, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, created.Order.ID)
	}
	// wxflow has heard nothing: the four wait for their payer.
	for _, id := range ids {
		if o, err := st.Store.Order(ctx, id); err != nil || o.State != engine.Signed {
			t.Fatalf("order %s: %s %v", id, o.State, err)
		}
	}
	out, err := books(t, ctx, s, "today")
	if err == nil || !strings.Contains(out, "missing_in_wxflow 4") || !strings.Contains(out, "a notification lost): the order is queried") {
		t.Fatalf("wxflow books today: %v\n%s", err, out)
	}
	for _, id := range ids {
		if _, err := demo.WaitState(ctx, api, id, engine.Notified); err != nil {
			t.Fatalf("order %s was not repaired: %v", id, err)
		}
	}
	out, err = books(t, ctx, s, "today", "--json")
	if err != nil {
		t.Fatalf("after the repairs: %v\n%s", err, out)
	}
	var r engine.BooksResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Status != engine.BooksBalanced || r.Counts[engine.BooksMatched] != 4 || r.Final {
		t.Fatalf("after the repairs: %+v %v\n%s", r, err, out)
	}
	if h, _ := st.Store.History(ctx, ids[0]); !strings.Contains(fmt.Sprint(h), "books") {
		t.Errorf("the repair's replay is not in the history: %+v", h)
	}
	csvOut, err := books(t, ctx, s, "today", "--csv")
	if err != nil || strings.Count(csvOut, "\n") != 5 || !strings.HasPrefix(csvOut, "day,merchant,kind,") {
		t.Fatalf("--csv: %v\n%s", err, csvOut)
	}
	resp, err := http.Get(st.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wxflow_books_repairs_total{repair="query"} 4`, `wxflow_books_runs_total{status="balanced"}`,
		`wxflow_books_discrepancies{kind="missing_in_wxflow"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The admin API runs the day through the same worker.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.APIURL+"/admin/api/books/"+string(r.Day)+"/run", nil)
	req.Header.Set("Authorization", "Bearer "+st.AdminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"balanced"`) {
		t.Fatalf("admin run: %d %s", resp.StatusCode, body)
	}
	runVerify(t, ctx, s.DataDir, st.NATSURL)

	// Restart: WeChat (the simulator's ledger) remembers the payments.
	cancel()
	_ = st.Wait()
	stopped = true
	ctx2, cancel2 := context.WithCancel(context.Background())
	st2, s2 := booksDev(t, ctx2, dataDir)
	t.Cleanup(func() { cancel2(); _ = st2.Wait() })
	api = &demo.Client{Base: st2.APIURL, HTTP: http.DefaultClient, Key: st2.ShopKey}
	if err := api.DoHeader(ctx2, http.MethodPost, "/v1/orders/"+string(ids[1])+"/refunds", map[string]any{"amount_fen": 500, "reason": "after restart"},
		nil, "Idempotency-Key", "books-refund"); err != nil {
		t.Fatal(err)
	}
	v, err := demo.WaitState(ctx2, api, ids[1], engine.Refunded)
	if err != nil || v.Order.RefundedFen != 500 || v.Order.Flags.Has(engine.FlagRefundClosed) {
		t.Fatalf("a refund of an order paid before the restart: %+v %v", v.Order, err)
	}
	enginetest.WaitFor(t, 60*time.Second, func() error {
		out, err := books(t, ctx2, s2, "today", "--json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return err
		}
		if r.Totals.WechatRefunds != 1 || r.Counts[engine.BooksMatched] != 5 {
			return fmt.Errorf("counts %v, totals %+v", r.Counts, r.Totals)
		}
		return nil
	})
}
