package demoshop

import (
	"encoding/json"
	"testing"
)

func TestOwners(t *testing.T) {
	o := newOwners(2)
	if !o.add("o_1", "alice") || !o.add("o_1", "alice") {
		t.Fatal("the same buyer again is refused")
	}
	if o.add("o_1", "mallory") || !o.owns("o_1", "alice") || o.owns("o_1", "mallory") {
		t.Fatal("a replayed create handed the order to another buyer")
	}
	if o.owns("o_1", "") || o.owns("o_nope", "alice") {
		t.Fatal("no buyer, or no order, owns something")
	}
	o.add("o_2", "bob")
	o.add("o_3", "carol") // past the bound: o_1, the oldest, is forgotten
	if o.owns("o_1", "alice") || !o.owns("o_2", "bob") || !o.owns("o_3", "carol") {
		t.Fatal("the bound did not forget the oldest order first")
	}
}

// TestRefundAnswerShapes reads both answers of POST /v1/orders/{id}/refunds:
// the order (refunds one at a time) and the queued refund.
func TestRefundAnswerShapes(t *testing.T) {
	cases := []struct {
		name, body, state, status string
	}{
		{"the order", `{"order":{"id":"o_1","state":"refunding","paid_fen":1990,"refunded_fen":0}}`, "refunding", ""},
		{"the queued refund", `{"order_id":"o_1","out_refund_no":"dr1-1","amount_fen":1990,"reason":"r","status":"queued"}`, "", "queued"},
		{"pending", `{"order":{"id":"o_1"},"pending":true}`, "", ""},
	}
	for _, c := range cases {
		var a refundAnswer
		if err := json.Unmarshal([]byte(c.body), &a); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		state := ""
		if a.Order != nil {
			state = a.Order.State
		}
		if state != c.state || a.Status != c.status {
			t.Errorf("%s: state %q status %q", c.name, state, a.Status)
		}
	}
	// A refund in the order's list says "state"; a queued refund "status".
	for body, want := range map[string]string{
		`{"out_refund_no":"dr1-1","amount_fen":5,"state":"pending"}`:                   "pending",
		`{"out_refund_no":"dr1-1","amount_fen":5,"status":"queued"}`:                   "queued",
		`{"out_refund_no":"dr1-1","amount_fen":5,"state":"pending","status":"failed"}`: "failed",
	} {
		var r refundEntry
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.status() != want {
			t.Errorf("%s: status %q, want %q (%v)", body, r.status(), want, err)
		}
	}
}
