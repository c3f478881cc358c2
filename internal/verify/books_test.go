package verify

import (
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestVerifyBooks: a closed day's books must balance, on WeChat's final
// bill; a day not closed yet, or closed without trades, is no breach.
func TestVerifyBooks(t *testing.T) {
	store := enginetest.OpenSQLite(t)
	_, nc, js := enginetest.StartNATS(t)
	ctx := t.Context()
	now := time.Date(2024, 3, 20, 2, 0, 0, 0, time.UTC) // 10:00 in Beijing
	e, err := engine.New(engine.Config{Now: func() time.Time { return now }}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	// A payment on the 15th at WeChat, recorded by wxflow; books never run.
	for _, c := range []engine.Command{
		{ID: "c1", Verb: engine.VerbCreate, OrderID: "o1", Create: &engine.CreateOrder{Merchant: "m", OutTradeNo: "o1", Description: "d", AmountFen: 100,
			PayAPI: engine.PayV3, Client: engine.ClientJSAPI, OpenID: "o", ExpiresAt: now.Add(time.Hour), RequestHash: "h"}},
		{ID: "c2", Verb: engine.VerbNotify, OrderID: "o1", Notify: &engine.Payment{TransactionID: "t1", AmountFen: 100,
			PaidAt: time.Date(2024, 3, 15, 2, 0, 0, 0, time.UTC), Source: engine.SourceQuery}},
	} {
		c.Actor = "test"
		if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
	run := func(day engine.Day, final bool, trades ...engine.BillTrade) {
		t.Helper()
		if _, err := store.RunBooks(ctx, engine.BillCopy{Merchant: "m", Day: day, Kind: engine.BillTradeAll, SHA1: string(day), Data: []byte("x"),
			Final: final, Trades: trades}, now); err != nil {
			t.Fatal(err)
		}
	}
	run("2024-03-17", true, engine.BillTrade{OutTradeNo: "nobody", TransactionID: "t9", AmountFen: 5, Status: "SUCCESS"}) // unbalanced
	run("2024-03-18", true)                                                                                               // balanced
	run("2024-03-19", true, engine.BillTrade{OutTradeNo: "nobody2", AmountFen: 5, Status: "SUCCESS"})                     // not closed until 11:30 Beijing today
	breaches, err := Books(ctx, store, BooksConfig{Merchant: "m", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range breaches {
		got[b.Detail[:10]] = b.Rule
	}
	want := map[string]string{"2024-03-15": RuleBooksNotRun, "2024-03-17": RuleBooksUnbalanced}
	if len(got) != len(want) || got["2024-03-15"] != want["2024-03-15"] || got["2024-03-17"] != want["2024-03-17"] {
		t.Fatalf("breaches %+v, want %v", breaches, want)
	}
	// Run on the final bill and balanced: no breach left for the 15th.
	run("2024-03-15", true, engine.BillTrade{OutTradeNo: "o1", TransactionID: "t1", AmountFen: 100, Status: "SUCCESS"})
	if breaches, _ = Books(ctx, store, BooksConfig{Merchant: "m", Now: now}); len(breaches) != 1 || breaches[0].Rule != RuleBooksUnbalanced {
		t.Fatalf("after the 15th's books: %+v", breaches)
	}
}
