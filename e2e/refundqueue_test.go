package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/cli"
	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// refundShop is a shop driving wxflow's API over HTTP, as a shop's backend does.
type refundShop struct {
	t   *testing.T
	st  *stack.Dev
	ctx context.Context
}

// call sends a request of the shop and returns the status and the body.
func (s refundShop) call(method, path, body string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(s.ctx, method, s.st.APIURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.st.ShopKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// paid creates an order of amount fen on payAPI and pays it in the simulator.
func (s refundShop) paid(amount int64, payAPI string) engine.OrderID {
	s.t.Helper()
	status, out := s.call(http.MethodPost, "/v1/orders", fmt.Sprintf(`{"amount_fen":%d,"description":"refunds","openid":"oREFUNDS","pay_api":%q}`, amount, payAPI))
	var v demo.OrderView
	if err := json.Unmarshal(out, &v); status != http.StatusCreated || err != nil {
		s.t.Fatalf("create: %d %s", status, out)
	}
	api := &demo.Client{Base: s.st.APIURL, HTTP: http.DefaultClient, Key: s.st.ShopKey}
	wctx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()
	o, err := demo.WaitState(wctx, api, v.Order.ID, engine.Signed)
	if err != nil {
		s.t.Fatal(err)
	}
	payer := &demo.Client{Base: s.st.SimURL, HTTP: s.st.Sim.Client()}
	if err := payer.Do(s.ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": o.Order.PrepayID}, nil); err != nil {
		s.t.Fatal(err)
	}
	if _, err := demo.WaitState(wctx, api, v.Order.ID, engine.Notified); err != nil {
		s.t.Fatal(err)
	}
	return v.Order.ID
}

// refund asks a refund and checks the answer is the refund, in exactly the
// documented shape.
func (s refundShop) refund(id engine.OrderID, body string) api.RefundView {
	s.t.Helper()
	status, out := s.call(http.MethodPost, "/v1/orders/"+string(id)+"/refunds", body)
	var v api.RefundView
	var keys map[string]json.RawMessage
	if status != http.StatusAccepted || json.Unmarshal(out, &v) != nil || json.Unmarshal(out, &keys) != nil {
		s.t.Fatalf("refund %s: %d %s", body, status, out)
	}
	for _, k := range []string{"order_id", "out_refund_no", "amount_fen", "reason", "status", "created_at", "updated_at"} {
		if _, ok := keys[k]; !ok {
			s.t.Errorf("the answer %s has no %s", out, k)
		}
	}
	for k := range keys {
		if !slices.Contains([]string{"order_id", "out_refund_no", "amount_fen", "reason", "status", "refund_id", "error_code", "error_message", "created_at", "updated_at"}, k) {
			s.t.Errorf("the answer %s has %s, not in the refund's shape", out, k)
		}
	}
	if v.OrderID != id || v.CreatedAt.IsZero() || !slices.Contains([]string{"queued", "pending"}, v.Status) {
		s.t.Errorf("the answer %s", out)
	}
	return v
}

// refunds reads the order's refunds through the API.
func (s refundShop) refunds(id engine.OrderID) []api.RefundView {
	s.t.Helper()
	status, out := s.call(http.MethodGet, "/v1/orders/"+string(id)+"/refunds", "")
	var l api.RefundList
	if status != http.StatusOK || json.Unmarshal(out, &l) != nil {
		s.t.Fatalf("list: %d %s", status, out)
	}
	return l.Refunds
}

// waitRefunds waits until the order's refunds have the statuses want (no:status).
func (s refundShop) waitRefunds(id engine.OrderID, want ...string) []api.RefundView {
	s.t.Helper()
	var rs []api.RefundView
	enginetest.WaitFor(s.t, 60*time.Second, func() error {
		rs = s.refunds(id)
		var got []string
		for _, r := range rs {
			got = append(got, r.OutRefundNo+":"+r.Status)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("refunds %v, want %v", got, want)
		}
		return nil
	})
	return rs
}

// TestRefundQueue runs queued refunds through the real engine, refund
// worker and simulator (which refuses, as WeChat does, a refund of an order
// less than a minute of its time after the one before: FREQUENCY_LIMITED).
// A shop asks three refunds of one paid order back to back, on v2 and on v3:
// each is answered 202 with the refund, the first pending, the others
// queued; all three succeed, sent one at a time, each after the one before
// settled and a scaled minute apart at WeChat. A refund WeChat refuses fails
// with WeChat's code and message, and the refund queued behind it still goes.
func TestRefundQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stack.Settings{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", PublicAddr: "127.0.0.1:0", LogLevel: "warn"}
	s.ExpiryInterval = 100 * time.Millisecond
	s.ReconcilePaymentAfter, s.ReconcileRefundAfter = 5*time.Second, 5*time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const timeScale = 0.01 // WeChat's minute is 600 ms
	st, err := stack.StartDev(ctx, &s, stack.DevOptions{Unlimited: true, NATSPort: -1, SimAddr: "127.0.0.1:0",
		Sim: sim.Config{TimeScale: timeScale}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Wait() })
	simMinute := time.Duration(float64(time.Minute) * timeScale)
	if s.RefundGap != simMinute {
		t.Fatalf("dev's refund gap is %s, want the simulator's minute %s", s.RefundGap, simMinute)
	}
	shop := refundShop{t: t, st: st, ctx: ctx}

	orders := map[string]engine.OrderID{}
	for _, payAPI := range []string{"v2", "v3"} {
		id := shop.paid(900, payAPI)
		orders[payAPI] = id
		var nos []string
		for i := range 3 {
			v := shop.refund(id, fmt.Sprintf(`{"amount_fen":300,"out_refund_no":"Q%s-%s-%d","reason":"part %d"}`, payAPI, id[len(id)-6:], i, i))
			want := map[bool]string{true: "pending", false: "queued"}[i == 0]
			if v.Status != want || v.AmountFen != 300 || v.Reason != fmt.Sprintf("part %d", i) {
				t.Errorf("%s refund %d: %+v, want %s", payAPI, i, v, want)
			}
			nos = append(nos, v.OutRefundNo)
		}
		// Over what the queued ones leave: refused at once.
		if status, out := shop.call(http.MethodPost, "/v1/orders/"+string(id)+"/refunds", `{"amount_fen":1}`); status != http.StatusUnprocessableEntity ||
			!bytes.Contains(out, []byte("over_refund")) {
			t.Errorf("%s: a fourth refund: %d %s", payAPI, status, out)
		}
		orders[payAPI+"-nos"] = engine.OrderID(strings.Join(nos, ","))
	}
	for _, payAPI := range []string{"v2", "v3"} {
		id := orders[payAPI]
		nos := strings.Split(string(orders[payAPI+"-nos"]), ",")
		var want []string
		for _, no := range nos {
			want = append(want, no+":succeeded")
		}
		for _, r := range shop.waitRefunds(id, want...) {
			if r.RefundID == "" || r.ErrorCode != "" {
				t.Errorf("%s: %+v", payAPI, r)
			}
		}
		o, err := st.Store.Order(ctx, id)
		if err != nil || o.State != engine.Refunded || o.RefundedFen != 900 {
			t.Fatalf("%s: order %+v (%v)", payAPI, o, err)
		}
		checkSentInTurn(t, st, id, s.RefundGap)
	}

	// WeChat refuses a refund for good: it fails with WeChat's code and
	// message, the order is flagged, and the refund queued behind it goes.
	for _, payAPI := range []string{"v2", "v3"} {
		id := shop.paid(500, payAPI)
		bad, good := "QF"+payAPI+"-"+string(id[len(id)-6:]), "QG"+payAPI+"-"+string(id[len(id)-6:])
		st.Sim.RefuseRefund(bad, "USER_ACCOUNT_ABNORMAL", "退款请求失败：用户帐号注销")
		if v := shop.refund(id, `{"amount_fen":300,"out_refund_no":"`+bad+`"}`); v.Status != "pending" {
			t.Errorf("%s: the refused refund: %+v", payAPI, v)
		}
		if v := shop.refund(id, `{"amount_fen":200,"out_refund_no":"`+good+`"}`); v.Status != "queued" {
			t.Errorf("%s: the one behind it: %+v", payAPI, v)
		}
		rs := shop.waitRefunds(id, bad+":failed", good+":succeeded")
		if rs[0].ErrorCode != "USER_ACCOUNT_ABNORMAL" || rs[0].ErrorMessage != "退款请求失败：用户帐号注销" || rs[0].RefundID != "" {
			t.Errorf("%s: the refused refund reads %+v", payAPI, rs[0])
		}
		status, out := shop.call(http.MethodGet, "/v1/orders/"+string(id)+"/refunds/"+bad, "")
		if status != http.StatusOK || !bytes.Contains(out, []byte(`"error_code":"USER_ACCOUNT_ABNORMAL"`)) {
			t.Errorf("%s: GET the refused refund: %d %s", payAPI, status, out)
		}
		o, _ := st.Store.Order(ctx, id)
		if o.State != engine.Refunded || o.RefundedFen != 200 || !o.Flags.Has(engine.FlagRefundClosed) {
			t.Errorf("%s: order %s, %d fen refunded, flags %v", payAPI, o.State, o.RefundedFen, o.Flags)
		}
		checkSentInTurn(t, st, id, s.RefundGap)
	}

	// The money agrees with WeChat's, and wxflow verify finds nothing,
	// the refunds' pacing at dev's gap included.
	state := st.Sim.Snapshot()
	byTrade := map[string]int64{}
	for _, r := range state.Refunds {
		byTrade[r.OutTradeNo] += r.RefundFen
	}
	for _, o := range state.Orders {
		if byTrade[o.OutTradeNo] > o.TotalFen {
			t.Errorf("WeChat refunded %d fen of %s's %d", byTrade[o.OutTradeNo], o.OutTradeNo, o.TotalFen)
		}
	}
	enginetest.WaitFor(t, 10*time.Second, func() error {
		if n, err := st.Store.OutboxBacklog(ctx); err != nil || n > 0 {
			return fmt.Errorf("outbox backlog %d (%v)", n, err)
		}
		return nil
	})
	var out strings.Builder
	cmd := cli.Root()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"verify", "--data", s.DataDir, "--nats", st.NATSURL, "--unsent-after", "10s", "--refund-gap", s.RefundGap.String()})
	if err := cmd.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "no breach") {
		t.Fatalf("wxflow verify: %v\n%s", err, out.String())
	}
}

// checkSentInTurn: the order's refunds were sent one at a time, each after
// the one before settled and a gap after it (wxflow's record), and WeChat
// received them at least its minute apart (the simulator's record).
func checkSentInTurn(t *testing.T, st *stack.Dev, id engine.OrderID, gap time.Duration) {
	t.Helper()
	rs, err := st.Store.Refunds(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rs); i++ {
		prev, r := rs[i-1], rs[i]
		if r.SentAt == nil || prev.SettledAt == nil || r.SentAt.Before(prev.SettledAt.Add(gap)) {
			t.Errorf("order %s: refund %s sent at %v, %s settled at %v: not a gap of %s after", id, r.OutRefundNo, r.SentAt, prev.OutRefundNo, prev.SettledAt, gap)
		}
	}
	o, err := st.Store.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, r := range st.Sim.Snapshot().Refunds {
		if r.OutTradeNo == o.OutTradeNo {
			at = append(at, r.CreatedAt)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < gap {
			t.Errorf("order %s: WeChat received two refunds %s apart, less than its minute (%s)", id, d, gap)
		}
	}
}
