package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// CreateOrderRequest is the body of POST /v1/orders. Amounts are integer fen.
// Keys are matched exactly and each may appear once (see input.go).
type CreateOrderRequest struct {
	// Merchant names the merchant the order is for; empty: the
	// deployment's first merchant if the shop acts for it, else the shop's
	// only merchant.
	Merchant string `json:"merchant,omitempty"`
	// AppID names the app the payer pays in; empty: the merchant's app of
	// the payer's kind (a mini-program for login_code and the miniprogram
	// client, else an Official Account).
	AppID            string `json:"appid,omitempty"`
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

// Limits of the shop API's fields, in bytes: WeChat's where it has one
// (a description of 127 bytes, a refund reason of 80), generous elsewhere.
const (
	maxAmountFen      = 1_000_000_000 // 10 million CNY: more is surely a unit error (yuan for fen)
	maxDescription    = 127
	maxRefundReason   = 80
	maxPayerToken     = 128 // openid, oauth_code, login_code
	maxIdempotencyKey = 200
	maxExpiresIn      = 7 * 24 * 3600
)

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
// are refused, and the size is bounded by the middleware. Its errors name no
// Go type. (The admin API's; the shop API reads bodies with readObject.)
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type must be application/json, not %q", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("body larger than %d bytes", tooBig.Limit)
		case errors.As(err, &typeErr):
			return fmt.Errorf("invalid JSON: %s has the wrong type", typeErr.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("invalid JSON: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// readCreateOrder reads the create request's fields from its object.
func readCreateOrder(o *object) CreateOrderRequest {
	var q CreateOrderRequest
	o.str("merchant", &q.Merchant)
	o.str("appid", &q.AppID)
	o.integer("amount_fen", &q.AmountFen)
	o.str("description", &q.Description)
	o.str("out_trade_no", &q.OutTradeNo)
	o.str("openid", &q.OpenID)
	o.str("oauth_code", &q.OAuthCode)
	o.str("login_code", &q.LoginCode)
	o.str("pay_api", &q.PayAPI)
	o.str("client", &q.Client)
	o.str("client_ip", &q.ClientIP)
	o.integer("expires_in_seconds", &q.ExpiresInSeconds)
	o.finish()
	return q
}

// Validate reports every problem of a create request at once ([Problems]),
// or nil.
func (q *CreateOrderRequest) Validate() error {
	var ps Problems
	switch {
	case q.AmountFen <= 0:
		ps.add("amount_fen", ProblemOutOfRange, "must be a positive integer (fen)")
	case q.AmountFen > maxAmountFen:
		ps.add("amount_fen", ProblemOutOfRange, fmt.Sprintf("must be at most %d fen", maxAmountFen))
	}
	if strings.TrimSpace(q.Description) == "" {
		ps.add("description", ProblemRequired, "is required")
	} else {
		ps.checkText("description", q.Description, maxDescription)
	}
	if q.Merchant != "" && !engine.ValidShopName(q.Merchant) {
		ps.add("merchant", ProblemInvalidFormat, "must be 1-32 of [a-z0-9_-]")
	}
	if q.AppID != "" {
		ps.checkToken("appid", q.AppID, 32)
	}
	if q.OutTradeNo != "" && !validOutTradeNo(q.OutTradeNo) {
		ps.add("out_trade_no", ProblemInvalidFormat, "must be 6-32 of [0-9A-Za-z_-|*]")
	}
	payers := 0
	for _, f := range []struct{ name, v string }{{"openid", q.OpenID}, {"oauth_code", q.OAuthCode}, {"login_code", q.LoginCode}} {
		if f.v != "" {
			payers++
			ps.checkToken(f.name, f.v, maxPayerToken)
		}
	}
	switch {
	case payers == 0:
		ps.add("openid", ProblemRequired, "one of openid, oauth_code and login_code is required")
	case payers > 1:
		ps.add("openid", ProblemConflict, "give only one of openid, oauth_code and login_code")
	}
	if q.PayAPI != string(engine.PayV2) && q.PayAPI != string(engine.PayV3) {
		ps.add("pay_api", ProblemInvalidValue, `must be "v2" or "v3"`)
	}
	switch {
	case q.Client != "" && q.Client != string(engine.ClientJSAPI) && q.Client != string(engine.ClientMiniProgram):
		ps.add("client", ProblemInvalidValue, `must be "jsapi" or "miniprogram"`)
	case q.LoginCode != "" && q.Client == string(engine.ClientJSAPI):
		ps.add("client", ProblemConflict, "a login_code comes from a mini-program: client must be miniprogram")
	}
	if q.ClientIP != "" {
		if _, err := netip.ParseAddr(q.ClientIP); err != nil || len(q.ClientIP) > 45 {
			ps.add("client_ip", ProblemInvalidFormat, "must be an IPv4 or IPv6 address")
		}
	}
	if q.ExpiresInSeconds < 0 || q.ExpiresInSeconds > maxExpiresIn {
		ps.add("expires_in_seconds", ProblemOutOfRange, fmt.Sprintf("must be between 0 and %d", maxExpiresIn))
	}
	return ps.err()
}

// keyed is an HMAC-SHA256 under the server secret of a purpose and its
// parts, hex: ids derived from what a shop sends cannot be predicted by
// anyone without the secret, and one shop's Idempotency-Key never meets
// another's.
func (s *Server) keyed(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
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

// idempotencyKey reads the Idempotency-Key header, adding a problem when it
// is malformed; "" when absent.
func idempotencyKey(r *http.Request, ps *Problems) string {
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		ps.checkToken("Idempotency-Key", key, maxIdempotencyKey)
	}
	return key
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, err := readObject(r, false)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	q := readCreateOrder(o)
	ps := o.ps
	if err := q.Validate(); err != nil {
		ps.merge(err.(Problems))
	}
	key := idempotencyKey(r, &ps)
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	m := s.merchantFor(w, shop, q.Merchant)
	if m == nil {
		return
	}
	merchant := m.Name
	client := engine.Client(q.Client)
	if client == "" {
		client = engine.ClientJSAPI
		if q.LoginCode != "" {
			client = engine.ClientMiniProgram
		}
	}
	appid := appFor(m, q.AppID, client, q.OAuthCode, q.LoginCode, &ps)
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	raw, _ := json.Marshal(q)
	reqHash := hashOf(string(raw))
	id := engine.OrderID(engine.NewID("o"))
	if key != "" {
		id = engine.OrderID("o_" + s.keyed("wxflow order id", shop.Name, key)[:26])
	}
	outTradeNo := q.OutTradeNo
	if outTradeNo == "" {
		outTradeNo = "wxf" + strings.TrimPrefix(string(id), "o_") // ≤ 32, unique with the order
		if len(outTradeNo) > 32 {
			outTradeNo = outTradeNo[:32]
		}
	}
	var expires time.Time
	if q.ExpiresInSeconds > 0 {
		expires = s.cfg.Now().Add(time.Duration(q.ExpiresInSeconds) * time.Second).UTC()
	}
	cmd := engine.Command{ID: engine.CreateCommandID(id, reqHash), Verb: engine.VerbCreate, OrderID: id, Actor: "shop:" + shop.Name,
		Create: &engine.CreateOrder{Merchant: merchant, Shop: shop.Name, OutTradeNo: outTradeNo, Description: q.Description,
			AmountFen: q.AmountFen, PayAPI: engine.PayAPI(q.PayAPI), Client: client, AppID: appid, OpenID: q.OpenID,
			OAuthCode: q.OAuthCode, LoginCode: q.LoginCode, ClientIP: q.ClientIP, ExpiresAt: expires, RequestHash: reqHash}}
	s.answer(w, r, cmd, http.StatusCreated)
}

// answer sends a command and turns the engine's result into the HTTP answer.
// A command the engine had seen (the same Idempotency-Key, or close again) is
// answered as the first time, with the first status and the order as it is
// now, and the header Idempotent-Replayed: true. (A refund is answered with
// the refund: see refund.)
func (s *Server) answer(w http.ResponseWriter, r *http.Request, cmd engine.Command, okStatus int) {
	res, seen, err := s.sendSeen(r.Context(), cmd, true)
	switch {
	case errors.Is(err, errNoReply):
		w.Header().Set("Location", "/v1/orders/"+string(cmd.OrderID))
		writeJSON(w, http.StatusAccepted, map[string]any{"order": map[string]any{"id": cmd.OrderID}, "pending": true})
		return
	case err != nil:
		s.log.Warn("command not sent", "command", cmd.ID, "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	switch {
	case res.Applied:
		if seen {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		writeJSON(w, okStatus, map[string]any{"order": res.Order})
	case res.Code == engine.CodeExists || res.Code == engine.CodeDuplicateCommand && res.Order.ID != "":
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, okStatus, map[string]any{"order": res.Order})
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

// loadOrder reads the path's order if it is the shop's own. Ownership is by
// the order's shop, not by its merchant: two shops acting for one merchant
// still see only their own orders. Another shop's order, an unknown one and
// a malformed id are the same 404, so a shop learns nothing of others'.
func (s *Server) loadOrder(w http.ResponseWriter, r *http.Request, shop engine.Shop) (engine.Order, bool) {
	id := engine.OrderID(r.PathValue("id"))
	if !engine.ValidOrderID(id) {
		writeError(w, http.StatusNotFound, codeNotFound, reasonNoSuchOrder)
		return engine.Order{}, false
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if errors.Is(err, engine.ErrNotFound) || err == nil && o.Shop != shop.Name {
		writeError(w, http.StatusNotFound, codeNotFound, reasonNoSuchOrder)
		return engine.Order{}, false
	}
	if err != nil {
		s.log.Warn("read order", "order_id", id, "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return o, false
	}
	return o, true
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	v := OrderView{Order: o}
	var err error
	if v.History, err = s.cfg.Store.History(r.Context(), o.ID); err == nil {
		v.Refunds, err = s.cfg.Store.Refunds(r.Context(), o.ID)
	}
	if err != nil {
		s.log.Warn("read order", "order_id", o.ID, "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) payParams(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	if o.State != engine.Signed || len(o.PayParams) == 0 {
		writeError(w, http.StatusConflict, codeNotSigned, fmt.Sprintf("the order is %s: pay parameters exist only while it is signed", o.State))
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

// Validate reports every problem of a refund request at once ([Problems]),
// or nil.
func (q *RefundRequest) Validate() error {
	var ps Problems
	if q.AmountFen <= 0 || q.AmountFen > maxAmountFen {
		ps.add("amount_fen", ProblemOutOfRange, fmt.Sprintf("must be a positive integer (fen) up to %d", maxAmountFen))
	}
	ps.checkText("reason", q.Reason, maxRefundReason)
	if q.OutRefundNo != "" && !validOutTradeNo(q.OutRefundNo) {
		ps.add("out_refund_no", ProblemInvalidFormat, "must be 6-32 of [0-9A-Za-z_-|*]")
	}
	return ps.err()
}

// RefundView is one refund as the shop API answers it: the answer of POST
// /v1/orders/{id}/refunds and GET /v1/orders/{id}/refunds/{out_refund_no},
// and each item of GET /v1/orders/{id}/refunds. Status is queued (accepted,
// not sent to WeChat yet), pending (sent to WeChat, its result awaited),
// succeeded, or failed (WeChat refused or closed it: ErrorCode and
// ErrorMessage are WeChat's).
type RefundView struct {
	OrderID      engine.OrderID `json:"order_id"`
	OutRefundNo  string         `json:"out_refund_no"`
	AmountFen    int64          `json:"amount_fen"`
	Reason       string         `json:"reason"`
	Status       string         `json:"status"`
	RefundID     string         `json:"refund_id,omitempty"`
	ErrorCode    string         `json:"error_code,omitempty"`
	ErrorMessage string         `json:"error_message,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// refundView is the shop's view of a refund.
func refundView(r engine.Refund) RefundView {
	return RefundView{OrderID: r.OrderID, OutRefundNo: r.OutRefundNo, AmountFen: r.AmountFen, Reason: r.Reason, Status: string(r.State),
		RefundID: r.RefundID, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// RefundList is the answer of GET /v1/orders/{id}/refunds: the order's
// refunds in the order they were asked, which is the order the engine sends
// them to WeChat in.
type RefundList struct {
	Refunds []RefundView `json:"refunds"`
}

// refundPath is where a refund is read.
func refundPath(id engine.OrderID, outRefundNo string) string {
	return "/v1/orders/" + string(id) + "/refunds/" + outRefundNo
}

// refund queues a refund of the shop's paid order. The engine decides
// (over_refund, too_many_refunds, conflict …); an accepted refund is
// answered 202 with the refund, queued or already sent to WeChat. The same
// request again (the same out_refund_no, or Idempotency-Key, and amount) is
// the same refund, answered 202 with it as it is now and
// Idempotent-Replayed: true.
func (s *Server) refund(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	obj, err := readObject(r, false)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	var q RefundRequest
	obj.integer("amount_fen", &q.AmountFen)
	obj.str("reason", &q.Reason)
	obj.str("out_refund_no", &q.OutRefundNo)
	obj.finish()
	ps := obj.ps
	if err := q.Validate(); err != nil {
		ps.merge(err.(Problems))
	}
	key := idempotencyKey(r, &ps)
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	no := q.OutRefundNo
	switch {
	case no == "" && key != "":
		no = "wxr" + s.keyed("wxflow out_refund_no", string(o.ID), key)[:29]
	case no == "":
		no = "wxr" + strings.TrimPrefix(engine.NewID("r"), "r_")
	}
	// The amount is part of the command id: the same out_refund_no asked again
	// with another amount is not a repeat but a conflict, which only the
	// engine, past the stream's de-duplication, can tell.
	cmd := engine.Command{ID: engine.RefundCommandID(o.ID, no, q.AmountFen), Verb: engine.VerbRefund, OrderID: o.ID, Actor: "shop:" + shop.Name,
		Reason: q.Reason, Refund: &engine.RefundAsk{OutRefundNo: no, AmountFen: q.AmountFen, Reason: q.Reason}}
	ctx := r.Context()
	res, seen, err := s.sendSeen(ctx, cmd, true)
	switch {
	case errors.Is(err, errNoReply):
		// Durable, not decided yet: the same request again gets the verdict.
		w.Header().Set("Location", refundPath(o.ID, no))
		writeJSON(w, http.StatusAccepted, map[string]any{"pending": true, "order_id": o.ID, "out_refund_no": no, "amount_fen": q.AmountFen, "reason": q.Reason})
		return
	case err != nil:
		s.log.Warn("command not sent", "command", cmd.ID, "err", err, "trace_id", traceID(ctx))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	if res.Code == engine.CodeDuplicateCommand {
		// The same request, past the stream's de-duplication window: the
		// engine answered it before; that answer stands.
		first, found, err := s.cfg.Store.Outcome(ctx, cmd.ID)
		if err != nil {
			s.log.Warn("read outcome", "command", cmd.ID, "err", err, "trace_id", traceID(ctx))
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
			return
		}
		if found {
			res, seen = first, true
		}
	}
	if !res.Applied && res.Code != engine.CodeDuplicate {
		writeError(w, statusOf(res.Code), string(res.Code), res.Reason)
		return
	}
	// The refund as this request left it (queued, or sent at once), from the
	// engine's answer; a repeat's, or an answer read back from the store,
	// carries no events: the refund as it is now.
	var ref engine.Refund
	if n := len(res.Events); n > 0 && res.Events[n-1].Refund != nil {
		ref = *res.Events[n-1].Refund
	} else {
		ref, err = s.cfg.Store.RefundByOutRefundNo(ctx, no)
	}
	if err != nil || ref.OrderID != o.ID || ref.OutRefundNo != no || ref.AmountFen != q.AmountFen {
		s.log.Warn("read refund", "order_id", o.ID, "out_refund_no", no, "err", err, "trace_id", traceID(ctx))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	if seen || res.Code == engine.CodeDuplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", refundPath(o.ID, no))
	writeJSON(w, http.StatusAccepted, refundView(ref))
}

// listRefunds answers the shop's order's refunds, in the order asked.
func (s *Server) listRefunds(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	refunds, err := s.cfg.Store.Refunds(r.Context(), o.ID)
	if err != nil {
		s.log.Warn("read refunds", "order_id", o.ID, "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	out := RefundList{Refunds: make([]RefundView, len(refunds))}
	for i, ref := range refunds {
		out.Refunds[i] = refundView(ref)
	}
	writeJSON(w, http.StatusOK, out)
}

// getRefund answers one refund of the shop's order. A refund of another
// order (another shop's included) answers as one that does not exist.
func (s *Server) getRefund(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	no := r.PathValue("out_refund_no")
	if !validRefundNo(no) {
		writeError(w, http.StatusNotFound, codeNotFound, reasonNoSuchRefund)
		return
	}
	ref, err := s.cfg.Store.RefundByOutRefundNo(r.Context(), no)
	if errors.Is(err, engine.ErrNotFound) || err == nil && ref.OrderID != o.ID {
		writeError(w, http.StatusNotFound, codeNotFound, reasonNoSuchRefund)
		return
	}
	if err != nil {
		s.log.Warn("read refund", "order_id", o.ID, "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, refundView(ref))
}

// validRefundNo: 1-64 of [0-9A-Za-z_-|*@], WeChat's characters of an
// out_refund_no (the shop's are 6-32 of them; wxflow's own and an admin's
// fit too).
func validRefundNo(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("_-|*@", c)) {
			return false
		}
	}
	return true
}

func (s *Server) closeOrder(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	o, ok := s.loadOrder(w, r, shop)
	if !ok {
		return
	}
	obj, err := readObject(r, true)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if obj.finish(); len(obj.ps) > 0 {
		writeProblems(w, obj.ps)
		return
	}
	cmd := engine.Command{ID: engine.ShopCloseCommandID(o.ID), Verb: engine.VerbClose, OrderID: o.ID, Actor: "shop:" + shop.Name,
		Reason: "closed by the shop", Close: &engine.CloseAsk{}}
	s.answer(w, r, cmd, http.StatusAccepted)
}
