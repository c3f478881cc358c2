package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/engine/enginetest"
	"github.com/wxflow/wxflow/internal/openapitest"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	v2 "github.com/wxflow/wxflow/workers/wechat/v2"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// adminToken is the test deployment's single admin token (admin "admin").
const adminToken = "test-admin-token-0123456789abcdef"

// Named admins' tokens, for the tests of identity.
const (
	aliceToken = "alice-token-0123456789abcdef-0123456789"
	bobToken   = "bob-token-0123456789abcdef-0123456789ab"
)

func TestAdminAPI(t *testing.T) {
	h := newHarness(t)
	o := h.prepaid(t, 300, "v3")
	for name, header := range map[string][]string{
		"no token":    nil,
		"wrong token": {"Authorization", "Bearer nope"},
		"basic auth":  {"Authorization", "Basic " + adminToken},
	} {
		if s, _ := h.do(t, http.MethodGet, "/admin/api/stuck", "", nil, header...); s != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, s)
		}
		if s, _ := h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/close", "application/json", []byte(`{"reason":"x"}`), header...); s != http.StatusUnauthorized {
			t.Errorf("%s, acting: %d, want 401", name, s)
		}
	}
	auth := []string{"Authorization", "Bearer " + adminToken}
	s, out := h.do(t, http.MethodGet, "/admin/api/orders?q="+string(o.ID), "", nil, auth...)
	if s != http.StatusOK || !strings.Contains(string(out), string(o.ID)) {
		t.Fatalf("search: %d %s", s, out)
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/replay", "application/json", []byte(`{}`), auth...); s != http.StatusBadRequest {
		t.Fatalf("replay without a reason: %d %s", s, out)
	}
	// A who in the body is ignored: the history names the token's admin.
	s, out = h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/replay", "application/json", []byte(`{"who":"alice","reason":"worker was down"}`), auth...)
	if s != http.StatusOK {
		t.Fatalf("replay: %d %s", s, out)
	}
	var detail struct {
		History []engine.HistoryEntry
	}
	_, out = h.do(t, http.MethodGet, "/admin/api/orders/"+string(o.ID), "", nil, auth...)
	_ = json.Unmarshal(out, &detail)
	last := detail.History[len(detail.History)-1]
	if last.Actor != "admin:admin" || !strings.Contains(last.Reason, "worker was down") || last.Type != string(engine.EventPrepaid) {
		t.Fatalf("history does not say who and why: %+v", last)
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/refunds", "application/json", []byte(`{"amount_fen":1,"reason":"r"}`), auth...); s != http.StatusConflict {
		t.Fatalf("refund of an unpaid order: %d %s", s, out)
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/replay-stuck", "application/json", []byte(`{"reason":"r","dry_run":true}`), auth...); s != http.StatusOK {
		t.Fatalf("replay-stuck dry run: %d %s", s, out)
	}
	// The page asks for the token.
	if s, out := h.do(t, http.MethodGet, "/admin/login", "", nil); s != http.StatusOK || !strings.Contains(string(out), "Admin token") {
		t.Fatalf("login page: %d", s)
	}
}

// clock is a test's time: the admin side reads it through api.Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects the server's log lines (JSON), safe for its goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// adminHarness is the API with a clock the test moves and its logs kept.
type adminHarness struct {
	*harness
	clock *clock
	logs  *logBuffer
	cfg   api.Config
}

// newAdminHarness is newHarness with the admin settings of cfg (AdminToken
// is adminToken unless set) and a test clock.
func newAdminHarness(t *testing.T, cfg api.Config) *adminHarness {
	t.Helper()
	clk, logs := &clock{now: time.Now()}, &logBuffer{}
	h, used := startHarness(t, func(c *api.Config) {
		*c = cfg
		c.Now, c.Logger = clk.Now, slog.New(slog.NewJSONHandler(logs, nil))
	})
	return &adminHarness{harness: h, clock: clk, logs: logs, cfg: used}
}

// process is another api process of the same deployment (its store, NATS
// and clock) given adminTokens as its WXFLOW_ADMIN_TOKEN.
func (h *adminHarness) process(t *testing.T, adminTokens string) *adminHarness {
	t.Helper()
	cfg := h.cfg
	cfg.AdminToken = adminTokens
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	other := *h.harness
	other.srv, other.url, other.client = srv, hs.URL, openapitest.New(t, openapitest.Internal).Client(hs.Client())
	other.publicHandler = openapitest.New(t, openapitest.Public).Handler(srv.PublicHandler())
	return &adminHarness{harness: &other, clock: h.clock, logs: h.logs, cfg: cfg}
}

// browser is one admin's browser: it keeps the session cookie it is given,
// follows no redirect (the tests look at them) and sends the admin page's
// Origin with every form unless told otherwise.
type browser struct {
	t      *testing.T
	h      *adminHarness
	cookie *http.Cookie
}

// answer is what the server said to one request.
type answer struct {
	status   int
	location string
	header   http.Header
	body     string
}

func (b *browser) send(req *http.Request) answer {
	b.t.Helper()
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "wxflow_admin" {
			if c.MaxAge < 0 {
				b.cookie = nil
			} else {
				b.cookie = c
			}
		}
	}
	return answer{resp.StatusCode, resp.Header.Get("Location"), resp.Header, string(body)}
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.h.url+path, nil)
	return b.send(req)
}

// post sends a form; header pairs are set as given ("Origin", "" removes
// the page's Origin).
func (b *browser) post(path string, form url.Values, header ...string) answer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.h.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.h.url)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return b.send(req)
}

// signIn signs in with token through the page and fails the test unless a
// session cookie comes back.
func (b *browser) signIn(token string) {
	b.t.Helper()
	a := b.post("/admin/login", url.Values{"token": {token}})
	if a.status != http.StatusSeeOther || a.location != "/admin/" || b.cookie == nil {
		b.t.Fatalf("sign in: %d to %q, cookie %v", a.status, a.location, b.cookie)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms of the order's page.
func (b *browser) csrf(id engine.OrderID) string {
	b.t.Helper()
	a := b.get("/admin/orders/" + string(id))
	m := csrfRE.FindStringSubmatch(a.body)
	if a.status != http.StatusOK || m == nil {
		b.t.Fatalf("order page: %d, no CSRF token in %.200s", a.status, a.body)
	}
	return m[1]
}

func (h *adminHarness) browser(t *testing.T) *browser { return &browser{t: t, h: h} }

func (h *adminHarness) history(t *testing.T, id engine.OrderID) []engine.HistoryEntry {
	t.Helper()
	hist, err := h.store.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return hist
}

// TestAdminFormsNeedOriginAndCSRF: a form with a valid session is acted on
// only when it comes from the admin page (Origin, else Referer) and carries
// the session's own CSRF token; every refusal leaves the order's history as
// it was.
func TestAdminFormsNeedOriginAndCSRF(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	o := h.prepaid(t, 300, "v2")
	b := h.browser(t)
	b.signIn(adminToken)
	token := b.csrf(o.ID)
	other := h.browser(t)
	other.signIn(adminToken)
	othersToken := other.csrf(o.ID)
	if token == othersToken {
		t.Fatal("two sessions share a CSRF token")
	}
	before := len(h.history(t, o.ID))
	refused := []struct {
		name   string
		csrf   string
		header []string
	}{
		{"other origin", token, []string{"Origin", "http://127.0.0.1:1"}},
		{"other host, same port", token, []string{"Origin", strings.Replace(h.url, "127.0.0.1", "localhost", 1)}},
		{"opaque origin", token, []string{"Origin", "null"}},
		{"no origin, other referer", token, []string{"Origin", "", "Referer", "http://127.0.0.1:1/form.html"}},
		{"no origin, no referer", token, []string{"Origin", ""}},
		{"no CSRF token", "", nil},
		{"wrong CSRF token", "x" + token[1:], nil},
		{"another session's CSRF token", othersToken, nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"reason": {"forged"}}
			if tc.csrf != "" {
				form.Set("csrf", tc.csrf)
			}
			for _, action := range []string{"/admin/orders/" + string(o.ID) + "/close", "/admin/orders/" + string(o.ID) + "/replay", "/admin/replay-stuck", "/admin/logout"} {
				if a := b.post(action, form, tc.header...); a.status != http.StatusForbidden {
					t.Errorf("%s: %d, want 403", action, a.status)
				}
			}
		})
	}
	if n := len(h.history(t, o.ID)); n != before {
		t.Fatalf("refused forms changed the order: %d history entries, were %d", n, before)
	}
	if o2 := h.state(t, o.ID); o2.State != o.State || o2.Version != o.Version {
		t.Fatalf("refused forms changed the order: %+v", o2)
	}
	// The same form from the admin page goes through, by Origin or by Referer.
	for _, header := range [][]string{nil, {"Origin", "", "Referer", h.url + "/admin/orders/" + string(o.ID)}} {
		a := b.post("/admin/orders/"+string(o.ID)+"/replay", url.Values{"reason": {"from the page"}, "csrf": {token}}, header...)
		if a.status != http.StatusSeeOther || !strings.Contains(a.location, "replay+done") {
			t.Fatalf("replay from the page (%v): %d to %q", header, a.status, a.location)
		}
	}
	if n := len(h.history(t, o.ID)); n != before+2 {
		t.Fatalf("%d history entries after two replays, want %d", n, before+2)
	}
}

// TestAdminSessionIsNotTheToken: the cookie holds a random session id, not
// the token; the token as a cookie opens nothing; the cookie opens nothing
// of the bearer API; the cookie is HttpOnly, SameSite=Strict, Path=/admin/
// and Secure when the deployment is served over https.
func TestAdminSessionIsNotTheToken(t *testing.T) {
	for _, secure := range []bool{false, true} {
		h := newAdminHarness(t, api.Config{SecureCookies: secure})
		b := h.browser(t)
		b.signIn(adminToken)
		c := b.cookie
		if strings.Contains(c.Value, adminToken) || len(c.Value) < 43 {
			t.Fatalf("the cookie is not a random session id: %q", c.Value)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin/" || c.Secure != secure || c.MaxAge <= 0 {
			t.Fatalf("secure=%v: cookie %+v", secure, c)
		}
		if a := b.get("/admin/"); a.status != http.StatusOK || !strings.Contains(a.body, "Orders by state") {
			t.Fatalf("the session opens no page: %d", a.status)
		}
		// The token itself as a cookie is no session.
		tb := h.browser(t)
		tb.cookie = &http.Cookie{Name: "wxflow_admin", Value: adminToken}
		if a := tb.get("/admin/"); a.status != http.StatusSeeOther || a.location != "/admin/login" {
			t.Fatalf("the token as a cookie: %d to %q, want the sign-in page", a.status, a.location)
		}
		// The bearer API never reads the cookie.
		if a := b.get("/admin/api/stuck"); a.status != http.StatusUnauthorized {
			t.Fatalf("the session cookie on the bearer API: %d, want 401", a.status)
		}
		o := h.prepaid(t, 100, "v3")
		req, _ := http.NewRequest(http.MethodPost, h.url+"/admin/api/orders/"+string(o.ID)+"/close", strings.NewReader(`{"reason":"x"}`))
		if a := b.send(req); a.status != http.StatusUnauthorized {
			t.Fatalf("the session cookie acting on the bearer API: %d, want 401", a.status)
		}
	}
}

// TestAdminSessionEnds: a sign-out ends the session for good (its old
// cookie opens nothing), and a session ends by itself after
// AdminSessionTTL.
func TestAdminSessionEnds(t *testing.T) {
	h := newAdminHarness(t, api.Config{AdminSessionTTL: time.Hour})
	o := h.prepaid(t, 100, "v3")

	b := h.browser(t)
	b.signIn(adminToken)
	old := b.cookie
	a := b.post("/admin/logout", url.Values{"csrf": {b.csrf(o.ID)}})
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/admin/login") || b.cookie != nil {
		t.Fatalf("sign out: %d to %q, cookie %v", a.status, a.location, b.cookie)
	}
	b.cookie = old
	if a := b.get("/admin/"); a.status != http.StatusSeeOther || a.location != "/admin/login" {
		t.Fatalf("the cookie of a signed-out session: %d to %q", a.status, a.location)
	}

	b = h.browser(t)
	b.signIn(adminToken)
	if b.cookie.MaxAge != int(time.Hour/time.Second) {
		t.Fatalf("cookie lives %d s, want an hour", b.cookie.MaxAge)
	}
	token := b.csrf(o.ID)
	h.clock.Advance(59 * time.Minute)
	if a := b.get("/admin/"); a.status != http.StatusOK {
		t.Fatalf("a session 59 minutes old: %d", a.status)
	}
	h.clock.Advance(time.Minute)
	before := len(h.history(t, o.ID))
	for path, a := range map[string]answer{
		"GET /admin/": b.get("/admin/"),
		"POST replay": b.post("/admin/orders/"+string(o.ID)+"/replay", url.Values{"reason": {"late"}, "csrf": {token}}),
	} {
		if a.status != http.StatusSeeOther || a.location != "/admin/login" {
			t.Errorf("%s with an expired session: %d to %q, want the sign-in page", path, a.status, a.location)
		}
	}
	if n := len(h.history(t, o.ID)); n != before {
		t.Fatal("an expired session acted")
	}
}

// TestAdminSessionEndsWithItsToken: a session lasts only as long as the
// token it was made with. Once an admin's token is changed, or the admin
// removed, an api process given the new WXFLOW_ADMIN_TOKEN ends their
// sessions (on every process: they live in NATS) and they act no more;
// another admin's session stays, and so does every session on a process
// given the same tokens.
func TestAdminSessionEndsWithItsToken(t *testing.T) {
	tokens := "alice=" + aliceToken + ",bob=" + bobToken
	h := newAdminHarness(t, api.Config{AdminToken: tokens})
	o := h.prepaid(t, 100, "v3")
	bob := h.browser(t)
	bob.signIn(bobToken)
	for _, tc := range []struct{ name, tokens string }{
		{"alice's token changed", "alice=" + aliceToken + "-changed,bob=" + bobToken},
		{"alice removed", "bob=" + bobToken},
	} {
		alice := h.browser(t)
		alice.signIn(aliceToken)
		csrf := alice.csrf(o.ID)
		alice.h = h.process(t, tokens)
		if a := alice.get("/admin/"); a.status != http.StatusOK {
			t.Fatalf("%s: a process with the same tokens: %d, want the page", tc.name, a.status)
		}
		changed := h.process(t, tc.tokens)
		alice.h, bob.h = changed, changed
		before := len(h.history(t, o.ID))
		if a := alice.post("/admin/orders/"+string(o.ID)+"/replay", url.Values{"reason": {"old session"}, "csrf": {csrf}}); a.status != http.StatusSeeOther || a.location != "/admin/login" {
			t.Errorf("%s: alice's form: %d to %q, want the sign-in page", tc.name, a.status, a.location)
		}
		if n := len(h.history(t, o.ID)); n != before {
			t.Fatalf("%s: alice's old session acted", tc.name)
		}
		if a := bob.get("/admin/"); a.status != http.StatusOK {
			t.Errorf("%s: bob's session: %d, want the page", tc.name, a.status)
		}
		alice.h = h // the process that made the session, with the old tokens
		if a := alice.get("/admin/"); a.status != http.StatusSeeOther || a.location != "/admin/login" {
			t.Errorf("%s: alice's ended session on the old process: %d to %q", tc.name, a.status, a.location)
		}
	}
	if !strings.Contains(h.logs.String(), "its token is no longer the admin's") {
		t.Error("no warning of the refused session")
	}
}

// TestAdminHeaders: every admin answer forbids framing and sniffing, keeps
// its Referer home and stays out of caches; the pages load nothing but
// their own origin's.
func TestAdminHeaders(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	b := h.browser(t)
	b.signIn(adminToken)
	want := map[string]string{
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
		"Cache-Control":          "no-store",
	}
	bearer, _ := http.NewRequest(http.MethodGet, h.url+"/admin/api/stuck", nil)
	bearer.Header.Set("Authorization", "Bearer "+adminToken)
	for name, a := range map[string]answer{
		"sign-in page":   b.get("/admin/login"),
		"index":          b.get("/admin/"),
		"style sheet":    b.get("/admin/admin.css"),
		"refused form":   b.post("/admin/replay-stuck", url.Values{"reason": {"x"}}),
		"unknown order":  b.get("/admin/orders/o_nope"),
		"bearer API":     b.send(bearer),
		"signed-out GET": h.browser(t).get("/admin/"),
	} {
		for k, v := range want {
			if got := a.header.Get(k); got != v {
				t.Errorf("%s: %s %q, want %q", name, k, got, v)
			}
		}
		csp := a.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", name, csp)
		}
	}
	if a := b.get("/admin/"); strings.Contains(a.body, "<style") || !strings.Contains(a.body, `href="/admin/admin.css"`) {
		t.Error("the page has inline style, which its CSP refuses")
	}
	if a := b.get("/admin/admin.css"); a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/css") {
		t.Errorf("style sheet: %d %s", a.status, a.header.Get("Content-Type"))
	}
}

// TestAdminFailedSignInsAreLimited: a client's 6th failed sign-in within a
// minute is answered 429 with Retry-After, even with the right token, on
// the page and the bearer API alike; each failure is a Warn line with the
// client's address and no token text; a minute later the right token works.
func TestAdminFailedSignInsAreLimited(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	b := h.browser(t)
	for i := range 5 {
		a := b.post("/admin/login", url.Values{"token": {"guess-number-" + string(rune('a'+i))}})
		if a.status != http.StatusSeeOther || !strings.Contains(a.location, "Wrong+token") {
			t.Fatalf("failure %d: %d to %q", i+1, a.status, a.location)
		}
	}
	a := b.post("/admin/login", url.Values{"token": {"guess-number-f"}})
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("6th failure: %d, Retry-After %q; want 429 with Retry-After", a.status, a.header.Get("Retry-After"))
	}
	if a := b.post("/admin/login", url.Values{"token": {adminToken}}); a.status != http.StatusTooManyRequests || b.cookie != nil {
		t.Fatalf("the right token while limited: %d, want 429 and no session", a.status)
	}
	bearer, _ := http.NewRequest(http.MethodGet, h.url+"/admin/api/stuck", nil)
	bearer.Header.Set("Authorization", "Bearer "+adminToken)
	if a := b.send(bearer); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("the bearer API while limited: %d, want 429", a.status)
	}

	var warned int
	for line := range strings.Lines(h.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(line, "guess-number") || strings.Contains(line, adminToken) {
			t.Fatalf("a log line quotes a token: %s", line)
		}
		if rec["level"] == "WARN" && strings.HasPrefix(rec["msg"].(string), "admin: sign-in refused") {
			if rec["client_ip"] != "127.0.0.1" {
				t.Errorf("no client address: %s", line)
			}
			warned++
		}
	}
	if warned < 6 {
		t.Fatalf("%d Warn lines about refused sign-ins, want one per failure and per refusal:\n%s", warned, h.logs.String())
	}

	h.clock.Advance(time.Minute)
	b.signIn(adminToken)
	bearer, _ = http.NewRequest(http.MethodGet, h.url+"/admin/api/stuck", nil)
	bearer.Header.Set("Authorization", "Bearer "+adminToken)
	if a := b.send(bearer); a.status != http.StatusOK {
		t.Fatalf("the bearer API a minute later: %d", a.status)
	}
}

// TestAdminTokensAreChecked: api.New refuses a token shorter than 32 bytes,
// named tokens that are short, badly named or named twice, and a session
// longer than its bucket keeps it.
func TestAdminTokensAreChecked(t *testing.T) {
	_, _, nc, js := enginetest.StartEngine(t)
	keys, err := sim.EnsureKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: keys.Merchant})
	c3, _ := v3.NewClient(v3.Config{BaseURL: "https://unused", Merchant: keys.Merchant})
	store := enginetest.OpenSQLite(t)
	long := strings.Repeat("k", api.MinAdminTokenBytes)
	tests := []struct {
		name, token string
		ttl         time.Duration
		wantErr     string // "" when New accepts it
	}{
		{name: "no token: admin off", token: ""},
		{name: "one long token", token: long},
		{name: "padded base64 token", token: strings.Repeat("A", 43) + "="},
		{name: "named tokens", token: "alice=" + long + ", bob=" + long + "=="},
		{name: "short token", token: "local-admin-token", wantErr: "17 bytes, at least 32"},
		{name: "31 bytes", token: long[1:], wantErr: "31 bytes"},
		{name: "short named token", token: "alice=" + long + ",bob=short", wantErr: `admin token of "bob": 5 bytes`},
		{name: "name twice", token: "alice=" + long + ",alice=" + long + "x", wantErr: `"alice" is named twice`},
		{name: "upper-case name", token: "Alice=" + long, wantErr: "pair 1"},
		{name: "pair without a name", token: "alice=" + long + "," + long, wantErr: "pair 2"},
		{name: "session longer than its bucket", token: long, ttl: 9 * time.Hour, wantErr: "AdminSessionTTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.New(api.Config{Merchants: []api.Merchant{{Merchant: keys.Merchant, V2: c2, V3: c3}}, Store: store, NC: nc, JS: js, AdminToken: tc.token, AdminSessionTTL: tc.ttl, Secret: testSecret})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), long[:20]) {
				t.Fatalf("the error quotes a token: %v", err)
			}
		})
	}
}

// TestAdminActorIsTheSignedInAdmin: with named admins, what a session or a
// bearer token does is written to the history as admin:<name> of that
// session or token, whatever name the request gives.
func TestAdminActorIsTheSignedInAdmin(t *testing.T) {
	h := newAdminHarness(t, api.Config{AdminToken: "alice=" + aliceToken + ",bob=" + bobToken})
	o := h.prepaid(t, 100, "v2")
	bob := h.browser(t)
	bob.signIn(bobToken)
	if a := bob.get("/admin/"); !strings.Contains(a.body, `id="admin">bob<`) {
		t.Fatal("the page does not say who is signed in")
	}
	a := bob.post("/admin/orders/"+string(o.ID)+"/replay", url.Values{"reason": {"from the page"}, "who": {"alice"}, "csrf": {bob.csrf(o.ID)}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("replay: %d", a.status)
	}
	s, out := h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/replay", "application/json",
		[]byte(`{"who":"bob","reason":"from the API"}`), "Authorization", "Bearer "+aliceToken)
	if s != http.StatusOK {
		t.Fatalf("replay through the API: %d %s", s, out)
	}
	want := map[string]string{"from the page": "admin:bob", "from the API": "admin:alice"}
	for _, e := range h.history(t, o.ID) {
		for reason, actor := range want {
			if strings.Contains(e.Reason, reason) {
				if e.Actor != actor {
					t.Errorf("%s: actor %q, want %q", reason, e.Actor, actor)
				}
				delete(want, reason)
			}
		}
	}
	if len(want) != 0 {
		t.Fatalf("not in the history: %v", want)
	}
}

// TestAdminResolvesAnAlert: an alert flag goes only by a person's word, and
// the admin API is one way to give it: the flag to clear and why are
// required, the history records who.
func TestAdminResolvesAnAlert(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	o := h.prepaid(t, 100, "v2")
	ctx := context.Background()
	if res, err := h.eng.Apply(ctx, engine.Command{ID: "flag:alert", Verb: engine.VerbFlag, OrderID: o.ID, Actor: "test",
		Flag: &engine.FlagInfo{Reason: engine.FlagAmountMismatch}}); err != nil || !res.Applied {
		t.Fatalf("flag: %+v %v", res, err)
	}
	resolve := func(body string) (int, []byte) {
		return h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/resolve", "application/json", []byte(body),
			"Authorization", "Bearer "+adminToken)
	}
	if s, out := resolve(`{"reason":"checked the bill"}`); s != http.StatusUnprocessableEntity {
		t.Fatalf("resolve without a flag: %d %s, want 422", s, out)
	}
	if s, out := resolve(`{"flag":"` + engine.FlagAmountMismatch + `"}`); s != http.StatusBadRequest {
		t.Fatalf("resolve without a reason: %d %s, want 400", s, out)
	}
	if got := h.state(t, o.ID); !got.Flags.Has(engine.FlagAmountMismatch) {
		t.Fatalf("refused resolves cleared the alert: %v", got.Flags)
	}
	if s, out := resolve(`{"flag":"` + engine.FlagAmountMismatch + `","reason":"checked the bill"}`); s != http.StatusOK {
		t.Fatalf("resolve: %d %s", s, out)
	}
	if got := h.state(t, o.ID); got.Flags.Has(engine.FlagAmountMismatch) {
		t.Fatalf("the alert is still there: %v", got.Flags)
	}
	hist := h.history(t, o.ID)
	last := hist[len(hist)-1]
	if last.Actor != "admin:admin" || !strings.Contains(last.Reason, "checked the bill") {
		t.Fatalf("the history's last entry: %+v, want the admin and why", last)
	}
}
