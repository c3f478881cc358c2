package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/engine"
)

const adminToken = "test-admin-token"

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
	if last.Actor != "admin:alice" || !strings.Contains(last.Reason, "worker was down") || last.Type != string(engine.EventPrepaid) {
		t.Fatalf("history does not say who and why: %+v", last)
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/orders/"+string(o.ID)+"/refunds", "application/json", []byte(`{"amount_fen":1,"reason":"r"}`), auth...); s != http.StatusConflict {
		t.Fatalf("refund of an unpaid order: %d %s", s, out)
	}
	if s, out := h.do(t, http.MethodPost, "/admin/api/replay-stuck", "application/json", []byte(`{"reason":"r","dry_run":true}`), auth...); s != http.StatusOK {
		t.Fatalf("replay-stuck dry run: %d %s", s, out)
	}
	// The page asks for the token, and refuses a wrong one.
	if s, out := h.do(t, http.MethodGet, "/admin/login", "", nil); s != http.StatusOK || !strings.Contains(string(out), "Admin token") {
		t.Fatalf("login page: %d", s)
	}
}
