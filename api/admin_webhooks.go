package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/webhook"
)

// The admin API's webhooks: a shop's endpoints, their deliveries, and
// resending. Only admins (the admin token) add endpoints: an endpoint
// receives every event of the shop's merchants, openids and amounts
// included, and makes the deliverer send requests to a URL of the admin's
// choosing (checked: webhook.CheckURL).

// adminWebhookRoutes mounts the routes, when the admin side is on.
func (s *Server) adminWebhookRoutes(m *routeTable) {
	if s.admin == nil {
		return
	}
	handle := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, adminHeaders(s.requireToken(h))) }
	handle("GET /admin/api/shops/{shop}/webhooks", s.adminWebhooks)
	handle("POST /admin/api/shops/{shop}/webhooks", s.adminAddWebhook)
	handle("DELETE /admin/api/shops/{shop}/webhooks/{id}", s.adminRemoveWebhook)
	handle("GET /admin/api/shops/{shop}/webhooks/{id}/deliveries", s.adminWebhookDeliveries)
	handle("POST /admin/api/shops/{shop}/webhooks/{id}/resend", s.adminResendWebhooks)
}

// codeTooManyEndpoints answers an endpoint past engine.MaxWebhookEndpoints (409).
const codeTooManyEndpoints = "too_many_endpoints"

// webhookShop reads the {shop} of the path; it answers 404 itself when
// there is no such shop.
func (s *Server) webhookShop(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("shop")
	if !engine.ValidShopName(name) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such shop")
		return "", false
	}
	if _, err := s.cfg.Store.Shop(r.Context(), name); errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such shop")
		return "", false
	} else if err != nil {
		s.webhookUnavailable(w, "admin: shop", err)
		return "", false
	}
	return name, true
}

// webhookEndpoint reads {shop} and {id}; it answers 404 itself when the
// shop has no such live endpoint.
func (s *Server) webhookEndpoint(w http.ResponseWriter, r *http.Request) (engine.WebhookEndpoint, bool) {
	shop, ok := s.webhookShop(w, r)
	if !ok {
		return engine.WebhookEndpoint{}, false
	}
	ep, err := s.cfg.Store.WebhookEndpoint(r.Context(), shop, r.PathValue("id"))
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such webhook of this shop")
		return ep, false
	} else if err != nil {
		s.webhookUnavailable(w, "admin: webhook", err)
		return ep, false
	}
	return ep, true
}

func (s *Server) webhookUnavailable(w http.ResponseWriter, what string, err error) {
	s.log.Warn(what, "err", err)
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
}

func (s *Server) adminWebhooks(w http.ResponseWriter, r *http.Request) {
	shop, ok := s.webhookShop(w, r)
	if !ok {
		return
	}
	list, err := s.cfg.Store.WebhookEndpoints(r.Context(), shop)
	if err != nil {
		s.webhookUnavailable(w, "admin: webhooks", err)
		return
	}
	if list == nil {
		list = []engine.WebhookEndpointStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": list})
}

// adminAddWebhook adds an endpoint and answers its signing secret, the one
// time it is shown: wxflow keeps it sealed under the server secret.
func (s *Server) adminAddWebhook(w http.ResponseWriter, r *http.Request) {
	shop, ok := s.webhookShop(w, r)
	if !ok {
		return
	}
	o, err := readObject(r, false)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	var raw string
	o.str("url", &raw)
	o.finish()
	ps := o.ps
	target, uerr := "", error(nil)
	if raw == "" && len(ps) == 0 {
		ps.add("url", ProblemRequired, "the endpoint's URL is required")
	} else if len(ps) == 0 {
		target, uerr = webhook.CheckURL(raw, s.cfg.WebhookAllowPrivate)
		why := strings.TrimPrefix(fmt.Sprint(uerr), "webhook: ")
		switch {
		case errors.Is(uerr, webhook.ErrPrivateTarget) && s.cfg.WebhookAllowPrivate:
			ps.add("url", ProblemInvalidValue, why+": link-local, multicast and reserved addresses are never allowed")
		case errors.Is(uerr, webhook.ErrPrivateTarget):
			ps.add("url", ProblemInvalidValue, why+": endpoints must be on public addresses (WXFLOW_WEBHOOK_ALLOW_PRIVATE allows loopback and private ones)")
		case uerr != nil:
			ps.add("url", ProblemInvalidFormat, why)
		}
	}
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	secret, ep, err := engine.NewWebhookEndpoint(s.cfg.Secret, shop, target, s.cfg.Now())
	if err != nil {
		s.webhookUnavailable(w, "admin: new webhook", err)
		return
	}
	switch err := s.cfg.Store.AddWebhookEndpoint(r.Context(), ep); {
	case errors.Is(err, engine.ErrTooManyEndpoints):
		writeError(w, http.StatusConflict, codeTooManyEndpoints, fmt.Sprintf("a shop has at most %d webhooks: remove one first", engine.MaxWebhookEndpoints))
		return
	case errors.Is(err, engine.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "no such shop")
		return
	case err != nil:
		s.webhookUnavailable(w, "admin: add webhook", err)
		return
	}
	s.log.Info("admin: webhook added", "admin", actor(r.Context()), "shop", shop, "endpoint", ep.ID, "host", webhookHost(ep.URL))
	writeJSON(w, http.StatusCreated, map[string]any{"webhook": ep, "secret": secret,
		"note": "the secret is shown this once: verify Wxflow-Signature with it"})
}

// webhookHost is a URL's host, for logs: its path and query may hold a token.
func webhookHost(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

func (s *Server) adminRemoveWebhook(w http.ResponseWriter, r *http.Request) {
	ep, ok := s.webhookEndpoint(w, r)
	if !ok {
		return
	}
	n, err := s.cfg.Store.RemoveWebhookEndpoint(r.Context(), ep.Shop, ep.ID, s.cfg.Now())
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such webhook of this shop")
		return
	} else if err != nil {
		s.webhookUnavailable(w, "admin: remove webhook", err)
		return
	}
	s.log.Info("admin: webhook removed", "admin", actor(r.Context()), "shop", ep.Shop, "endpoint", ep.ID, "cancelled", n)
	writeJSON(w, http.StatusOK, map[string]any{"removed": ep.ID, "cancelled": n})
}

// maxDeliveriesPage is the most deliveries one answer lists.
const maxDeliveriesPage = 500

// adminWebhookDeliveries lists an endpoint's deliveries, newest first:
// ?state=pending|delivered|failed|cancelled, ?limit= (100, at most 500),
// ?before=<id> for the next page (the answer's next_before).
func (s *Server) adminWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	ep, ok := s.webhookEndpoint(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := engine.WebhookDeliveryFilter{EndpointID: ep.ID, State: engine.WebhookState(q.Get("state")), Limit: 100}
	var ps Problems
	if f.State != "" && !f.State.Valid() {
		ps.add("state", ProblemInvalidValue, "want pending, delivered, failed or cancelled")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeliveriesPage {
			ps.add("limit", ProblemOutOfRange, fmt.Sprintf("want 1 to %d", maxDeliveriesPage))
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			ps.add("before", ProblemInvalidFormat, "want a delivery id (the next_before of the previous page)")
		}
		f.Before = n
	}
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	list, err := s.cfg.Store.WebhookDeliveries(r.Context(), f)
	if err != nil {
		s.webhookUnavailable(w, "admin: webhook deliveries", err)
		return
	}
	answer := map[string]any{"webhook": ep, "deliveries": list}
	if list == nil {
		answer["deliveries"] = []engine.WebhookDelivery{}
	}
	if len(list) == f.Limit {
		answer["next_before"] = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, answer)
}

// adminResendWebhooks queues events again for an endpoint: {"event_id":…}
// for one, {"since":"<RFC 3339 time>"} for every event of the shop's
// merchants written since then. Delivered ones are sent again: receivers
// dedupe by event id.
func (s *Server) adminResendWebhooks(w http.ResponseWriter, r *http.Request) {
	ep, ok := s.webhookEndpoint(w, r)
	if !ok {
		return
	}
	o, err := readObject(r, false)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	var eventID, since string
	o.str("event_id", &eventID)
	o.str("since", &since)
	o.finish()
	ps := o.ps
	var rs engine.WebhookResend
	switch {
	case len(ps) > 0:
	case eventID != "" && since != "":
		ps.add("since", ProblemConflict, "give event_id or since, not both")
	case eventID == "" && since == "":
		ps.add("event_id", ProblemRequired, "give event_id (one event) or since (every event since then)")
	case eventID != "":
		ps.checkToken("event_id", eventID, 64)
		rs.EventID = eventID
	default:
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			ps.add("since", ProblemInvalidFormat, "want an RFC 3339 time, e.g. 2026-11-24T08:00:00Z")
		}
		rs.Since = t
	}
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	n, err := s.cfg.Store.ResendWebhooks(r.Context(), ep.Shop, ep.ID, rs, s.cfg.Now())
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such webhook of this shop")
		return
	} else if err != nil {
		s.webhookUnavailable(w, "admin: resend webhooks", err)
		return
	}
	if n == 0 && rs.EventID != "" {
		writeError(w, http.StatusNotFound, codeNotFound, "no such event of the shop's merchants")
		return
	}
	s.log.Info("admin: webhooks resent", "admin", actor(r.Context()), "shop", ep.Shop, "endpoint", ep.ID, "resent", n)
	writeJSON(w, http.StatusOK, map[string]any{"resent": n})
}
