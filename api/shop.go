package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// CreateOrderRequest is the body of POST /v1/orders. Amounts are integer fen.
type CreateOrderRequest struct {
	AmountFen        int64  `json:"amount_fen"`
	Description      string `json:"description"`
	OutTradeNo       string `json:"out_trade_no,omitempty"`
	OpenID           string `json:"openid,omitempty"`
	OAuthCode        string `json:"oauth_code,omitempty"`
	LoginCode        string `json:"login_code,omitempty"`
	PayAPI           string `json:"pay_api"`
	Client           string `json:"client,omitempty"`
	ClientIP         string `json:"client_ip,omitempty"`
	ExpiresInSeconds int64  `json:"expires_in_seconds,omitempty"`
}

// maxAmountFen is 10 million CNY: more is surely a unit error (yuan for fen).
const maxAmountFen = 1_000_000_000

// validOutTradeNo: 6–32 of digits, letters and _-|* (WeChat Pay's rule for out_trade_no).
func validOutTradeNo(s string) bool {
	if len(s) < 6 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("_-|*", c)) {
			return false
		}
	}
	return true
}

// decodeBody decodes a JSON body strictly: unknown fields and trailing data
// are refused, and the size is bounded by the middleware.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type must be application/json, not %q", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body larger than %d bytes", tooBig.Limit)
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// Validate reports the first problem of a create request.
func (q *CreateOrderRequest) Validate() error {
	n := 0
	for _, v := range []string{q.OpenID, q.OAuthCode, q.LoginCode} {
		if v != "" {
			n++
		}
	}
	switch {
	case q.AmountFen <= 0:
		return errors.New("amount_fen must be a positive integer (fen)")
	case q.AmountFen > maxAmountFen:
		return fmt.Errorf("amount_fen %d is above %d", q.AmountFen, maxAmountFen)
	case strings.TrimSpace(q.Description) == "" || len(q.Description) > 127:
		return errors.New("description must be 1-127 bytes")
	case q.OutTradeNo != "" && !validOutTradeNo(q.OutTradeNo):
		return errors.New("out_trade_no must be 6-32 of [0-9A-Za-z_-|*]")
	case n != 1:
		return errors.New("exactly one of openid, oauth_code and login_code is required")
	case q.PayAPI != string(engine.PayV2) && q.PayAPI != string(engine.PayV3):
		return errors.New(`pay_api must be "v2" or "v3"`)
	case q.Client != "" && q.Client != string(engine.ClientJSAPI) && q.Client != string(engine.ClientMiniProgram):
		return errors.New(`client must be "jsapi" or "miniprogram"`)
	case q.LoginCode != "" && q.Client == string(engine.ClientJSAPI):
		return errors.New("a login_code comes from a mini-program: client must be miniprogram")
	case q.ExpiresInSeconds < 0 || q.ExpiresInSeconds > 7*24*3600:
		return errors.New("expires_in_seconds must be between 0 and 604800")
	}
	return nil
}

// hashOf fingerprints a value: a reused idempotency key with other content is a conflict.
func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	var q CreateOrderRequest
	if err := decodeBody(r, &q); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if err := q.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", err.Error())
		return
	}
	raw, _ := json.Marshal(q)
	reqHash := hashOf(string(raw))
	id := engine.OrderID(engine.NewID("o"))
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > 200 {
			writeError(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key longer than 200 bytes")
			return
		}
		id = engine.OrderID("o_" + hashOf(s.cfg.Merchant.Name, key)[:26])
	}
	outTradeNo := q.OutTradeNo
	if outTradeNo == "" {
		outTradeNo = "wxf" + strings.TrimPrefix(string(id), "o_") // ≤ 32, unique with the order
		if len(outTradeNo) > 32 {
			outTradeNo = outTradeNo[:32]
		}
	}
	client := engine.Client(q.Client)
	if client == "" {
		client = engine.ClientJSAPI
		if q.LoginCode != "" {
			client = engine.ClientMiniProgram
		}
	}
	var expires time.Time
	if q.ExpiresInSeconds > 0 {
		expires = s.cfg.Now().Add(time.Duration(q.ExpiresInSeconds) * time.Second).UTC()
	}
	cmd := engine.Command{ID: engine.CreateCommandID(id, reqHash), Verb: engine.VerbCreate, OrderID: id, Actor: "shop",
		Create: &engine.CreateOrder{Merchant: s.cfg.Merchant.Name, OutTradeNo: outTradeNo, Description: q.Description,
			AmountFen: q.AmountFen, PayAPI: engine.PayAPI(q.PayAPI), Client: client, OpenID: q.OpenID,
			OAuthCode: q.OAuthCode, LoginCode: q.LoginCode, ClientIP: q.ClientIP, ExpiresAt: expires, RequestHash: reqHash}}
	s.answer(w, r, cmd, http.StatusCreated)
}

// answer sends a command and turns the engine's result into the HTTP answer.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, cmd engine.Command, okStatus int) {
	res, err := s.send(r.Context(), cmd, true)
	switch {
	case errors.Is(err, errNoReply):
		w.Header().Set("Location", "/v1/orders/"+string(cmd.OrderID))
		writeJSON(w, http.StatusAccepted, map[string]any{"order": map[string]any{"id": cmd.OrderID}, "pending": true})
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	switch {
	case res.Applied:
		writeJSON(w, okStatus, map[string]any{"order": res.Order})
	case res.Code == engine.CodeExists || res.Code == engine.CodeDuplicateCommand && res.Order.ID != "":
		writeJSON(w, http.StatusOK, map[string]any{"order": res.Order})
	default:
		writeError(w, statusOf(res.Code), string(res.Code), res.Reason)
	}
}

// OrderView is the answer of GET /v1/orders/{id}.
type OrderView struct {
	Order   engine.Order          `json:"order"`
	History []engine.HistoryEntry `json:"history"`
	Refunds []engine.Refund       `json:"refunds"`
}

func (s *Server) loadOrder(w http.ResponseWriter, r *http.Request) (engine.Order, bool) {
	id := engine.OrderID(r.PathValue("id"))
	if !engine.ValidOrderID(id) {
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed order id")
		return engine.Order{}, false
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such order")
		return o, false
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return o, false
	}
	return o, true
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	v := OrderView{Order: o}
	var err error
	if v.History, err = s.cfg.Store.History(r.Context(), o.ID); err == nil {
		v.Refunds, err = s.cfg.Store.Refunds(r.Context(), o.ID)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) payParams(w http.ResponseWriter, r *http.Request) {
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	if o.State != engine.Signed || len(o.PayParams) == 0 {
		writeError(w, http.StatusConflict, "not_signed", fmt.Sprintf("the order is %s: pay parameters exist only while it is signed", o.State))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(o.PayParams)
}

// RefundRequest is the body of POST /v1/orders/{id}/refunds.
type RefundRequest struct {
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason,omitempty"`
	OutRefundNo string `json:"out_refund_no,omitempty"`
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	var q RefundRequest
	if err := decodeBody(r, &q); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if q.AmountFen <= 0 || q.AmountFen > maxAmountFen {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", "amount_fen must be a positive integer (fen)")
		return
	}
	no := q.OutRefundNo
	switch {
	case no != "" && !validOutTradeNo(no):
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", "out_refund_no must be 6-32 of [0-9A-Za-z_-|*]")
		return
	case no == "" && r.Header.Get("Idempotency-Key") != "":
		no = "wxr" + hashOf(string(o.ID), r.Header.Get("Idempotency-Key"))[:29]
	case no == "":
		no = "wxr" + strings.TrimPrefix(engine.NewID("r"), "r_")
	}
	// The amount is part of the command id: the same out_refund_no asked again
	// with another amount is not a repeat but a conflict, which only the
	// engine, past the stream's de-duplication, can tell.
	cmd := engine.Command{ID: engine.RefundCommandID(o.ID, no, q.AmountFen), Verb: engine.VerbRefund, OrderID: o.ID, Actor: "shop",
		Reason: q.Reason, Refund: &engine.RefundAsk{OutRefundNo: no, AmountFen: q.AmountFen, Reason: q.Reason}}
	s.answer(w, r, cmd, http.StatusAccepted)
}

func (s *Server) closeOrder(w http.ResponseWriter, r *http.Request) {
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	cmd := engine.Command{ID: engine.ShopCloseCommandID(o.ID), Verb: engine.VerbClose, OrderID: o.ID, Actor: "shop",
		Reason: "closed by the shop", Close: &engine.CloseAsk{}}
	s.answer(w, r, cmd, http.StatusAccepted)
}

func (s *Server) jssdkConfig(w http.ResponseWriter, r *http.Request) {
	page, err := url.Parse(r.URL.Query().Get("url"))
	if err != nil || !page.IsAbs() || page.Scheme != "http" && page.Scheme != "https" {
		writeError(w, http.StatusBadRequest, "invalid_request", "url must be the page's absolute http(s) URL")
		return
	}
	if s.cfg.Tickets == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no jsapi_ticket source configured")
		return
	}
	ticket, err := s.cfg.Tickets.JSAPITicket(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "jsapi_ticket: "+err.Error())
		return
	}
	page.Fragment, page.RawFragment = "", ""
	writeJSON(w, http.StatusOK, mp.JSConfig(s.cfg.Merchant.AppID, ticket, page.String(), s.cfg.Now(), v3.NonceStr()[:16]))
}

func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		writeError(w, http.StatusBadRequest, "invalid_request", "redirect_uri must be an absolute URL")
		return
	}
	scope := q.Get("scope")
	if scope == "" {
		scope = mp.ScopeBase
	}
	if scope != mp.ScopeBase && scope != mp.ScopeUserInfo {
		writeError(w, http.StatusBadRequest, "invalid_request", "scope must be snsapi_base or snsapi_userinfo")
		return
	}
	http.Redirect(w, r, mp.AuthorizeURL(s.cfg.OAuthBaseURL, s.cfg.Merchant.AppID, redirect.String(), scope, q.Get("state")), http.StatusFound)
}
