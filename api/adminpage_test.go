package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers"
)

// paid moves a prepaid order to notified, as a verified notification would.
func (h *adminHarness) paid(t *testing.T, amount int64) engine.Order {
	t.Helper()
	o := h.prepaid(t, amount, "v3")
	h.apply(t, engine.Command{ID: "n:" + string(o.ID), Verb: engine.VerbNotify, OrderID: o.ID,
		Notify: &engine.Payment{TransactionID: "4200" + string(o.ID), AmountFen: amount, Source: engine.SourceNotification}})
	return h.state(t, o.ID)
}

func (h *adminHarness) apply(t *testing.T, c engine.Command) {
	t.Helper()
	if res, err := h.eng.Apply(context.Background(), c); err != nil || !res.Applied {
		t.Fatalf("%s: %+v %v", c.Verb, res, err)
	}
}

// settle marks a refund done, as WeChat's refund notification would.
func (h *adminHarness) settle(t *testing.T, id engine.OrderID, outRefundNo string) {
	t.Helper()
	h.apply(t, engine.Command{ID: "settle:" + outRefundNo, Verb: engine.VerbRefunded, OrderID: id,
		Refunded: &engine.RefundDone{OutRefundNo: outRefundNo, RefundID: "5030" + outRefundNo, Succeeded: true, Source: engine.SourceNotification}})
}

// has says which of the page's elements (by id) are there.
func has(body string, ids ...string) map[string]bool {
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = strings.Contains(body, `id="`+id+`"`)
	}
	return out
}

// TestAdminPageOffersWhatTheLifecycleAllows: an order's page shows Replay
// only while a step is pending, Close only where the engine closes, and the
// refund form only on a paid order with money left (a refund asked while
// another is at WeChat queues behind it), its amount the remainder in yuan
// with the fen beside it. The sign-in page has no search.
func TestAdminPageOffersWhatTheLifecycleAllows(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	if a := h.browser(t).get("/admin/login"); a.status != http.StatusOK || strings.Contains(a.body, `name="q"`) || strings.Contains(a.body, `id="search"`) {
		t.Fatalf("the sign-in page shows the search box: %d\n%s", a.status, a.body)
	}
	// The sign-in page needs no session, so anyone may link to it: it
	// shows its own messages, not a link's.
	for m, shown := range map[string]bool{"Wrong token.": true, "Signed out.": true, "Session expired: mail your token to ops@evil.example": false} {
		a := h.browser(t).get("/admin/login?m=" + url.QueryEscape(m))
		if strings.Contains(a.body, m) != shown || strings.Contains(a.body, `id="message"`) != shown {
			t.Errorf("the sign-in page given %q: shown %v, want %v", m, !shown, shown)
		}
	}
	b := h.browser(t)
	b.signIn(adminToken)
	if a := b.get("/admin/"); !strings.Contains(a.body, `id="search"`) {
		t.Fatal("the signed-in page has no search box")
	}

	prepaid := h.prepaid(t, 300, "v2")
	partly := h.paid(t, 1234)
	h.apply(t, engine.Command{ID: "r:partly", Verb: engine.VerbRefund, OrderID: partly.ID, Actor: "shop:alpha",
		Refund: &engine.RefundAsk{OutRefundNo: "R-PARTLY-1", AmountFen: 1000}})
	refunding := h.state(t, partly.ID)
	refundingPage := b.get("/admin/orders/" + string(partly.ID)).body
	h.settle(t, partly.ID, "R-PARTLY-1")
	whole := h.paid(t, 500)
	h.apply(t, engine.Command{ID: "r:whole", Verb: engine.VerbRefund, OrderID: whole.ID, Actor: "shop:alpha",
		Refund: &engine.RefundAsk{OutRefundNo: "R-WHOLE-1", AmountFen: 500}})
	h.settle(t, whole.ID, "R-WHOLE-1")
	paid := h.paid(t, 250)

	ids := []string{"replay", "close", "refund-form"}
	for _, tc := range []struct {
		name  string
		state engine.State
		body  string
		want  map[string]bool
		shows []string
	}{
		{"prepaid", engine.Prepaid, b.get("/admin/orders/" + string(prepaid.ID)).body,
			map[string]bool{"replay": true, "close": true, "refund-form": false}, []string{"¥3.00 (300 fen)"}},
		{"paid", engine.Notified, b.get("/admin/orders/" + string(paid.ID)).body,
			map[string]bool{"replay": false, "close": false, "refund-form": true}, []string{`value="2.50"`, "¥2.50 (250 fen) remain"}},
		{"refunding (another refund queues behind)", refunding.State, refundingPage,
			map[string]bool{"replay": true, "close": false, "refund-form": true}, []string{"R-PARTLY-1", "pending", "¥2.34 (234 fen) remain"}},
		{"partly refunded", engine.Refunded, b.get("/admin/orders/" + string(partly.ID)).body,
			map[string]bool{"replay": false, "close": false, "refund-form": true},
			[]string{`value="2.34"`, "¥2.34 (234 fen) remain of ¥12.34 (1234 fen) paid", "¥10.00 (1000 fen)", "succeeded"}},
		{"wholly refunded", engine.Refunded, b.get("/admin/orders/" + string(whole.ID)).body,
			map[string]bool{"replay": false, "close": false, "refund-form": false}, []string{"R-WHOLE-1", "succeeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.body, `id="state">`+string(tc.state)+`<`) {
				t.Fatalf("the page does not show the order %s:\n%s", tc.state, tc.body)
			}
			if got := has(tc.body, ids...); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("actions %v, want %v", got, tc.want)
			}
			for _, s := range tc.shows {
				if !strings.Contains(tc.body, s) {
					t.Errorf("the page does not show %q", s)
				}
			}
			if !strings.Contains(tc.body, "At (UTC)") || !regexp.MustCompile(`<td class="time">20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}</td>`).MatchString(tc.body) {
				t.Error("the timeline's rows have no date, or do not say UTC")
			}
		})
	}
	// Lists show yuan with the fen beside.
	if a := b.get("/admin/search"); !strings.Contains(a.body, "¥12.34 (1234 fen)") || !strings.Contains(a.body, "¥3.00 (300 fen)") {
		t.Errorf("the order list does not show money as yuan and fen:\n%s", a.body)
	}
}

var outRefundNoRE = regexp.MustCompile(`name="out_refund_no" value="([^"]+)"`)

// TestAdminPageRefund: the refund form is answered with a confirmation that
// names the amount in yuan and fen and what remains; only the confirmation
// refunds, through the admin API's path (written as the signed-in admin);
// sending it twice is one refund; an amount the form cannot read, more than
// remains, or a form without the session's CSRF token refunds nothing.
func TestAdminPageRefund(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	o, unpaid := h.paid(t, 1234), h.prepaid(t, 100, "v2")
	b := h.browser(t)
	b.signIn(adminToken)
	csrf := b.csrf(o.ID)
	path := "/admin/orders/" + string(o.ID) + "/refunds"
	refunds := func() []engine.Refund {
		t.Helper()
		rs, err := h.store.Refunds(context.Background(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
		want   int
		says   string
	}{
		{"three decimals", url.Values{"amount": {"1.234"}, "reason": {"r"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "yuan"},
		{"zero", url.Values{"amount": {"0"}, "reason": {"r"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "more+than+zero"},
		{"more than remains", url.Values{"amount": {"12.35"}, "reason": {"r"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "remain"},
		{"no reason", url.Values{"amount": {"1"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "reason"},
		{"reason too long for WeChat", url.Values{"amount": {"1"}, "reason": {strings.Repeat("r", 81)}, "csrf": {csrf}}, nil, http.StatusSeeOther, "80+bytes"},
		{"reason with a control character, confirmed", url.Values{"amount": {"1"}, "reason": {"a\x1bb"}, "confirm": {"yes"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "control"},
		{"an unpaid order", url.Values{"amount": {"1"}, "reason": {"r"}, "csrf": {csrf}}, nil, http.StatusSeeOther, "the+order+is+prepaid"},
		{"no CSRF token, confirmed", url.Values{"amount": {"1"}, "reason": {"r"}, "confirm": {"yes"}}, nil, http.StatusForbidden, ""},
		{"other origin, confirmed", url.Values{"amount": {"1"}, "reason": {"r"}, "confirm": {"yes"}, "csrf": {csrf}}, []string{"Origin", "http://127.0.0.1:1"}, http.StatusForbidden, ""},
		{"bad out_refund_no, confirmed", url.Values{"amount": {"1"}, "reason": {"r"}, "confirm": {"yes"}, "csrf": {csrf}, "out_refund_no": {"x"}}, nil, http.StatusSeeOther, "out_refund_no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := path
			if tc.name == "an unpaid order" {
				path = "/admin/orders/" + string(unpaid.ID) + "/refunds"
			}
			a := b.post(path, tc.form, tc.header...)
			if a.status != tc.want || !strings.Contains(a.location, tc.says) {
				t.Fatalf("%d to %q, want %d with %q", a.status, a.location, tc.want, tc.says)
			}
		})
	}
	if rs := refunds(); len(rs) != 0 {
		t.Fatalf("refused forms refunded: %+v", rs)
	}

	// The form shows a confirmation; nothing is refunded yet.
	a := b.post(path, url.Values{"amount": {"¥2.5"}, "reason": {"damaged in transit"}, "csrf": {csrf}})
	m := outRefundNoRE.FindStringSubmatch(a.body)
	if a.status != http.StatusOK || m == nil || !strings.Contains(a.body, `id="confirm-refund"`) {
		t.Fatalf("the form's answer is no confirmation: %d\n%s", a.status, a.body)
	}
	for _, s := range []string{"¥2.50 (250 fen)", "¥9.84 (984 fen)", "damaged in transit", `name="amount" value="2.50"`} {
		if !strings.Contains(a.body, s) {
			t.Errorf("the confirmation does not show %q", s)
		}
	}
	if rs := refunds(); len(rs) != 0 {
		t.Fatalf("the form refunded before its confirmation: %+v", rs)
	}
	confirm := url.Values{"amount": {"2.50"}, "reason": {"damaged in transit"}, "out_refund_no": {m[1]}, "confirm": {"yes"}, "csrf": {csrf}}
	a = b.post(path, confirm)
	if a.status != http.StatusSeeOther || !strings.Contains(a.location, "refund+of") {
		t.Fatalf("confirm: %d to %q", a.status, a.location)
	}
	rs := refunds()
	if len(rs) != 1 || rs[0].AmountFen != 250 || rs[0].OutRefundNo != m[1] || rs[0].Reason != "damaged in transit" {
		t.Fatalf("refunds %+v, want one of 250 fen numbered %s", rs, m[1])
	}
	hist := h.history(t, o.ID)
	if last := hist[len(hist)-1]; last.Type != string(engine.EventRefunding) || last.Actor != "admin:admin" {
		t.Fatalf("the refund is written as %+v, want refunding by admin:admin", last)
	}
	// The confirmation sent again (a double click, a reload): one refund.
	a = b.post(path, confirm)
	if a.status != http.StatusSeeOther || !strings.Contains(a.location, "asked+before") {
		t.Fatalf("confirm again: %d to %q", a.status, a.location)
	}
	if rs := refunds(); len(rs) != 1 {
		t.Fatalf("a repeated confirmation refunded again: %+v", rs)
	}
	// The order page lists it with its status.
	page := b.get("/admin/orders/" + string(o.ID)).body
	if !strings.Contains(page, m[1]) || !strings.Contains(page, "¥2.50 (250 fen)") || !strings.Contains(page, ">pending<") {
		t.Fatalf("the order page does not list the refund:\n%s", page)
	}
}

// TestAdminPageCalls: the calls to WeChat show what was asked and answered,
// durations rounded (14.6 ms), date and time in UTC, WeChat's Chinese
// message as it came, and the error whole in its cell's title.
func TestAdminPageCalls(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	o := h.prepaid(t, 300, "v2")
	at := time.Date(2026, 5, 6, 7, 8, 9, 123e6, time.UTC)
	long := "v2 unifiedorder: SYSTEMERROR: 系统错误 (injected) " + strings.Repeat("x", 300)
	for _, r := range []workers.CallRecord{
		{At: at, Worker: "prepay", Event: engine.EventAuthorized, Delivery: 1, Took: 14630092 * time.Nanosecond, Outcome: "retry",
			Code: "SYSTEMERROR", Error: long, Asked: []workers.Asked{{API: "prepay", Answer: "SYSTEMERROR"}}},
		{At: at.Add(time.Second), Worker: "query", Event: engine.EventQueryRequested, Delivery: 1, Took: 3 * time.Millisecond,
			Outcome: "unchanged", Asked: []workers.Asked{{API: "query", Answer: "NOTPAY"}}},
	} {
		raw, _ := json.Marshal(r)
		if _, err := h.cfg.JS.Publish(context.Background(), workers.CallSubject(o.ID), raw); err != nil {
			t.Fatal(err)
		}
	}
	b := h.browser(t)
	b.signIn(adminToken)
	page := b.get("/admin/orders/" + string(o.ID)).body
	for _, s := range []string{"14.6 ms", "3.0 ms", "2026-05-06 07:08:09.123", "prepay SYSTEMERROR", "query NOTPAY", "unchanged",
		"系统错误", `title="` + long + `"`, `class="calls"`} {
		if !strings.Contains(page, s) {
			t.Errorf("the calls table does not show %q", s)
		}
	}
	if strings.Contains(page, "14.630092ms") {
		t.Error("a duration is printed to the nanosecond")
	}
}
