package verify

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestVerifyStreamAfterRetention: events that aged out of the event stream
// (WXFLOW_EVENT_RETENTION) are not reported missing; one the stream should
// still hold is.
func TestVerifyStreamAfterRetention(t *testing.T) {
	_, nc, js := enginetest.StartNATS(t)
	ctx := t.Context()
	if err := engine.Provision(ctx, js, engine.StreamsConfig{EventMaxAge: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	store, db := enginetest.OpenSQLiteWithDB(t)
	e, err := engine.New(engine.Config{}, store, nc, js) // no relay running: the test says what was sent
	if err != nil {
		t.Fatal(err)
	}
	sent := func(id string, at time.Time) {
		t.Helper()
		res, err := e.Apply(ctx, engine.Command{ID: "create:" + id, Verb: engine.VerbCreate, OrderID: engine.OrderID(id), Actor: "shop",
			Create: &engine.CreateOrder{Merchant: "m", OutTradeNo: id, Description: "d", AmountFen: 1, PayAPI: engine.PayV2,
				Client: engine.ClientJSAPI, OAuthCode: "code", RequestHash: id}})
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("create %s: %+v %v", id, res, err)
		}
		db.MustExecContext(ctx, db.Rebind("UPDATE outbox SET sent_at = ? WHERE event_id = ?"), at.UTC(), res.Events[0].ID)
	}
	// Aged out: published an hour ago, gone from the stream.
	sent("o_old", time.Now().Add(-time.Hour))
	// The stream's oldest message is from now; an event sent after it but
	// absent from the stream is a breach.
	if _, err := js.Publish(ctx, "wxflow.evt.created.o_x", []byte(`{"id":"evt_x"}`)); err != nil {
		t.Fatal(err)
	}
	sent("o_lost", time.Now().Add(2*time.Minute))
	breaches, err := Stream(ctx, js, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(breaches) != 1 || breaches[0].OrderID != "o_lost" || breaches[0].Rule != "event_missing_from_stream" {
		t.Fatalf("breaches = %+v, want o_lost's event missing (and o_old's aged out)", breaches)
	}
}

// TestLogsFindEveryMerchantsSecrets: a log holding any merchant's secret
// (an app's appsecret, a v2 or v3 key, a line of a private key) is a
// breach, whichever merchant of the folder it belongs to.
func TestLogsFindEveryMerchantsSecrets(t *testing.T) {
	dir := t.TempDir()
	keys, err := sim.EnsureMerchants(dir, sim.DevMerchants())
	if err != nil {
		t.Fatal(err)
	}
	second, err := keys.Registry.Merchant("second")
	if err != nil {
		t.Fatal(err)
	}
	sub1, err := keys.Registry.Merchant("provider-sub1")
	if err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	clean, dirty := filepath.Join(logs, "clean.log"), filepath.Join(logs, "dirty.log")
	if err := os.WriteFile(clean, []byte("level=INFO msg=ok merchant=second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leak := "x " + string(second.APIv3Key) + " y " + string(sub1.Apps[0].AppSecret) + "\n"
	if err := os.WriteFile(dirty, []byte(leak), 0o600); err != nil {
		t.Fatal(err)
	}
	breaches, err := Logs("default", dir, []string{clean, dirty})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, b := range breaches {
		found = append(found, b.Detail)
	}
	slices.Sort(found)
	want := []string{"provider-sub1's appsecret of " + sub1.Apps[0].AppID + " in " + dirty, "second's api_v3_key in " + dirty}
	if !slices.Equal(found, want) {
		t.Fatalf("breaches %q, want %q", found, want)
	}
}
