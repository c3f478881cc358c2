package tokens_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/workers/tokens"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/sim/simtest"
)

// counting counts the calls to cgi-bin/token.
type counting struct {
	next  http.RoundTripper
	calls atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/cgi-bin/token") {
		c.calls.Add(1)
	}
	return c.next.RoundTrip(r)
}

func TestOneRefresherForTheDeployment(t *testing.T) {
	s, url, _ := simtest.Start(t, sim.Config{TimeScale: 0.01})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counter := &counting{next: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	m := s.Keys().Merchant
	client, _ := mp.NewClient(mp.Config{BaseURL: url, AppID: m.AppID, AppSecret: m.AppSecret, HTTPClient: &http.Client{Transport: counter}})
	ns, nc, js := enginetest.StartNATS(t)

	var wg sync.WaitGroup
	var conns []*nats.Conn // each refresher's own, so its ticks can be counted
	for range 3 {          // three processes compete for the lease
		rc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		rjs, err := jetstream.New(rc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, rc)
		r := &tokens.Refresher{MP: client, AppID: m.AppID, NC: rc, JS: rjs, Tick: 50 * time.Millisecond}
		wg.Go(func() { _ = r.Run(ctx) })
	}
	reader := &tokens.Reader{AppID: m.AppID, NC: nc, JS: js}
	var first string
	enginetest.WaitFor(t, 10*time.Second, func() error {
		var err error
		first, err = reader.JSAPITicket(ctx)
		return err
	})
	waitTicks(t, conns, 3)
	if n := counter.calls.Load(); n != 1 {
		t.Fatalf("%d token fetches by three refreshers, want 1", n)
	}
	tok, _ := reader.AccessToken(ctx)
	// A burst of readers saw the token refused: one fetch.
	var burst sync.WaitGroup
	for range 10 {
		burst.Go(func() {
			if err := reader.Invalidate(ctx, tok); err != nil {
				t.Error(err)
			}
		})
	}
	burst.Wait()
	if n := counter.calls.Load(); n != 2 {
		t.Fatalf("%d token fetches after a burst of invalidations, want 2", n)
	}
	second, err := reader.JSAPITicket(ctx)
	if err != nil || second == first {
		t.Fatalf("ticket after refresh: %q (was %q), %v", second, first, err)
	}
	cancel()
	wg.Wait()
}

// waitTicks waits until every refresher, each on its own connection in
// conns, has run at least n whole ticks more: a tick sends at most
// msgsPerTick messages (a lease create or update and its read; the leader's
// two token reads, or its fetch's two puts), so (n+1)·msgsPerTick more
// messages hold n whole ticks, whatever part of a tick they start and end in.
func waitTicks(t *testing.T, conns []*nats.Conn, n uint64) {
	t.Helper()
	const msgsPerTick = 5
	want := (n + 1) * msgsPerTick
	from := make([]uint64, len(conns))
	for i, c := range conns {
		from[i] = c.Stats().OutMsgs
	}
	enginetest.WaitFor(t, 20*time.Second, func() error {
		for i, c := range conns {
			if sent := c.Stats().OutMsgs - from[i]; sent < want {
				return fmt.Errorf("refresher %d sent %d messages, want %d (%d whole ticks)", i, sent, want, n)
			}
		}
		return nil
	})
}

// A mini-program's refresher keeps its access_token and asks for no
// jsapi_ticket (it has no JS-SDK pages); each app's tokens are its own.
func TestMiniProgramRefresherKeepsNoTicket(t *testing.T) {
	s, url, hc := simtest.Start(t, sim.Config{TimeScale: 0.01})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := s.Keys().Merchant
	client, _ := mp.NewClient(mp.Config{BaseURL: url, AppID: m.AppID, AppSecret: m.AppSecret, HTTPClient: hc})
	_, nc, js := enginetest.StartNATS(t)
	r := &tokens.Refresher{MP: client, AppID: m.AppID, NoTicket: true, NC: nc, JS: js, Tick: 50 * time.Millisecond}
	go func() { _ = r.Run(ctx) }()
	reader := &tokens.Reader{AppID: m.AppID, NC: nc, JS: js}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := reader.AccessToken(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no access_token shared within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	kv, err := js.KeyValue(ctx, engine.TokenBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(ctx)
	for _, k := range keys {
		if strings.Contains(k, "ticket") {
			t.Errorf("a mini-program's refresher stored %s", k)
		}
		if !strings.Contains(k, m.AppID) {
			t.Errorf("token key %s does not name its app %s", k, m.AppID)
		}
	}
}
