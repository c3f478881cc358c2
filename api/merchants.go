package api

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/pay"
)

// served is one merchant the API serves, with the reader of its
// notifications (its own keys: another merchant's never verify them).
type served struct {
	Merchant
	notices pay.Notices
}

// defaultMerchant is the first of Config.Merchants.
func (s *Server) defaultMerchant() *served { return s.merchants[s.cfg.Merchants[0].Name] }

// Merchants lists the merchants the API serves, in Config order: the
// metrics' merchant label values.
func (s *Server) Merchants() []string { return s.merchantNames() }

// merchantNames lists the merchants served, in Config order.
func (s *Server) merchantNames() []string {
	var out []string
	for _, m := range s.cfg.Merchants {
		out = append(out, m.Name)
	}
	return out
}

// merchantFor picks the merchant a shop's request is for: the one it names,
// which the shop must act for; else the default merchant when the shop acts
// for it, else the shop's only merchant. It writes the answer and returns
// nil when there is none: 403 for a merchant the shop may not act for, 422
// when it must name one or names one not configured, 503 for a merchant
// whose configuration is broken.
func (s *Server) merchantFor(w http.ResponseWriter, shop engine.Shop, name string) *served {
	if name == "" {
		switch {
		case shop.ActsFor(s.cfg.Merchants[0].Name):
			name = s.cfg.Merchants[0].Name
		case len(shop.Merchants) == 1:
			name = shop.Merchants[0]
		default:
			writeProblems(w, Problems{{Field: "merchant", Code: ProblemRequired,
				Reason: "the shop acts for several merchants: name one"}})
			return nil
		}
	}
	if !shop.ActsFor(name) {
		writeError(w, http.StatusForbidden, codeMerchantDenied, fmt.Sprintf("shop %s may not act for merchant %s", shop.Name, name))
		return nil
	}
	if m, ok := s.merchants[name]; ok {
		return m
	}
	if _, broken := s.cfg.Broken[name]; broken {
		// The reason stays in the log: it may name key files.
		s.log.Warn("order for a misconfigured merchant refused", "merchant", name, "err", s.cfg.Broken[name])
		writeError(w, http.StatusServiceUnavailable, codeMerchantUnavailable,
			fmt.Sprintf("merchant %s is misconfigured here (`wxflow merchant check` says why): its orders are refused until it is fixed", name))
		return nil
	}
	writeProblems(w, Problems{{Field: "merchant", Code: ProblemInvalidValue, Reason: "is not a merchant of this deployment"}})
	return nil
}

// payerKind is the kind of app a payer of the request pays in: a
// mini-program for a wx.login code and for the miniprogram front end, an
// Official Account for an OAuth code and for the jsapi front end.
func payerKind(client engine.Client, loginCode string) wechat.AppKind {
	if client == engine.ClientMiniProgram || loginCode != "" {
		return wechat.AppMiniProgram
	}
	return wechat.AppOfficialAccount
}

// appFor picks the app of an order: the one named, which must be the
// merchant's (or its provider's) and of the payer's kind; else the
// merchant's app of that kind. It adds a problem when there is none.
func appFor(m *served, appid string, client engine.Client, oauthCode, loginCode string, ps *Problems) string {
	want := payerKind(client, loginCode)
	if appid == "" {
		a, ok := m.AppFor(want)
		if !ok {
			ps.add("appid", ProblemInvalidValue, fmt.Sprintf("merchant %s has no %s app for this payer", m.Name, want))
			return ""
		}
		return a.AppID
	}
	a, ok := m.App(appid)
	switch {
	case !ok:
		ps.add("appid", ProblemInvalidValue, fmt.Sprintf("is not an app of merchant %s", m.Name))
	case !a.Kind.Serves(want):
		what := "the " + string(client) + " front end"
		switch {
		case oauthCode != "":
			what = "an oauth_code"
		case loginCode != "":
			what = "a login_code"
		}
		ps.add("appid", ProblemConflict, fmt.Sprintf("is a %s app: %s needs a %s app", a.Kind, what, want))
	default:
		return a.AppID
	}
	return ""
}

// pageApp is the Official Account whose page a JS-SDK config or an OAuth
// redirect is for: the request's merchant and appid, by default the
// merchant's first Official Account. It writes the answer and returns
// false when there is none.
func (s *Server) pageApp(w http.ResponseWriter, r *http.Request, shop engine.Shop) (*served, wechat.App, bool) {
	q := r.URL.Query()
	m := s.merchantFor(w, shop, q.Get("merchant"))
	if m == nil {
		return nil, wechat.App{}, false
	}
	var ps Problems
	appid := appFor(m, q.Get("appid"), engine.ClientJSAPI, "", "", &ps)
	if len(ps) > 0 {
		writeProblems(w, ps)
		return nil, wechat.App{}, false
	}
	a, _ := m.App(appid)
	return m, a, true
}

// notifyMerchant is the merchant of a notification's path; nil when it is
// not one the API serves.
func (s *Server) notifyMerchant(r *http.Request) *served {
	return s.merchants[r.PathValue("merchant")]
}

// servesMerchant says whether name is one of the merchants served, for
// filters that take a merchant from a query.
func (s *Server) servesMerchant(name string) bool {
	return slices.Contains(s.merchantNames(), name)
}

// orderApp is the app an order's payer pays in, as the workers resolve it:
// the order's AppID, else the merchant's app for its front end.
func (s *Server) orderApp(m *served, o engine.Order) string {
	if o.AppID != "" {
		return o.AppID // as named: one not the merchant's owns no notification
	}
	a, _ := m.PayerApp("", payerKind(o.Client, o.LoginCode))
	return a.AppID
}
