package engine

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// tableCommands are the columns of TestDecideEveryStateAndCommand: one
// well-formed command of each verb (two for refunded and close, whose
// payload picks the move).
var tableCommands = []struct {
	name string
	cmd  Command
}{
	{"authorize", Command{Verb: VerbAuthorize, Authorize: &Authorize{OpenID: "oPAYER"}}},
	{"prepaid", Command{Verb: VerbPrepaid, Prepaid: &PrepaidInfo{PrepayID: "wx2"}}},
	{"signed", Command{Verb: VerbSigned, Signed: &SignedInfo{PayParams: RawJSON(`{}`)}}},
	{"notify", Command{Verb: VerbNotify, Notify: &Payment{TransactionID: "t1", AmountFen: 100, Source: SourceNotification}}},
	{"refund", Command{Verb: VerbRefund, Refund: &RefundAsk{OutRefundNo: "r3", AmountFen: 10}}},
	{"send refund", Command{Verb: VerbSendRefund, Send: &RefundSend{OutRefundNo: "r2"}}},
	{"refunded ok", Command{Verb: VerbRefunded, Refunded: &RefundDone{OutRefundNo: "r1", Succeeded: true}}},
	{"refunded closed", Command{Verb: VerbRefunded, Refunded: &RefundDone{OutRefundNo: "r1"}}},
	{"close", Command{Verb: VerbClose, Close: &CloseAsk{}}},
	{"close confirmed", Command{Verb: VerbClose, Close: &CloseAsk{Confirmed: true}}},
	{"fail", Command{Verb: VerbFail, Fail: &Failure{Step: "prepay", Code: "X", Message: "m"}}},
	{"flag", Command{Verb: VerbFlag, Flag: &FlagInfo{Reason: "dead_letter:x"}}},
	{"replay", Command{Verb: VerbReplay}},
	{"create", Command{Verb: VerbCreate, Create: &CreateOrder{Merchant: "m", OutTradeNo: "OTN", Description: "d",
		AmountFen: 100, PayAPI: PayV2, OAuthCode: "code", RequestHash: "h"}}},
}

// tableCmd is the table's command of that name.
func tableCmd(name string) Command {
	for _, c := range tableCommands {
		if c.name == name {
			return c.cmd
		}
	}
	panic("no table command " + name)
}

// tableNow is the time of the decide tables.
var tableNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// tableFacts is what Apply would load for an order in state s ("" for no
// order), as the order would stand there: a prepay_id from prepaid on, paid
// from notified on, a refund r0 of 30 fen settled an hour ago if refunded
// (or settled asked for: a second refund running), and a refund r1 of 30
// fen at WeChat if refunding (the one refunded commands are about). A send
// finds a refund r2 of 10 fen queued in a paid state; a refund asks for a
// new r3. The refund gap is a minute.
func tableFacts(s State, verb Verb, settled bool) facts {
	f := facts{defaultExpiry: time.Hour, refundGap: time.Minute}
	if s == "" {
		return f
	}
	o := orderRow{Order: Order{ID: "o1", Merchant: "m", OutTradeNo: "OTN", AmountFen: 100, State: s, OpenID: "oPAYER"}, RequestHash: "h"}
	if s != Created && s != Authorized && s != Closed {
		o.PrepayID = "wx1"
	}
	if rule(s).paid {
		o.PaidFen, o.TransactionID = 100, "t1"
	}
	long := tableNow.Add(-time.Hour)
	if s == Refunded || settled {
		o.RefundedFen = 30
		f.refunds = append(f.refunds, Refund{OutRefundNo: "r0", OrderID: "o1", AmountFen: 30, State: RefundSucceeded, Seq: 1, SentAt: &long, SettledAt: &long})
	}
	f.order = &o
	r1 := Refund{OutRefundNo: "r1", OrderID: "o1", AmountFen: 30, State: RefundPending, Seq: 2, SentAt: &long}
	if verb == VerbRefunded {
		f.refund = &r1
	}
	if s == Refunding {
		f.inFlight = &r1
		f.refunds = append(f.refunds, r1)
	}
	if verb == VerbSendRefund && rule(s).paid {
		f.refunds = append(f.refunds, Refund{OutRefundNo: "r2", OrderID: "o1", AmountFen: 10, State: RefundQueued, Seq: 3})
	}
	return f
}

// outcome writes what decide did in a line: each event as type→state, or
// !code for a refusal (with +flag when it flags the order).
func outcome(ch *change, r *refusal, err error) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case r != nil && r.flag != "":
		return "!" + string(r.code) + "+flag"
	case r != nil:
		return "!" + string(r.code)
	}
	var evs []string
	for _, ev := range ch.events {
		evs = append(evs, fmt.Sprintf("%s→%s", ev.Type, ev.To))
	}
	return strings.Join(evs, " ")
}

// TestDecideEveryStateAndCommand runs decide on every state (and no order)
// with every command, without NATS or a database: the whole lifecycle in
// one table. Each cell is what the command does: the events it writes
// (type→state) or !code, the refusal's (+flag when it flags the order).
func TestDecideEveryStateAndCommand(t *testing.T) {
	const unknown = "!unknown_order"
	const bad = "!invalid_state"
	const stale = "!stale"
	tests := []struct {
		state   State
		settled bool // a refund settled before the one running
		want    [14]string
	}{
		// authorize, prepaid, signed, notify, refund, send refund, refunded ok, refunded closed, close, close confirmed, fail, flag, replay, create
		{"", false, [14]string{unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown, "created→created"}},
		{Created, false, [14]string{"authorized→authorized", bad, bad, bad, bad, stale, bad, bad, "closed→closed", "closed→closed", "failed→failed", "flagged→created", "created→created", "!exists"}},
		{Authorized, false, [14]string{bad, "prepaid→prepaid", bad, "notified→notified", bad, stale, bad, bad, "closed→closed", "closed→closed", "failed→failed", "flagged→authorized", "authorized→authorized", "!exists"}},
		{Prepaid, false, [14]string{bad, bad, "signed→signed", "notified→notified", bad, stale, bad, bad, "close_requested→prepaid", "closed→closed", "failed→failed", "flagged→prepaid", "prepaid→prepaid", "!exists"}},
		{Signed, false, [14]string{bad, bad, bad, "notified→notified", bad, stale, bad, bad, "close_requested→signed", "closed→closed", "failed→failed", "flagged→signed", "query_requested→signed", "!exists"}},
		{Notified, false, [14]string{bad, bad, bad, "!duplicate", "refund_queued→notified refunding→refunding", "refunding→refunding", bad, bad, bad, bad, bad, "flagged→notified", "!nothing_to_replay", "!exists"}},
		{Refunding, false, [14]string{bad, bad, bad, "!duplicate", "refund_queued→refunding", stale, "refunded→refunded", "refund_failed→notified", bad, bad, bad, "flagged→refunding", "refunding→refunding", "!exists"}},
		{Refunding, true, [14]string{bad, bad, bad, "!duplicate", "refund_queued→refunding", stale, "refunded→refunded", "refund_failed→refunded", bad, bad, bad, "flagged→refunding", "refunding→refunding", "!exists"}},
		{Refunded, false, [14]string{bad, bad, bad, "!duplicate", "refund_queued→refunded refunding→refunding", "refunding→refunding", bad, bad, bad, bad, bad, "flagged→refunded", "!nothing_to_replay", "!exists"}},
		{Closed, false, [14]string{bad, bad, bad, "!paid_after_close+flag", bad, stale, bad, bad, bad, bad, bad, "flagged→closed", "!nothing_to_replay", "!exists"}},
		{Failed, false, [14]string{bad, bad, bad, "notified→notified", bad, stale, bad, bad, bad, bad, bad, "flagged→failed", "!nothing_to_replay", "!exists"}},
	}
	if len(tableCommands) != len(tests[0].want) {
		t.Fatalf("%d commands, %d columns", len(tableCommands), len(tests[0].want))
	}
	covered := map[State]bool{}
	now := tableNow
	for _, tc := range tests {
		covered[tc.state] = true
		for i, c := range tableCommands {
			cmd := c.cmd
			cmd.ID, cmd.OrderID = "c1", "o1"
			if got := outcome(decide(tableFacts(tc.state, cmd.Verb, tc.settled), cmd, now)); got != tc.want[i] {
				t.Errorf("%s in %q (settled before: %v): %s, want %s", c.name, tc.state, tc.settled, got, tc.want[i])
			}
		}
	}
	for _, s := range AllStates {
		if !covered[s] {
			t.Errorf("state %s is not in the table", s)
		}
	}
}

// TestDecidePreChecks: the refusals that depend on more than the state.
func TestDecidePreChecks(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	with := func(s State, change func(f *facts)) facts {
		f := tableFacts(s, "", false)
		if change != nil {
			change(&f)
		}
		return f
	}
	byOpenID := tableCmd("create")
	byOpenID.Create = &CreateOrder{Merchant: "m", OutTradeNo: "OTN", Description: "d", AmountFen: 100, PayAPI: PayV3, OpenID: "oPAYER"}
	otherRefund := func(orderID OrderID, fen int64) func(f *facts) {
		return func(f *facts) {
			f.refund = &Refund{OutRefundNo: "r2", OrderID: orderID, AmountFen: fen, State: RefundPending}
		}
	}
	tests := []struct {
		name  string
		facts facts
		cmd   Command
		want  string
	}{
		{"create naming the payer is authorized at once", with("", nil), byOpenID, "created→created authorized→authorized"},
		{"create whose out_trade_no another order holds", with("", func(f *facts) { f.tradeOwner = "o9" }), tableCmd("create"), "!conflict"},
		{"create, same id, other request", with(Created, func(f *facts) { f.order.RequestHash = "other" }), tableCmd("create"), "!conflict"},
		{"failure of a step the order has left", with(Signed, nil),
			Command{Verb: VerbFail, Fail: &Failure{Step: "prepay", State: Authorized}}, "!stale"},
		{"second close while one is under way", with(Prepaid, func(f *facts) { f.order.CloseRequested = true }), tableCmd("close"), "!close_requested"},
		{"replay while closing", with(Signed, func(f *facts) { f.order.CloseRequested = true }), tableCmd("replay"), "close_requested→signed"},
		{"payment of another amount", with(Signed, nil),
			Command{Verb: VerbNotify, Notify: &Payment{TransactionID: "t1", AmountFen: 99, Source: SourceQuery}}, "!amount_mismatch+flag"},
		{"payment the front end claims", with(Signed, nil),
			Command{Verb: VerbNotify, Notify: &Payment{TransactionID: "t1", AmountFen: 100, Source: "frontend"}}, "!invalid"},
		{"refund above what remains", with(Refunded, nil),
			Command{Verb: VerbRefund, Refund: &RefundAsk{OutRefundNo: "r2", AmountFen: 71}}, "!over_refund"},
		{"refund asked before", with(Notified, otherRefund("o1", 10)), tableCmd("refund"), "!duplicate"},
		{"out_refund_no of another refund", with(Notified, otherRefund("o2", 10)), tableCmd("refund"), "!conflict"},
		{"result of another order's refund", with(Refunding, func(f *facts) { f.refund = &Refund{OutRefundNo: "r1", OrderID: "o2", State: RefundPending} }),
			tableCmd("refunded ok"), "!unknown_order"},
		{"refund result again", with(Refunded, func(f *facts) { f.refund = &Refund{OutRefundNo: "r1", OrderID: "o1", State: RefundSucceeded} }),
			tableCmd("refunded ok"), "!duplicate"},
		{"the same flag again", with(Notified, func(f *facts) { f.order.Flags = Flags{"dead_letter:x"} }), tableCmd("flag"), "!duplicate"},
	}
	for _, tc := range tests {
		cmd := tc.cmd
		cmd.ID, cmd.OrderID = "c1", "o1"
		if got := outcome(decide(tc.facts, cmd, now)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestGuardsExclusive: of the rows that share a fact and a source state,
// exactly one guard holds for any order, so the fact has one destination.
func TestGuardsExclusive(t *testing.T) {
	for _, refunded := range []int64{0, 1, 30} {
		o := Order{PaidFen: 100, RefundedFen: refunded}
		for _, fact := range []EventType{EventAuthorized, EventPrepaid, EventSigned, EventNotified, EventRefunding,
			EventRefunded, EventRefundFailed, EventClosed, EventFailed} {
			for _, s := range AllStates {
				n := 0
				for _, m := range moves {
					if m.fact == fact && slices.Contains(m.from, s) && (m.guard == nil || m.guard.holds(o)) {
						n++
					}
				}
				if can(s, fact) && n != 1 {
					t.Errorf("%s from %s with %d fen refunded: %d moves apply, want 1", fact, s, refunded, n)
				}
			}
		}
	}
}

// TestDerivedSets: the sets the rest of the engine reads come out of the
// table as they were written out by hand before it.
func TestDerivedSets(t *testing.T) {
	tests := []struct {
		name      string
		got, want []State
	}{
		{"closable (expiry)", closableStates(), []State{Created, Authorized, Prepaid, Signed}},
		{"payable", sources(EventNotified), []State{Authorized, Prepaid, Signed, Failed}},
		{"waiting (stuck, State.Waiting)", waitingStates(), []State{Created, Authorized, Prepaid, Signed, Refunding}},
	}
	for _, tc := range tests {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	want := map[State]time.Duration{Created: time.Minute, Authorized: time.Minute, Prepaid: time.Minute, Signed: 0, Refunding: 30 * time.Minute}
	if fmt.Sprint(DefaultDeadlines) != fmt.Sprint(want) {
		t.Errorf("DefaultDeadlines = %v, want %v", DefaultDeadlines, want)
	}
}

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/ARCHITECTURE.md's lifecycle diagram from the table")

// TestLifecycleDiagramInDocs fails when docs/ARCHITECTURE.md's lifecycle
// diagram (between the lifecycle markers) is not the table's. Run with
// -update-docs to write the table's diagram there.
func TestLifecycleDiagramInDocs(t *testing.T) {
	const path, begin, end = "../docs/ARCHITECTURE.md", "<!-- lifecycle:begin -->", "<!-- lifecycle:end -->"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	before, rest, ok1 := strings.Cut(doc, begin)
	inside, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no %s … %s markers", path, begin, end)
	}
	diagram, err := lifecycleDiagram()
	if err != nil {
		t.Fatal(err)
	}
	want := "\n```mermaid\n" + diagram + "```\n"
	if inside == want {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(path, []byte(before+begin+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's lifecycle diagram differs from engine/lifecycle.go's table; run go test ./engine -run TestLifecycleDiagramInDocs -update-docs\ngot:%s\nwant:%s", path, inside, want)
}
