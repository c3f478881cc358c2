package demoshop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// The shop's own JSON API for its page: what a shop backend does between
// its front end and wxflow. Each answer is JSON; each error is
// {"error": reason, "code": code}.

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error: {"code", "error"}, the error a reason for people.
func writeError(w http.ResponseWriter, status int, code, reason string) {
	writeJSON(w, status, map[string]string{"code": code, "error": reason})
}

// apiFailed answers the page when a call to wxflow failed: wxflow's 4xx
// passes on with its code and reason, anything else is a 502.
func (s *Shop) apiFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
		writeError(w, ae.Status, ae.Code, what+": "+ae.Reason)
		return
	}
	s.log.Warn(what, "err", err, "path", r.URL.Path)
	writeError(w, http.StatusBadGateway, "wxflow_unavailable", what+": "+err.Error())
}

// mine checks that the browser made the order of the path; a 404 otherwise.
func (s *Shop) mine(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !s.owners.owns(id, buyerOf(r)) {
		writeError(w, http.StatusNotFound, "not_found", "this browser made no such order")
		return "", false
	}
	return id, true
}

// jssdkConfig signs wx.config for one of the shop's own pages: the page
// sends its location.href without the #fragment. The shop signs only its
// pages (its origin, under /demo/); wxflow further checks the host is one of
// the deployment's app domains.
func (s *Shop) jssdkConfig(w http.ResponseWriter, r *http.Request) {
	page := r.URL.Query().Get("url")
	u, err := url.Parse(page)
	if err != nil || len(page) > 2048 || u.Scheme+"://"+u.Host != selfOrigin(r) || !strings.HasPrefix(u.Path, "/demo/") || u.User != nil {
		writeError(w, http.StatusUnprocessableEntity, "not_our_page", "url must be a page of this shop: "+selfOrigin(r)+"/demo/…")
		return
	}
	var cfg struct {
		AppID     string `json:"appId"`
		Timestamp int64  `json:"timestamp"`
		NonceStr  string `json:"nonceStr"`
		Signature string `json:"signature"`
	}
	if _, _, err := s.api.call(r.Context(), http.MethodGet, "/v1/jssdk/config?"+url.Values{"url": {page}}.Encode(), nil, &cfg); err != nil {
		s.apiFailed(w, r, "signing wx.config", err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

// orderStatus is what the page polls: the order as wxflow has it, and
// whether the shop counts it paid. Paid means wxflow applied WeChat's
// verified notification (or its own order query) for the whole amount:
// never the JS-SDK's callback.
func (s *Shop) orderStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := s.mine(w, r)
	if !ok {
		return
	}
	v, err := s.api.getOrder(r.Context(), id)
	if err != nil {
		s.apiFailed(w, r, "reading the order", err)
		return
	}
	o := v.Order
	type refund struct {
		OutRefundNo string `json:"out_refund_no"`
		AmountFen   int64  `json:"amount_fen"`
		Status      string `json:"status"`
	}
	type paidBy struct {
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
		At     string `json:"at"`
	}
	out := struct {
		order
		Paid    bool     `json:"paid"`
		PaidBy  *paidBy  `json:"paid_by"`
		Refunds []refund `json:"refunds"`
	}{order: o, Refunds: []refund{}}
	switch o.State {
	case "notified", "refunding", "refunded":
		out.Paid = o.PaidFen == o.AmountFen
	}
	for _, e := range v.History {
		if e.Applied && e.Type == "notified" {
			out.PaidBy = &paidBy{Actor: e.Actor, Reason: e.Reason, At: e.At}
		}
	}
	for _, rf := range v.Refunds {
		out.Refunds = append(out.Refunds, refund{OutRefundNo: rf.OutRefundNo, AmountFen: rf.AmountFen, Status: rf.status()})
	}
	writeJSON(w, http.StatusOK, out)
}

// payParams passes on the order's signed pay parameters, while it is signed
// (409 not_signed otherwise: the page waits).
func (s *Shop) payParams(w http.ResponseWriter, r *http.Request) {
	id, ok := s.mine(w, r)
	if !ok {
		return
	}
	var p map[string]map[string]string
	if _, _, err := s.api.call(r.Context(), http.MethodGet, "/v1/orders/"+url.PathEscape(id)+"/pay-params", nil, &p); err != nil {
		s.apiFailed(w, r, "pay parameters", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]map[string]string{"choose_wx_pay": p["choose_wx_pay"], "request_payment": p["request_payment"]})
}

// refund refunds what remains of a paid order. While a refund is on its way
// (a second click), that refund is the answer. The out_refund_no is the
// order's and the number of its refunds, so two clicks at once ask for the
// same refund (idempotent at wxflow), not for two.
func (s *Shop) refund(w http.ResponseWriter, r *http.Request) {
	id, ok := s.mine(w, r)
	if !ok {
		return
	}
	v, err := s.api.getOrder(r.Context(), id)
	if err != nil {
		s.apiFailed(w, r, "reading the order", err)
		return
	}
	left := v.Order.PaidFen - v.Order.RefundedFen
	if left <= 0 {
		writeError(w, http.StatusConflict, "nothing_to_refund", "nothing of this order is left to refund")
		return
	}
	for _, rf := range v.Refunds {
		if st := rf.status(); st != "succeeded" && st != "failed" {
			// One is on its way (a second click): it is the answer.
			writeJSON(w, http.StatusOK, map[string]any{"out_refund_no": rf.OutRefundNo, "amount_fen": rf.AmountFen, "answer": "already asked, " + st})
			return
		}
	}
	no := fmt.Sprintf("dr%s-%d", strings.TrimPrefix(id, "o_"), len(v.Refunds)+1)
	if len(no) > 32 {
		no = no[len(no)-32:]
	}
	body := map[string]any{"amount_fen": left, "reason": "refunded from the demo shop", "out_refund_no": no}
	var a refundAnswer
	status, _, err := s.api.call(r.Context(), http.MethodPost, "/v1/orders/"+url.PathEscape(id)+"/refunds", body, &a)
	if err != nil {
		s.apiFailed(w, r, "refund", err)
		return
	}
	answer := a.Status // the queued refund's status
	if answer == "" && a.Order != nil {
		answer = "order " + a.Order.State
	}
	writeJSON(w, http.StatusOK, map[string]any{"out_refund_no": no, "amount_fen": left, "http_status": status, "answer": answer})
}

// miniProgramOrder creates a mini-program order from a wx.login code: body
// {"item", "api", "login_code"}.
func (s *Shop) miniProgramOrder(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Item      string `json:"item"`
		API       string `json:"api"`
		LoginCode string `json:"login_code"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "malformed_request", "body must be {\"item\", \"api\", \"login_code\"}")
		return
	}
	it, api, ok := choice(url.Values{"item": {in.Item}, "api": {in.API}})
	if !ok || in.LoginCode == "" || len(in.LoginCode) > 128 {
		writeError(w, http.StatusUnprocessableEntity, "invalid_fields", "an item of the shop, api v2 or v3 and a login_code are required")
		return
	}
	id, err := s.api.createOrder(r.Context(), createRequest{AmountFen: it.Fen, Description: it.Name, PayAPI: api,
		LoginCode: in.LoginCode, Client: "miniprogram", ClientIP: clientIP(r)}, "demoshop-login-"+in.LoginCode)
	if err != nil {
		s.apiFailed(w, r, "creating the order", err)
		return
	}
	if !s.owners.add(id, buyer(w, r)) {
		writeError(w, http.StatusForbidden, "not_yours", "this order was made in another browser")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}
