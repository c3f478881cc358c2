package demoshop

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"net/url"
)

// item is one thing the shop sells.
type item struct {
	ID   string
	Name string
	Fen  int64
}

// catalogue is what the shop sells (read-only).
var catalogue = []item{
	{ID: "green-tea", Name: "Green tea 绿茶", Fen: 1990},
	{ID: "oolong", Name: "Oolong 乌龙茶", Fen: 2500},
	{ID: "milk-tea", Name: "Milk tea 奶茶", Fen: 880},
}

func findItem(id string) (item, bool) {
	for _, it := range catalogue {
		if it.ID == id {
			return it, true
		}
	}
	return item{}, false
}

// choice reads the item and pay API a request names.
func choice(q url.Values) (item, string, bool) {
	it, ok := findItem(q.Get("item"))
	api := q.Get("api")
	return it, api, ok && (api == "v2" || api == "v3")
}

// page renders a template as an HTML page with status.
func (s *Shop) page(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Warn("render", "template", name, "err", err)
	}
}

// message is a page that says what went wrong and links back to the shop.
func (s *Shop) message(w http.ResponseWriter, status int, title, text string) {
	s.page(w, status, "message.html", map[string]string{"Title": title, "Text": text})
}

// fail is the page for a call to wxflow that failed.
func (s *Shop) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Warn(what, "err", err, "path", r.URL.Path)
	status := http.StatusBadGateway
	if code := errorCode(err); code == "not_found" {
		status = http.StatusNotFound
	}
	s.message(w, status, "wxflow said no", what+": "+err.Error())
}

func (s *Shop) index(w http.ResponseWriter, r *http.Request) {
	buyer(w, r)
	s.page(w, http.StatusOK, "index.html", map[string]any{"Items": catalogue, "SimURL": s.cfg.SimURL})
}

// buy starts WeChat's OAuth: wxflow gives the consent page's URL, which
// brings the payer back to /demo/back with a code. state, kept in a cookie,
// proves the return started here.
func (s *Shop) buy(w http.ResponseWriter, r *http.Request) {
	it, api, ok := choice(r.URL.Query())
	if !ok {
		s.message(w, http.StatusBadRequest, "No such item", "Choose an item of the shop and a pay API (v2 or v3).")
		return
	}
	buyer(w, r)
	state := randomHex(12)
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/demo/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: 600})
	back := selfOrigin(r) + "/demo/back?" + url.Values{"item": {it.ID}, "api": {api}}.Encode()
	loc, err := s.api.authorizeURL(r.Context(), back, state)
	if err != nil {
		s.fail(w, r, "OAuth", err)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

// back is the OAuth callback: it checks state, creates the order with the
// code (Idempotency-Key from the code, so a reload makes no second order)
// and sends the browser to the order's page.
func (s *Shop) back(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(stateCookie)
	if err != nil || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(q.Get("state"))) != 1 {
		s.message(w, http.StatusForbidden, "Start again",
			"This sign-in did not start in this browser (its state does not match the shop's cookie): start again from the shop.")
		return
	}
	it, api, ok := choice(q)
	code := q.Get("code")
	if !ok || code == "" || len(code) > 128 {
		s.message(w, http.StatusBadRequest, "No code", "WeChat's OAuth came back without a code, an item or a pay API.")
		return
	}
	b := buyer(w, r)
	id, err := s.api.createOrder(r.Context(), createRequest{AmountFen: it.Fen, Description: it.Name, PayAPI: api,
		OAuthCode: code, Client: "jsapi", ClientIP: clientIP(r)}, "demoshop-oauth-"+code)
	if err != nil {
		s.fail(w, r, "creating the order", err)
		return
	}
	if !s.owners.add(id, b) {
		s.message(w, http.StatusForbidden, "Not yours", "This order was made in another browser.")
		return
	}
	http.Redirect(w, r, "/demo/orders/"+url.PathEscape(id), http.StatusSeeOther)
}

// orderPage is the order's page: for an Official Account order the JS-SDK
// flow (wx.config, wx.chooseWXPay), for a mini-program order the
// parameters of wx.requestPayment. ?mistake= shows a shop's common mistakes
// (sign-other-url, forget-sign-type); ?bridge=now has the simulator define
// WeixinJSBridge before the JS-SDK runs instead of after the page loads.
func (s *Shop) orderPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.owners.owns(id, buyerOf(r)) {
		s.message(w, http.StatusNotFound, "No such order", "This browser made no order "+id+".")
		return
	}
	v, err := s.api.getOrder(r.Context(), id)
	if err != nil {
		s.fail(w, r, "reading the order", err)
		return
	}
	bridge, jsapi := "", v.Order.Client != "miniprogram"
	if s.cfg.SimURL != "" && jsapi {
		bridge = s.cfg.SimURL + "/sim/jsbridge.js"
		if r.URL.Query().Get("bridge") == "now" {
			bridge += "?inject=now"
		}
	}
	s.page(w, http.StatusOK, "order.html", map[string]any{"Order": v.Order, "JSAPI": jsapi,
		"Bridge": bridge, "JSSDK": s.jssdkSrc, "SimURL": s.cfg.SimURL, "Mistake": r.URL.Query().Get("mistake")})
}

// clientIP is the payer's address, for WeChat's spbill_create_ip.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ""
}
