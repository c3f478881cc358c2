package api

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers"
)

//go:embed templates/*.html templates/admin.css
var templateFiles embed.FS

// adminRoutes mounts the admin page and API when an admin token is set.
// Every answer under /admin/ carries adminHeaders.
func (s *Server) adminRoutes(m *routeTable) error {
	handle := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, adminHeaders(h)) }
	auth, err := newAdminAuth(s.cfg)
	if err != nil {
		return err
	}
	if auth == nil {
		handle("/admin/", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "admin_disabled", "the admin API is off: set WXFLOW_ADMIN_TOKEN")
		})
		return nil
	}
	s.admin = auth
	tmpl, err := template.New("admin").Funcs(adminFuncs).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return fmt.Errorf("api: admin templates: %w", err)
	}
	s.tmpl = tmpl
	api, page := s.requireToken, s.requireSession
	handle("GET /admin/api/orders", api(s.adminAPIOrders))
	handle("GET /admin/api/stuck", api(s.adminAPIStuck))
	handle("GET /admin/api/orders/{id}", api(s.adminAPIOrder))
	handle("POST /admin/api/orders/{id}/replay", api(s.adminAct(engine.VerbReplay, false)))
	handle("POST /admin/api/orders/{id}/close", api(s.adminAct(engine.VerbClose, false)))
	handle("POST /admin/api/orders/{id}/refunds", api(s.adminAct(engine.VerbRefund, false)))
	handle("POST /admin/api/orders/{id}/resolve", api(s.adminAct(engine.VerbResolve, false)))
	handle("POST /admin/api/replay-stuck", api(s.adminReplayStuck(false)))

	handle("GET /admin/admin.css", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, templateFiles, "templates/admin.css")
	})
	handle("GET /admin/login", s.adminLoginPage)
	handle("POST /admin/login", s.adminLogin)
	handle("POST /admin/logout", page(s.adminLogout))
	handle("GET /admin/{$}", page(s.adminIndex))
	handle("GET /admin/search", page(s.adminSearch))
	handle("GET /admin/orders/{id}", page(s.adminOrderPage))
	handle("POST /admin/orders/{id}/replay", page(s.adminAct(engine.VerbReplay, true)))
	handle("POST /admin/orders/{id}/close", page(s.adminAct(engine.VerbClose, true)))
	handle("POST /admin/orders/{id}/refunds", page(s.adminRefundForm(s.adminAct(engine.VerbRefund, true))))
	handle("POST /admin/orders/{id}/resolve", page(s.adminAct(engine.VerbResolve, true)))
	handle("POST /admin/replay-stuck", page(s.adminReplayStuck(true)))
	s.adminBooksRoutes(handle)
	return nil
}

// render writes a page; every page learns who is signed in and the CSRF
// token its forms carry.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	who := signedInAs(r.Context())
	data["Admin"], data["CSRF"] = who.Name, who.CSRF
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Warn("admin page", "template", name, "err", err)
	}
}

type stateCount struct {
	State engine.State
	N     int
}

func (s *Server) adminIndex(w http.ResponseWriter, r *http.Request) {
	counts, err := s.cfg.Store.CountByState(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	var list []stateCount
	for _, st := range engine.AllStates {
		list = append(list, stateCount{st, counts[st]})
	}
	stuck, err := s.cfg.Store.Stuck(r.Context(), engine.StuckFilter{Merchant: r.URL.Query().Get("merchant"), Deadlines: s.cfg.Deadlines, Limit: 200})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	s.render(w, r, http.StatusOK, "index.html", map[string]any{"Counts": list, "Stuck": stuck, "Message": r.URL.Query().Get("m"),
		"Merchants": s.merchantNames(), "Merchant": r.URL.Query().Get("merchant")})
}

// findOrders finds orders by id, out_trade_no or openid, or lists a state.
func (s *Server) findOrders(r *http.Request) ([]engine.Order, string, error) {
	ctx, q, state := r.Context(), strings.TrimSpace(r.URL.Query().Get("q")), r.URL.Query().Get("state")
	merchant, of := r.URL.Query().Get("merchant"), ""
	if merchant != "" {
		of = " of " + merchant
	}
	if state != "" {
		list, err := s.cfg.Store.Orders(ctx, engine.OrderFilter{Merchant: merchant, States: []engine.State{engine.State(state)}, Limit: 200})
		return list, "Orders " + state + of, err
	}
	if q == "" {
		list, err := s.cfg.Store.Orders(ctx, engine.OrderFilter{Merchant: merchant, Limit: 200})
		return list, "Orders" + of, err
	}
	var found []engine.Order
	if engine.ValidOrderID(engine.OrderID(q)) {
		if o, err := s.cfg.Store.Order(ctx, engine.OrderID(q)); err == nil {
			found = append(found, o)
		}
	}
	for _, m := range s.merchantNames() {
		if merchant != "" && m != merchant {
			continue
		}
		if o, err := s.cfg.Store.OrderByOutTradeNo(ctx, m, q); err == nil {
			found = append(found, o)
		}
	}
	byOpenID, err := s.cfg.Store.OrdersByOpenID(ctx, q, 200)
	return append(found, byOpenID...), "Search: " + q, err
}

func (s *Server) adminSearch(w http.ResponseWriter, r *http.Request) {
	orders, title, err := s.findOrders(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if len(orders) == 1 && r.URL.Query().Get("q") != "" {
		http.Redirect(w, r, "/admin/orders/"+string(orders[0].ID), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "search.html", map[string]any{"Title": title, "Orders": orders})
}

// orderDetail is an order with its timeline, its refunds, the actions the
// lifecycle offers on it, why it is stuck if it is, and its calls to WeChat
// (a failure to read those is in "CallsErr": the rest stands without them).
func (s *Server) orderDetail(r *http.Request) (map[string]any, error) {
	id := engine.OrderID(r.PathValue("id"))
	if !engine.ValidOrderID(id) {
		return nil, engine.ErrNotFound
	}
	ctx := r.Context()
	o, err := s.cfg.Store.Order(ctx, id)
	if err != nil {
		return nil, err
	}
	h, err := s.cfg.Store.History(ctx, id)
	if err != nil {
		return nil, err
	}
	refunds, err := s.cfg.Store.Refunds(ctx, id)
	if err != nil {
		return nil, err
	}
	why := ""
	if stuck, err := s.cfg.Store.Stuck(ctx, engine.StuckFilter{State: o.State, Deadlines: s.cfg.Deadlines}); err == nil {
		for _, st := range stuck {
			if st.ID == id {
				why = st.Why
			}
		}
	}
	calls, err := workers.ReadCalls(ctx, s.cfg.JS, id)
	callsErr := ""
	if err != nil {
		s.log.Warn("admin: call records", "order_id", id, "err", err)
		callsErr = "NATS did not answer in time"
	}
	return map[string]any{"Order": o, "History": h, "Refunds": refunds, "Why": why, "Calls": calls, "CallsErr": callsErr,
		"Actions": engine.ActionsOf(o, refunds)}, nil
}

func (s *Server) adminOrderPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.orderDetail(r)
	if errors.Is(err, engine.ErrNotFound) {
		http.Error(w, "no such order", http.StatusNotFound)
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	d["Title"], d["Message"] = r.PathValue("id"), r.URL.Query().Get("m")
	s.render(w, r, http.StatusOK, "order.html", d)
}

func (s *Server) adminAPIOrders(w http.ResponseWriter, r *http.Request) {
	orders, _, err := s.findOrders(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if orders == nil {
		orders = []engine.Order{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": orders})
}

func (s *Server) adminAPIStuck(w http.ResponseWriter, r *http.Request) {
	stuck, err := s.cfg.Store.Stuck(r.Context(), engine.StuckFilter{State: engine.State(r.URL.Query().Get("state")),
		Merchant: r.URL.Query().Get("merchant"), Deadlines: s.cfg.Deadlines})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if stuck == nil {
		stuck = []engine.StuckOrder{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"stuck": stuck})
}

func (s *Server) adminAPIOrder(w http.ResponseWriter, r *http.Request) {
	d, err := s.orderDetail(r)
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such order")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// adminInput is what an admin action says: why, and for refunds how much.
// Who acted is the signed-in admin (see actor), never what the request says.
type adminInput struct {
	// Who is accepted for clients written when the API trusted it, and ignored.
	Who       string `json:"who"`
	Reason    string `json:"reason"`
	AmountFen int64  `json:"amount_fen"`
	// OutRefundNo names a refund (optional): asking again with the same
	// number and amount is a repeat, not a second refund. The page's
	// confirmation carries the number its form was shown with.
	OutRefundNo string `json:"out_refund_no"`
	// Flag is the flag a resolve clears.
	Flag   string `json:"flag"`
	State  string `json:"state"`
	DryRun bool   `json:"dry_run"`
}

func readAdminInput(r *http.Request, form bool) (adminInput, error) {
	var in adminInput
	if form {
		in.Reason, in.Flag, in.OutRefundNo = r.PostFormValue("reason"), r.PostFormValue("flag"), r.PostFormValue("out_refund_no")
		if r.PostForm.Has("amount") {
			fen, err := parseYuan(r.PostFormValue("amount"))
			if err != nil {
				return in, fmt.Errorf("amount %w", err)
			}
			in.AmountFen = fen
		}
	} else if err := decodeBody(r, &in); err != nil {
		return in, err
	}
	if strings.TrimSpace(in.Reason) == "" {
		return in, errors.New("a reason is required: it is written to the order's history")
	}
	return in, nil
}

// adminAct replays, closes, refunds or resolves a flag of one order on an
// admin's word; a resolve is the only way an alert (money may be wrong) is
// cleared.
func (s *Server) adminAct(verb engine.Verb, form bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := engine.OrderID(r.PathValue("id"))
		in, err := readAdminInput(r, form)
		if err != nil || !engine.ValidOrderID(id) {
			if err == nil {
				err = errors.New("malformed order id")
			}
			s.adminAnswer(w, r, form, id, engine.Result{}, http.StatusBadRequest, err.Error())
			return
		}
		c := engine.Command{ID: engine.AdminCommandID(verb), Verb: verb, OrderID: id, Actor: actor(r.Context()), Reason: in.Reason}
		switch verb {
		case engine.VerbClose:
			c.Close = &engine.CloseAsk{}
		case engine.VerbRefund:
			if in.AmountFen <= 0 {
				s.adminAnswer(w, r, form, id, engine.Result{}, http.StatusUnprocessableEntity, "amount_fen must be positive")
				return
			}
			if len(in.Reason) > maxRefundReason || !cleanText(in.Reason) {
				s.adminAnswer(w, r, form, id, engine.Result{}, http.StatusUnprocessableEntity,
					fmt.Sprintf("the reason must be at most %d bytes, without control characters: WeChat takes it as the refund's reason", maxRefundReason))
				return
			}
			if in.OutRefundNo == "" {
				in.OutRefundNo = newOutRefundNo()
			}
			if !validOutTradeNo(in.OutRefundNo) {
				s.adminAnswer(w, r, form, id, engine.Result{}, http.StatusUnprocessableEntity, "out_refund_no must be 6-32 of [0-9A-Za-z_-|*]")
				return
			}
			// The shop API's command id: the same number and amount asked again is one refund.
			c.ID = engine.RefundCommandID(id, in.OutRefundNo, in.AmountFen)
			c.Refund = &engine.RefundAsk{OutRefundNo: in.OutRefundNo, AmountFen: in.AmountFen, Reason: in.Reason}
		case engine.VerbResolve:
			if strings.TrimSpace(in.Flag) == "" {
				s.adminAnswer(w, r, form, id, engine.Result{}, http.StatusUnprocessableEntity, "flag is required: the flag to clear")
				return
			}
			c.Resolve = &engine.Resolution{Flag: in.Flag}
		}
		res, seen, err := s.sendSeen(r.Context(), c, true)
		switch {
		case errors.Is(err, errNoReply):
			s.adminAnswer(w, r, form, id, res, http.StatusAccepted, "sent; the engine will apply it")
		case err != nil:
			s.adminAnswer(w, r, form, id, res, http.StatusServiceUnavailable, err.Error())
		case !res.Applied:
			s.adminAnswer(w, r, form, id, res, statusOf(res.Code), fmt.Sprintf("refused: %s: %s", res.Code, res.Reason))
		case verb == engine.VerbRefund:
			again := ""
			if seen {
				again = " (asked before: this is the same refund, not a second one)"
			}
			s.adminAnswer(w, r, form, id, res, http.StatusOK, fmt.Sprintf("refund of %s asked (out_refund_no %s)%s: the order is %s",
				yuanFen(c.Refund.AmountFen), c.Refund.OutRefundNo, again, res.Order.State))
		default:
			s.adminAnswer(w, r, form, id, res, http.StatusOK, fmt.Sprintf("%s done: the order is %s", verb, res.Order.State))
		}
	}
}

// newOutRefundNo is a fresh out_refund_no for an admin's refund.
func newOutRefundNo() string { return "wxr" + strings.TrimPrefix(engine.NewID("r"), "r_") }

// adminRefundForm is the page's refund form, in two steps. The form (amount
// in yuan, reason) is answered with a confirmation page that names the
// order, the payer, the amount in yuan and fen, what remains after, and a
// new out_refund_no; only that page's form (confirm=yes) reaches refund,
// the admin API's own handler. A confirmation sent twice (a double click, a
// reload) carries the same out_refund_no and amount: one refund.
func (s *Server) adminRefundForm(refund http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("confirm") == "yes" {
			refund(w, r)
			return
		}
		id := engine.OrderID(r.PathValue("id"))
		if !engine.ValidOrderID(id) {
			http.Error(w, "no such order", http.StatusNotFound)
			return
		}
		in, err := readAdminInput(r, true)
		if err == nil && !r.PostForm.Has("amount") {
			err = errors.New("the amount to refund is required")
		}
		if err == nil && (len(in.Reason) > maxRefundReason || !cleanText(in.Reason)) {
			err = fmt.Errorf("the reason must be at most %d bytes (WeChat's limit), without control characters", maxRefundReason)
		}
		if err != nil {
			s.adminAnswer(w, r, true, id, engine.Result{}, http.StatusBadRequest, "refund not asked: "+err.Error())
			return
		}
		o, err := s.cfg.Store.Order(r.Context(), id)
		if errors.Is(err, engine.ErrNotFound) {
			http.Error(w, "no such order", http.StatusNotFound)
			return
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		refunds, err := s.cfg.Store.Refunds(r.Context(), id)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		a := engine.ActionsOf(o, refunds)
		switch {
		case !a.Refund:
			s.adminAnswer(w, r, true, id, engine.Result{}, http.StatusConflict,
				fmt.Sprintf("refund not asked: the order is %s with %s left to refund", o.State, yuanFen(a.RefundableFen)))
			return
		case in.AmountFen > a.RefundableFen:
			s.adminAnswer(w, r, true, id, engine.Result{}, http.StatusConflict,
				fmt.Sprintf("refund not asked: %s is more than the %s that remain", yuanFen(in.AmountFen), yuanFen(a.RefundableFen)))
			return
		}
		s.render(w, r, http.StatusOK, "refund.html", map[string]any{"Title": "refund " + string(id), "Order": o,
			"AmountFen": in.AmountFen, "After": a.RefundableFen - in.AmountFen, "Reason": in.Reason, "OutRefundNo": newOutRefundNo()})
	}
}

func (s *Server) adminAnswer(w http.ResponseWriter, r *http.Request, form bool, id engine.OrderID, res engine.Result, status int, msg string) {
	if form {
		target := "/admin/"
		if id != "" && engine.ValidOrderID(id) {
			target = "/admin/orders/" + string(id)
		}
		http.Redirect(w, r, target+"?m="+url.QueryEscape(msg), http.StatusSeeOther)
		return
	}
	if status >= 400 {
		writeError(w, status, string(res.Code), msg)
		return
	}
	writeJSON(w, status, map[string]any{"message": msg, "result": res})
}

// adminReplayStuck replays every stuck order (optionally of one state).
func (s *Server) adminReplayStuck(form bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in, err := readAdminInput(r, form)
		if err != nil {
			s.adminAnswer(w, r, form, "", engine.Result{}, http.StatusBadRequest, err.Error())
			return
		}
		stuck, err := s.cfg.Store.Stuck(r.Context(), engine.StuckFilter{State: engine.State(in.State), Deadlines: s.cfg.Deadlines})
		if err != nil {
			s.adminAnswer(w, r, form, "", engine.Result{}, http.StatusServiceUnavailable, err.Error())
			return
		}
		ids := make([]engine.OrderID, 0, len(stuck))
		for _, o := range stuck {
			ids = append(ids, o.ID)
			if in.DryRun {
				continue
			}
			c := engine.Command{ID: engine.AdminCommandID(engine.VerbReplay), Verb: engine.VerbReplay, OrderID: o.ID, Actor: actor(r.Context()), Reason: in.Reason}
			if _, err := s.send(r.Context(), c, false); err != nil {
				s.adminAnswer(w, r, form, "", engine.Result{}, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		if form {
			s.adminAnswer(w, r, true, "", engine.Result{}, http.StatusOK, fmt.Sprintf("%d stuck orders replayed", len(ids)))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"replayed": ids, "dry_run": in.DryRun})
	}
}
