package failover_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// site is a real HTTP server playing one of the two hosts. Its mode says how
// it answers: "ok" (200, its name), "502" (bare, unsigned), "signed500" (500
// with the test's signature header), "403", "hang" (until the caller gives
// up), "drop" (the connection cut without an answer), "block" (until
// released, then 200).
type site struct {
	name    string
	srv     *httptest.Server
	mode    atomic.Value
	hits    atomic.Int64
	release chan struct{}

	mu     sync.Mutex
	bodies []string
	hosts  []string
}

func newSite(t *testing.T, name, mode string, tls bool) *site {
	t.Helper()
	s := &site{name: name, release: make(chan struct{})}
	s.mode.Store(mode)
	h := http.HandlerFunc(s.serve)
	if tls {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		s.set("ok")
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		s.srv.Close()
	})
	return s
}

func (s *site) set(mode string) { s.mode.Store(mode) }

func (s *site) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.hosts = append(s.hosts, r.Host)
	s.mu.Unlock()
	switch s.mode.Load().(string) {
	case "502":
		http.Error(w, "bad gateway", http.StatusBadGateway)
	case "signed500":
		w.Header().Set("X-Test-Signature", "genuine")
		http.Error(w, `{"code":"SYSTEM_ERROR"}`, http.StatusInternalServerError)
	case "403":
		http.Error(w, `{"code":"ORDERPAID"}`, http.StatusForbidden)
	case "hang":
		<-r.Context().Done()
	case "drop":
		panic(http.ErrAbortHandler)
	case "block":
		<-s.release
		io.WriteString(w, s.name)
	default:
		io.WriteString(w, s.name)
	}
}

// signed is the test's judge of 5xx answers: the service's own have the header.
func signed(h http.Header, _ []byte) bool { return h.Get("X-Test-Signature") == "genuine" }

// clock is a settable clock for the breakers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type pair struct {
	hosts  *failover.Hosts
	client *http.Client
	clock  *clock
	roles  *[]failover.Role
}

// newPair builds Hosts over primary and backup base URLs and a client whose
// transport (next) records the role of every attempt, as metrics do.
func newPair(t *testing.T, primary, backup string, next *http.Transport, cfg failover.Config) pair {
	t.Helper()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	cfg.Primary, cfg.Backup, cfg.Now = primary, backup, c.Now
	cfg.CoolDown = 10 * time.Second
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = 300 * time.Millisecond
	}
	h, err := failover.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if next == nil {
		next = &http.Transport{}
	}
	t.Cleanup(next.CloseIdleConnections)
	var mu sync.Mutex
	roles := &[]failover.Role{}
	recording := roundTripper(func(r *http.Request) (*http.Response, error) {
		if role, ok := failover.RoleOf(r.Context()); ok {
			mu.Lock()
			*roles = append(*roles, role)
			mu.Unlock()
		}
		return next.RoundTrip(r)
	})
	return pair{hosts: h, clock: c, roles: roles, client: &http.Client{Timeout: 10 * time.Second, Transport: h.Transport(recording, signed)}}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// post sends a body to path on the primary and returns the status and body.
func (p pair) post(t *testing.T, base, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/pay/orderquery?mchid=1", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (p pair) state(role failover.Role) failover.State {
	for _, st := range p.hosts.Status() {
		if st.Role == role {
			return st.State
		}
	}
	return -1
}

// refusedURL is an address nothing listens on.
func refusedURL(t *testing.T, scheme string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return scheme + "://" + addr
}

// TestFailover sends calls through a pair whose primary fails in one way,
// and checks who answered, what the backup received and the primary's breaker.
func TestFailover(t *testing.T) {
	tests := []struct {
		name        string
		primaryMode string
		wantStatus  int
		wantBody    string
		wantBackup  int64 // calls the backup received (of calls)
		calls       int
		wantState   failover.State
	}{
		{"an unsigned 502 fails over; three in a row open the breaker", "502", 200, "backup", 3, 3, failover.Open},
		{"two unsigned 502s leave the breaker closed", "502", 200, "backup", 2, 2, failover.Closed},
		{"a connection cut without an answer fails over", "drop", 200, "backup", 1, 1, failover.Closed},
		{"no answer within the attempt's time fails over", "hang", 200, "backup", 1, 1, failover.Closed},
		{"a signed 5xx is the service's answer, not an outage", "signed500", 500, `{"code":"SYSTEM_ERROR"}`, 0, 4, failover.Closed},
		{"a business error (4xx) is an answer", "403", 403, `{"code":"ORDERPAID"}`, 0, 4, failover.Closed},
		{"a healthy primary serves", "ok", 200, "primary", 0, 4, failover.Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary, backup := newSite(t, "primary", tt.primaryMode, false), newSite(t, "backup", "ok", false)
			p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{})
			for i := range tt.calls {
				status, body, err := p.post(t, primary.srv.URL, "<xml>call</xml>")
				if err != nil || status != tt.wantStatus || strings.TrimSpace(body) != tt.wantBody {
					t.Fatalf("call %d: %d %q %v; want %d %q", i, status, body, err, tt.wantStatus, tt.wantBody)
				}
			}
			if got := backup.hits.Load(); got != tt.wantBackup {
				t.Errorf("backup received %d calls, want %d", got, tt.wantBackup)
			}
			if got := primary.hits.Load(); got != int64(tt.calls) {
				t.Errorf("primary received %d calls, want %d", got, tt.calls)
			}
			if st := p.state(failover.Primary); st != tt.wantState {
				t.Errorf("primary breaker %s, want %s", st, tt.wantState)
			}
			backup.mu.Lock()
			defer backup.mu.Unlock()
			for i, b := range backup.bodies {
				if b != "<xml>call</xml>" || backup.hosts[i] != strings.TrimPrefix(backup.srv.URL, "http://") {
					t.Errorf("backup got body %q for host %q: the body and Host must be the call's, on the backup", b, backup.hosts[i])
				}
			}
		})
	}
}

// TestUnreachableOpensAtOnce: a refused connection and a failed TLS
// handshake say the site is gone; one is enough to open the breaker, and
// the next calls go straight to the backup.
func TestUnreachableOpensAtOnce(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		backup := newSite(t, "backup", "ok", false)
		primary := refusedURL(t, "http")
		p := newPair(t, primary, backup.srv.URL, nil, failover.Config{})
		for i := range 3 {
			if status, body, err := p.post(t, primary, "x"); err != nil || status != 200 || body != "backup" {
				t.Fatalf("call %d: %d %q %v", i, status, body, err)
			}
			if st := p.state(failover.Primary); st != failover.Open {
				t.Fatalf("after call %d the primary's breaker is %s, want open", i, st)
			}
		}
		if got := strings.Join(roleNames(*p.roles), " "); got != "primary backup backup backup" {
			t.Errorf("attempts went to %s", got)
		}
	})
	t.Run("TLS handshake failure", func(t *testing.T) {
		backup := newSite(t, "backup", "ok", true)
		primary := newSite(t, "primary", "ok", false) // speaks plain HTTP to an https call
		primaryURL := strings.Replace(primary.srv.URL, "http://", "https://", 1)
		p := newPair(t, primaryURL, backup.srv.URL, backup.srv.Client().Transport.(*http.Transport), failover.Config{})
		if status, body, err := p.post(t, primaryURL, "x"); err != nil || status != 200 || body != "backup" {
			t.Fatalf("%d %q %v", status, body, err)
		}
		if st := p.state(failover.Primary); st != failover.Open {
			t.Errorf("primary breaker %s, want open", st)
		}
	})
}

func roleNames(rs []failover.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// TestRecovery: while the primary's breaker is open calls go to the backup
// alone; after the cool-down one call probes the primary, and calls stay on
// the backup while the primary still fails; once the primary answers, the
// probe closes the breaker and calls return to it.
func TestRecovery(t *testing.T) {
	primary, backup := newSite(t, "primary", "502", false), newSite(t, "backup", "ok", false)
	p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{Threshold: 2})
	call := func(want string) {
		t.Helper()
		if status, body, err := p.post(t, primary.srv.URL, "x"); err != nil || status != 200 || strings.TrimSpace(body) != want {
			t.Fatalf("%d %q %v, want %s", status, body, err, want)
		}
	}
	call("backup")
	call("backup")
	if st := p.state(failover.Primary); st != failover.Open {
		t.Fatalf("primary breaker %s, want open", st)
	}
	hits := primary.hits.Load()
	call("backup")
	p.clock.Add(9 * time.Second)
	call("backup")
	if primary.hits.Load() != hits {
		t.Fatal("a call went to the primary during its cool-down")
	}
	p.clock.Add(time.Second)
	call("backup") // the probe: the primary still fails
	if primary.hits.Load() != hits+1 || p.state(failover.Primary) != failover.Open {
		t.Fatalf("probe: primary hits %d (want %d), breaker %s", primary.hits.Load(), hits+1, p.state(failover.Primary))
	}
	call("backup")
	primary.set("ok")
	call("backup") // still resting
	p.clock.Add(10 * time.Second)
	call("primary") // the probe answers
	call("primary")
	if st := p.state(failover.Primary); st != failover.Closed {
		t.Fatalf("primary breaker %s, want closed", st)
	}
	if st := p.hosts.Status()[0]; st.Opened != 2 {
		t.Errorf("the primary's breaker opened %d times, want 2", st.Opened)
	}
}

// TestOneProbeAtATime: while the probe is out, other calls go to the backup.
func TestOneProbeAtATime(t *testing.T) {
	primary, backup := newSite(t, "primary", "502", false), newSite(t, "backup", "ok", false)
	p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{Threshold: 1, AttemptTimeout: 5 * time.Second})
	if _, body, _ := p.post(t, primary.srv.URL, "x"); body != "backup" {
		t.Fatalf("got %q", body)
	}
	primary.set("block")
	p.clock.Add(10 * time.Second)
	probe := make(chan string, 1)
	go func() {
		_, body, err := p.post(t, primary.srv.URL, "probe")
		probe <- body + errString(err)
	}()
	waitFor(t, func() bool { return primary.hits.Load() == 2 })
	if st := p.state(failover.Primary); st != failover.HalfOpen {
		t.Fatalf("primary breaker %s while probing, want half-open", st)
	}
	for range 3 {
		if _, body, err := p.post(t, primary.srv.URL, "other"); body != "backup" {
			t.Fatalf("a call during the probe got %q %v, want the backup's answer", body, err)
		}
	}
	close(primary.release)
	if got := <-probe; got != "primary" {
		t.Fatalf("probe got %q", got)
	}
	if st := p.state(failover.Primary); st != failover.Closed || primary.hits.Load() != 2 {
		t.Fatalf("primary breaker %s after %d calls; want closed after the probe alone", st, primary.hits.Load())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNoFailover lists the calls that must stay with the primary's outcome.
func TestNoFailover(t *testing.T) {
	t.Run("a body that cannot be sent again", func(t *testing.T) {
		primary, backup := newSite(t, "primary", "502", false), newSite(t, "backup", "ok", false)
		p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{})
		req, _ := http.NewRequest(http.MethodPost, primary.srv.URL+"/pay/refund", io.NopCloser(strings.NewReader("once")))
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || backup.hits.Load() != 0 {
			t.Errorf("status %d, backup hits %d: want the primary's 502 and nothing sent to the backup", resp.StatusCode, backup.hits.Load())
		}
	})
	t.Run("the caller gave up", func(t *testing.T) {
		primary, backup := newSite(t, "primary", "hang", false), newSite(t, "backup", "ok", false)
		p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{Threshold: 1, AttemptTimeout: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, primary.srv.URL+"/pay/orderquery", strings.NewReader("x"))
		go func() {
			waitFor(t, func() bool { return primary.hits.Load() == 1 })
			cancel()
		}()
		if _, err := p.client.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if backup.hits.Load() != 0 || p.state(failover.Primary) != failover.Closed {
			t.Errorf("backup hits %d, primary breaker %s: a cancelled call says nothing of the host", backup.hits.Load(), p.state(failover.Primary))
		}
	})
	t.Run("a call to another host", func(t *testing.T) {
		primary, backup, other := newSite(t, "primary", "502", false), newSite(t, "backup", "ok", false), newSite(t, "other", "502", false)
		p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{Threshold: 1})
		status, _, err := p.post(t, other.srv.URL, "x")
		if err != nil || status != http.StatusBadGateway || backup.hits.Load() != 0 || len(*p.roles) != 0 {
			t.Errorf("%d %v, backup hits %d, roles %v: another host's calls pass through untouched", status, err, backup.hits.Load(), *p.roles)
		}
		if p.state(failover.Primary) != failover.Closed {
			t.Error("another host's failure moved the primary's breaker")
		}
	})
	t.Run("a 5xx too long to be judged is not an answer", func(t *testing.T) {
		backup := newSite(t, "backup", "ok", false)
		huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Test-Signature", "genuine")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(make([]byte, 4*failover.MaxAnswerBytes))
		}))
		defer huge.Close()
		p := newPair(t, huge.URL, backup.srv.URL, nil, failover.Config{})
		if status, body, err := p.post(t, huge.URL, "x"); err != nil || status != 200 || body != "backup" {
			t.Errorf("%d %q %v: want the backup's answer", status, body, err)
		}
	})
}

// TestBothDown: when neither host answers the last failure is the caller's;
// once both breakers are open nothing is sent until a cool-down ends.
func TestBothDown(t *testing.T) {
	primary, backup := refusedURL(t, "http"), newSite(t, "backup", "502", false)
	p := newPair(t, primary, backup.srv.URL, nil, failover.Config{Threshold: 1})
	status, _, err := p.post(t, primary, "x")
	if err != nil || status != http.StatusBadGateway {
		t.Fatalf("%d %v: want the backup's 502", status, err)
	}
	_, _, err = p.post(t, primary, "x")
	if !errors.Is(err, failover.ErrUnavailable) || backup.hits.Load() != 1 {
		t.Fatalf("err %v, backup hits %d: want ErrUnavailable with nothing sent", err, backup.hits.Load())
	}
	backup.set("ok")
	p.clock.Add(10 * time.Second)
	if _, body, err := p.post(t, primary, "x"); body != "backup" {
		t.Fatalf("after the cool-down: %q %v, want the backup (the primary's probe refused)", body, err)
	}
}

// TestConfig refuses pairs that cannot work.
func TestConfig(t *testing.T) {
	tests := []struct {
		name            string
		primary, backup string
		threshold       int
	}{
		{"no backup", "https://api.mch.weixin.qq.com", "", 0},
		{"the backup is the primary", "https://api.mch.weixin.qq.com", "https://api.mch.weixin.qq.com/", 0},
		{"a path", "https://api.mch.weixin.qq.com", "https://api2.mch.weixin.qq.com/v3", 0},
		{"a user", "https://api.mch.weixin.qq.com", "https://u:p@api2.mch.weixin.qq.com", 0},
		{"a query", "https://api.mch.weixin.qq.com", "https://api2.mch.weixin.qq.com?x=1", 0},
		{"another scheme", "https://api.mch.weixin.qq.com", "ftp://api2.mch.weixin.qq.com", 0},
		{"no scheme", "https://api.mch.weixin.qq.com", "api2.mch.weixin.qq.com", 0},
		{"a negative threshold", "https://api.mch.weixin.qq.com", "https://api2.mch.weixin.qq.com", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := failover.New(failover.Config{Primary: tt.primary, Backup: tt.backup, Threshold: tt.threshold}); !errors.Is(err, failover.ErrConfig) {
				t.Errorf("err %v, want ErrConfig", err)
			}
		})
	}
	h, err := failover.New(failover.Config{Primary: "https://api.mch.weixin.qq.com/", Backup: "https://api2.mch.weixin.qq.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Serves("https://api.mch.weixin.qq.com") || h.Serves("https://api.weixin.qq.com") || h.Serves("http://api.mch.weixin.qq.com") {
		t.Error("Serves must name the primary's scheme and host alone")
	}
}

// TestAttemptHalfOfCallTime: a primary that does not answer gets at most half
// of the time the call has left (http.Client.Timeout is seen as the
// request's deadline), so the backup still has time to answer.
func TestAttemptHalfOfCallTime(t *testing.T) {
	primary, backup := newSite(t, "primary", "hang", false), newSite(t, "backup", "ok", false)
	p := newPair(t, primary.srv.URL, backup.srv.URL, nil, failover.Config{AttemptTimeout: time.Hour})
	p.client.Timeout = 2 * time.Second
	if status, body, err := p.post(t, primary.srv.URL, "x"); err != nil || status != 200 || body != "backup" {
		t.Fatalf("%d %q %v: want the backup's answer within the call's time", status, body, err)
	}
}
