package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/client"
	"github.com/wxflow/wxflow/engine/enginetest"
)

// TestWebhookDeliveries: wxflow's deliverer posts the demo shop's events
// to a WebhookHandler, which verifies each with the endpoint's secret;
// the order's events arrive, its payment among them. A handler holding
// another secret lets none through.
func TestWebhookDeliveries(t *testing.T) {
	d := wxflow(t)
	ctx := context.Background()
	var handler atomic.Pointer[client.WebhookHandler]
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := handler.Load()
		if h == nil {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			refused.Add(1)
		}
	}))
	defer srv.Close()
	admin := func(method, path, body string, out any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, d.dev.APIURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+d.dev.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var added struct {
		Webhook struct {
			ID string `json:"id"`
		} `json:"webhook"`
		Secret string `json:"secret"`
	}
	admin(http.MethodPost, "/admin/api/shops/demo/webhooks", `{"url":"`+srv.URL+`/hooks/wxflow"}`, &added)
	defer admin(http.MethodDelete, "/admin/api/shops/demo/webhooks/"+added.Webhook.ID, "", nil)
	if !strings.HasPrefix(added.Secret, "whsec_") {
		t.Fatalf("the endpoint's secret: %q", added.Secret)
	}

	// First with a wrong secret: every delivery is refused (and sent again).
	var mu sync.Mutex
	events := map[string][]client.EventType{}
	handle := func(_ context.Context, e client.Event) error {
		mu.Lock()
		defer mu.Unlock()
		events[e.OrderID] = append(events[e.OrderID], e.Type)
		return nil
	}
	handler.Store(&client.WebhookHandler{Secrets: []string{"whsec_not_this_one"}, Handle: handle})
	c := d.shop(t)
	res, err := c.CreateOrder(ctx, client.CreateOrderRequest{AmountFen: 1200, Description: "hooked", PayAPI: client.PayV3,
		Payer: client.PayerOpenID("oHook"), IdempotencyKey: key(t)})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, 60*time.Second, func() error {
		if refused.Load() == 0 {
			return fmt.Errorf("no delivery refused yet")
		}
		return nil
	})
	mu.Lock()
	if len(events) != 0 {
		t.Fatalf("events passed a wrong secret: %v", events)
	}
	mu.Unlock()
	// Then the endpoint's secret (beside an old one, as in a rotation).
	handler.Store(&client.WebhookHandler{Secrets: []string{"whsec_old", added.Secret}, Handle: handle})
	v := waitOrder(t, c, res.Order.ID, "signed", inState(client.StateSigned))
	d.pay(t, v.Order.PrepayID)
	enginetest.WaitFor(t, 120*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		got := events[res.Order.ID]
		for _, want := range []client.EventType{client.EventCreated, client.EventSigned, client.EventNotified} {
			found := false
			for _, g := range got {
				found = found || g == want
			}
			if !found {
				return fmt.Errorf("events %v, no %s yet", got, want)
			}
		}
		return nil
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
