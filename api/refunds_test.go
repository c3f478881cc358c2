package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
)

// paidOrder is a paid order of shop alpha, of amount fen.
func (h *harness) paidOrder(t *testing.T, amount int64) engine.Order {
	t.Helper()
	o := h.prepaid(t, amount, "v3")
	ctx := context.Background()
	for _, c := range []engine.Command{
		{ID: "s:" + string(o.ID), Verb: engine.VerbSigned, OrderID: o.ID, Signed: &engine.SignedInfo{PayParams: engine.RawJSON(testPayParams)}},
		{ID: "n:" + string(o.ID), Verb: engine.VerbNotify, OrderID: o.ID,
			Notify: &engine.Payment{TransactionID: "4200" + string(o.ID), AmountFen: amount, Source: engine.SourceNotification}},
	} {
		if res, err := h.eng.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
	return h.state(t, o.ID)
}

// refundAnswer is a refund's answer, decoded, with the keys it has.
type refundAnswer struct {
	api.RefundView
	keys []string
}

func decodeRefund(t *testing.T, out []byte) refundAnswer {
	t.Helper()
	var a refundAnswer
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &a.RefundView); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	for k := range m {
		a.keys = append(a.keys, k)
	}
	slices.Sort(a.keys)
	return a
}

// TestShopRefunds: refunds are queued, never refused because one is at
// WeChat; each is answered 202 with the refund itself (its exact keys);
// the same request again is the same refund, replayed; the same
// out_refund_no with another amount a conflict; queued refunds count
// against the payment; GET lists them in the order asked and reads one; a
// failed refund shows WeChat's code and message; the 51st is refused.
func TestShopRefunds(t *testing.T) {
	h := newHarness(t)
	o := h.paidOrder(t, 1000)
	path := "/v1/orders/" + string(o.ID) + "/refunds"
	post := func(body string, header ...string) (*http.Response, []byte) {
		t.Helper()
		return h.doResp(t, http.MethodPost, path, "application/json", []byte(body), header...)
	}
	base := []string{"amount_fen", "created_at", "order_id", "out_refund_no", "reason", "status", "updated_at"}

	resp, out := post(`{"amount_fen":300,"out_refund_no":"SHOP-A-0001","reason":"broken"}`)
	a := decodeRefund(t, out)
	if resp.StatusCode != http.StatusAccepted || a.Status != "pending" || a.OrderID != o.ID || a.OutRefundNo != "SHOP-A-0001" ||
		a.AmountFen != 300 || a.Reason != "broken" || a.CreatedAt.IsZero() || !slices.Equal(a.keys, base) ||
		resp.Header.Get("Location") != path+"/SHOP-A-0001" || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first refund: %d %s %v", resp.StatusCode, out, resp.Header)
	}
	resp, out = post(`{"amount_fen":300}`, "Idempotency-Key", "refund-b")
	b := decodeRefund(t, out)
	if resp.StatusCode != http.StatusAccepted || b.Status != "queued" || !strings.HasPrefix(b.OutRefundNo, "wxr") || b.Reason != "" || !slices.Equal(b.keys, base) {
		t.Fatalf("second refund, while the first is at WeChat: %d %s", resp.StatusCode, out)
	}
	resp, out = post(`{"amount_fen":300}`)
	c := decodeRefund(t, out)
	if resp.StatusCode != http.StatusAccepted || c.Status != "queued" || c.OutRefundNo == b.OutRefundNo {
		t.Fatalf("third refund: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(`{"amount_fen":101}`); resp.StatusCode != http.StatusUnprocessableEntity || decodeError(t, out).Error.Code != "over_refund" {
		t.Fatalf("a refund above what the queued ones leave: %d %s", resp.StatusCode, out)
	}
	for _, tc := range []struct {
		name   string
		body   string
		header []string
		want   refundAnswer
	}{
		{"by out_refund_no", `{"amount_fen":300,"out_refund_no":"SHOP-A-0001","reason":"broken"}`, nil, a},
		{"by Idempotency-Key", `{"amount_fen":300}`, []string{"Idempotency-Key", "refund-b"}, b},
	} {
		resp, out := post(tc.body, tc.header...)
		got := decodeRefund(t, out)
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" || got.OutRefundNo != tc.want.OutRefundNo ||
			got.Status != tc.want.Status || !got.CreatedAt.Equal(tc.want.CreatedAt) {
			t.Errorf("the same refund again %s: %d %s %v, want %+v", tc.name, resp.StatusCode, out, resp.Header, tc.want)
		}
	}
	if resp, out := post(`{"amount_fen":301,"out_refund_no":"SHOP-A-0001"}`); resp.StatusCode != http.StatusConflict || decodeError(t, out).Error.Code != "conflict" {
		t.Fatalf("the same out_refund_no, another amount: %d %s", resp.StatusCode, out)
	}

	// The list, in the order asked; one by its number.
	status, out := h.do(t, http.MethodGet, path, "", nil)
	var list api.RefundList
	if err := json.Unmarshal(out, &list); status != http.StatusOK || err != nil {
		t.Fatalf("list: %d %s", status, out)
	}
	var got []string
	for _, r := range list.Refunds {
		got = append(got, r.OutRefundNo+":"+r.Status)
	}
	if want := []string{"SHOP-A-0001:pending", b.OutRefundNo + ":queued", c.OutRefundNo + ":queued"}; !slices.Equal(got, want) {
		t.Fatalf("list %v, want %v", got, want)
	}
	status, out = h.do(t, http.MethodGet, path+"/"+b.OutRefundNo, "", nil)
	if one := decodeRefund(t, out); status != http.StatusOK || one.OutRefundNo != b.OutRefundNo || one.Status != "queued" || one.AmountFen != 300 {
		t.Fatalf("one refund: %d %s", status, out)
	}

	// WeChat refuses the first: its code and message are the refund's.
	ctx := context.Background()
	if res, err := h.eng.Apply(ctx, engine.Command{ID: "refused-a", Verb: engine.VerbRefunded, OrderID: o.ID, Actor: "worker:refund",
		Refunded: &engine.RefundDone{OutRefundNo: "SHOP-A-0001", Source: "refund:USER_ACCOUNT_ABNORMAL", Code: "USER_ACCOUNT_ABNORMAL", Message: "退款请求失败"}}); err != nil || !res.Applied {
		t.Fatalf("refusal: %+v %v", res, err)
	}
	status, out = h.do(t, http.MethodGet, path+"/SHOP-A-0001", "", nil)
	if f := decodeRefund(t, out); status != http.StatusOK || f.Status != "failed" || f.ErrorCode != "USER_ACCOUNT_ABNORMAL" || f.ErrorMessage != "退款请求失败" ||
		!slices.Equal(f.keys, append([]string{"amount_fen", "created_at", "error_code", "error_message"}, base[2:]...)) {
		t.Fatalf("a failed refund: %d %s", status, out)
	}
	// Its 300 fen are free again.
	if resp, out := post(`{"amount_fen":400}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a refund of what the failed one freed: %d %s", resp.StatusCode, out)
	}
}

// TestShopRefundEdges: another shop's order, an unknown refund, a refund of
// another order, a malformed number and a refund of an unpaid order; the
// 51st refund of an order.
func TestShopRefundEdges(t *testing.T) {
	h := newHarness(t)
	o := h.paidOrder(t, 1000)
	other := h.paidOrder(t, 1000)
	path := "/v1/orders/" + string(o.ID) + "/refunds"
	if s, out := h.do(t, http.MethodPost, path, "application/json", []byte(`{"amount_fen":1,"out_refund_no":"EDGE-R-0001"}`)); s != http.StatusAccepted {
		t.Fatalf("refund: %d %s", s, out)
	}
	for _, tc := range []struct {
		name, path string
		header     []string
	}{
		{"another shop's order", path, []string{"Authorization", "Bearer " + h.betaKey}},
		{"another shop's refund", path + "/EDGE-R-0001", []string{"Authorization", "Bearer " + h.betaKey}},
		{"an unknown refund", path + "/EDGE-R-9999", nil},
		{"a refund of another order", "/v1/orders/" + string(other.ID) + "/refunds/EDGE-R-0001", nil},
		{"a malformed number", path + "/" + strings.Repeat("x", 65), nil},
		{"a number with a character WeChat refuses", path + "/EDGE%2FR", nil},
		{"an unknown order", "/v1/orders/o_nope/refunds", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, out := h.do(t, http.MethodGet, tc.path, "", nil, tc.header...)
			if s != http.StatusNotFound || decodeError(t, out).Error.Code != "not_found" || strings.Contains(string(out), "EDGE") {
				t.Fatalf("%d %s", s, out)
			}
		})
	}
	unpaid := h.prepaid(t, 100, "v2")
	if s, out := h.do(t, http.MethodPost, "/v1/orders/"+string(unpaid.ID)+"/refunds", "application/json", []byte(`{"amount_fen":1}`)); s != http.StatusConflict ||
		decodeError(t, out).Error.Code != "invalid_state" {
		t.Fatalf("a refund of an unpaid order: %d %s", s, out)
	}
	if s, out := h.do(t, http.MethodGet, "/v1/orders/"+string(unpaid.ID)+"/refunds", "", nil); s != http.StatusOK || string(out) != "{\"refunds\":[]}\n" {
		t.Fatalf("no refunds: %d %s", s, out)
	}
	for i := 2; i <= engine.MaxRefundsPerOrder; i++ {
		if s, out := h.do(t, http.MethodPost, path, "application/json", []byte(fmt.Sprintf(`{"amount_fen":1,"out_refund_no":"EDGE-R-%04d"}`, i))); s != http.StatusAccepted {
			t.Fatalf("refund %d: %d %s", i, s, out)
		}
	}
	s, out := h.do(t, http.MethodPost, path, "application/json", []byte(`{"amount_fen":1}`))
	if s != http.StatusUnprocessableEntity || decodeError(t, out).Error.Code != "too_many_refunds" {
		t.Fatalf("the 51st refund: %d %s", s, out)
	}
}
