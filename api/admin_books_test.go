package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/engine"
)

// TestAdminBooks: the books' days and a day's discrepancies, on the page
// and in the API; a day is 2006-01-02 and nothing else; WeChat's numbers
// are shown escaped; asking for a run with no books worker says so.
func TestAdminBooks(t *testing.T) {
	h := newAdminHarness(t, api.Config{})
	ctx := context.Background()
	hostile := `<script>alert(1)</script>`
	if _, err := h.store.RunBooks(ctx, engine.BillCopy{Merchant: h.keys.Merchant.Name, Day: "2024-03-10", Kind: engine.BillTradeAll, API: "v3",
		Data: []byte("bill"), SHA1: "5ha1", Final: true, Trades: []engine.BillTrade{{At: time.Now(), OutTradeNo: hostile, TransactionID: "4200",
			AmountFen: 100, Status: "SUCCESS"}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	auth := []string{"Authorization", "Bearer " + adminToken}
	if s, _ := h.do(t, http.MethodGet, "/admin/api/books", "", nil); s != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", s)
	}
	s, out := h.do(t, http.MethodGet, "/admin/api/books", "", nil, auth...)
	var days struct{ Days []engine.BooksDay }
	if err := json.Unmarshal(out, &days); s != http.StatusOK || err != nil || len(days.Days) != 1 || days.Days[0].Discrepancies != 1 {
		t.Fatalf("days: %d %s", s, out)
	}
	s, out = h.do(t, http.MethodGet, "/admin/api/books/2024-03-10", "", nil, auth...)
	var r engine.BooksResult
	if err := json.Unmarshal(out, &r); s != http.StatusOK || err != nil || r.Counts[engine.BooksMissingInWxflow] != 1 {
		t.Fatalf("a day: %d %s", s, out)
	}
	for path, want := range map[string]int{
		"/admin/api/books/2024-03-11":          http.StatusNotFound,
		"/admin/api/books/2024-13-01":          http.StatusBadRequest,
		"/admin/api/books/..%2f..%2fetc":       http.StatusBadRequest,
		"/admin/api/books/2024-03-10%27%20OR1": http.StatusBadRequest,
	} {
		if s, out := h.do(t, http.MethodGet, path, "", nil, auth...); s != want {
			t.Errorf("%s: %d %s, want %d", path, s, out, want)
		}
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/books/2024-03-10/run", "application/json", nil, auth...); s != http.StatusServiceUnavailable ||
		!strings.Contains(string(out), "no books worker") {
		t.Fatalf("a run with no books worker: %d %s", s, out)
	}

	b := h.browser(t)
	b.signIn(adminToken)
	a := b.get("/admin/books")
	if a.status != http.StatusOK || !strings.Contains(a.body, `href="/admin/books/2024-03-10"`) || !strings.Contains(a.body, `id="nav-books"`) {
		t.Fatalf("books page: %d %.500s", a.status, a.body)
	}
	a = b.get("/admin/books/2024-03-10")
	if a.status != http.StatusOK || !strings.Contains(a.body, "missing_in_wxflow") || !strings.Contains(a.body, "5ha1") {
		t.Fatalf("day page: %d %.500s", a.status, a.body)
	}
	if strings.Contains(a.body, hostile) || !strings.Contains(a.body, "&lt;script&gt;") {
		t.Fatal("WeChat's out_trade_no is not escaped on the page")
	}
	if a := b.get("/admin/books/yesterday"); a.status != http.StatusNotFound {
		t.Fatalf("a day that is no day: %d", a.status)
	}
	if a := b.post("/admin/books/2024-03-10/run", url.Values{}); a.status != http.StatusForbidden {
		t.Fatalf("run without the CSRF token: %d", a.status)
	}
	token := csrfRE.FindStringSubmatch(b.get("/admin/books/2024-03-10").body)[1]
	a = b.post("/admin/books/2024-03-10/run", url.Values{"csrf": {token}})
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/admin/books/2024-03-10?m=") || !strings.Contains(a.location, "no+books+worker") {
		t.Fatalf("run from the page: %d %s", a.status, a.location)
	}
	if a := b.get("/admin/books/2024-03-12"); a.status != http.StatusOK || !strings.Contains(a.body, "No books of this day yet") {
		t.Fatalf("a day never run: %d", a.status)
	}
}
