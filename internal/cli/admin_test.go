package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestAdminResolve: `wxflow admin resolve` clears the one flag it names,
// and the history says who and why; a flag the order does not have is
// refused, and a resolve without --flag or --reason is a usage error.
func TestAdminResolve(t *testing.T) {
	ns, nc, js := enginetest.StartNATS(t)
	data := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(data, "wxflow.db")
	store, err := engine.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e, err := engine.New(engine.Config{}, store, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.RunEngine(t, e)
	ctx := context.Background()
	create := engine.Command{ID: "create:a1", Verb: engine.VerbCreate, OrderID: "a1", Actor: "shop", Create: &engine.CreateOrder{
		Merchant: "default", OutTradeNo: "OTN-a1", Description: "d", AmountFen: 100, PayAPI: engine.PayV2, OpenID: "o1", RequestHash: "h"}}
	cmds := []engine.Command{create}
	for i, f := range []string{engine.FlagAmountMismatch, "dead_letter:prepay"} {
		cmds = append(cmds, engine.Command{ID: fmt.Sprintf("flag:%d", i), Verb: engine.VerbFlag, OrderID: "a1", Actor: "test", Flag: &engine.FlagInfo{Reason: f}})
	}
	for _, c := range cmds {
		if res, err := e.Apply(ctx, c); err != nil || !res.Applied {
			t.Fatalf("%s: %+v %v", c.Verb, res, err)
		}
	}
	common := []string{"--data", data, "--db", dbURL, "--nats", ns.ClientURL()}
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string
		wantFlags string
	}{
		{"no --flag", []string{"a1", "--reason", "r"}, ExitUsage, "--flag is required", "[amount_mismatch dead_letter:prepay]"},
		{"no --reason", []string{"a1", "--flag", "amount_mismatch"}, ExitUsage, "--reason is required", "[amount_mismatch dead_letter:prepay]"},
		{"a flag the order does not have", []string{"a1", "--flag", "paid_after_close", "--reason", "r"}, ExitError, "not_flagged", "[amount_mismatch dead_letter:prepay]"},
		{"the alert", []string{"a1", "--flag", "amount_mismatch", "--reason", "refunded the difference by hand", "--who", "alice"}, ExitOK, "done: order a1", "[dead_letter:prepay]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := Execute(t.Context(), append(append([]string{"admin", "resolve"}, tc.args...), common...), &out, &errOut)
			if code != tc.wantCode || !strings.Contains(out.String()+errOut.String(), tc.wantOut) {
				t.Fatalf("status %d, out %q, err %q; want %d and %q", code, out.String(), errOut.String(), tc.wantCode, tc.wantOut)
			}
			if o, err := store.Order(ctx, "a1"); err != nil || fmt.Sprint(o.Flags) != tc.wantFlags {
				t.Fatalf("flags %v (%v), want %s", o.Flags, err, tc.wantFlags)
			}
		})
	}
	h, err := store.History(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	last := h[len(h)-1]
	if last.Type != string(engine.EventResolved) || last.Actor != "admin:alice" || last.Reason != "amount_mismatch: refunded the difference by hand" {
		t.Fatalf("the history's last entry: %+v", last)
	}
}
