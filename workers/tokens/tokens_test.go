package tokens_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	_, nc, js := enginetest.StartNATS(t)

	var wg sync.WaitGroup
	for range 3 { // three processes compete for the lease
		r := &tokens.Refresher{MP: client, AppID: m.AppID, NC: nc, JS: js, Tick: 50 * time.Millisecond}
		wg.Go(func() { _ = r.Run(ctx) })
	}
	reader := &tokens.Reader{AppID: m.AppID, NC: nc, JS: js}
	var first string
	enginetest.WaitFor(t, 5*time.Second, func() error {
		var err error
		first, err = reader.JSAPITicket(ctx)
		return err
	})
	time.Sleep(300 * time.Millisecond) // several ticks of every refresher
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
