package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat/mp"
	v3 "github.com/wxflow/wxflow/workers/wechat/v3"
)

// The shop's web pages: the JS-SDK config signed for a page, and the OAuth
// redirect that brings a payer back with a code. Both take a URL from the
// request, so both accept only URLs on the deployment's own app domains
// (Config.AppDomains, WXFLOW_APP_DOMAINS): wxflow must not sign wx.config
// for, nor send a payer's code to, a page someone else chose.

const maxPageURL = 2048

// pageURL reads an absolute http(s) URL on one of the app domains from the
// query parameter name, adding a problem when it is not one.
func (s *Server) pageURL(r *http.Request, name string, ps *Problems) *url.URL {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		ps.add(name, ProblemRequired, "is required")
		return nil
	}
	if len(raw) > maxPageURL {
		ps.add(name, ProblemTooLong, "must be at most 2048 bytes")
		return nil
	}
	if !cleanText(raw) {
		ps.add(name, ProblemControlCharacter, "must not hold control characters")
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
		ps.add(name, ProblemInvalidFormat, "must be an absolute http(s) URL")
		return nil
	}
	if !s.appDomain(u.Hostname()) {
		ps.add(name, ProblemDomainNotAllowed, "must be on one of the deployment's app domains (WXFLOW_APP_DOMAINS)")
		return nil
	}
	return u
}

// appDomain says whether host is one of Config.AppDomains (exactly, without
// regard to case: WeChat's JS-SDK and OAuth domains are exact hosts too).
func (s *Server) appDomain(host string) bool {
	for _, d := range s.cfg.AppDomains {
		if strings.EqualFold(host, d) {
			return true
		}
	}
	return false
}

func (s *Server) jssdkConfig(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	var ps Problems
	page := s.pageURL(r, "url", &ps)
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	m, app, ok := s.pageApp(w, r, shop)
	if !ok {
		return
	}
	if m.Tickets == nil {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "no jsapi_ticket source is configured")
		return
	}
	ticket, err := m.Tickets(app.AppID).JSAPITicket(r.Context())
	if err != nil {
		s.log.Warn("jsapi_ticket", "err", err, "trace_id", traceID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, reasonUnavailable)
		return
	}
	page.Fragment, page.RawFragment = "", ""
	writeJSON(w, http.StatusOK, mp.JSConfig(app.AppID, ticket, page.String(), s.cfg.Now(), v3.NonceStr()[:16]))
}

func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request, shop engine.Shop) {
	q := r.URL.Query()
	var ps Problems
	redirect := s.pageURL(r, "redirect_uri", &ps)
	scope := q.Get("scope")
	if scope == "" {
		scope = mp.ScopeBase
	}
	if scope != mp.ScopeBase && scope != mp.ScopeUserInfo {
		ps.add("scope", ProblemInvalidValue, "must be snsapi_base or snsapi_userinfo")
	}
	// WeChat's rule for state: at most 128 bytes of letters and digits.
	state := q.Get("state")
	if len(state) > 128 || strings.Trim(state, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		ps.add("state", ProblemInvalidFormat, "must be at most 128 letters and digits")
	}
	if len(ps) > 0 {
		writeProblems(w, ps)
		return
	}
	_, app, ok := s.pageApp(w, r, shop)
	if !ok {
		return
	}
	http.Redirect(w, r, mp.AuthorizeURL(s.cfg.OAuthBaseURL, app.AppID, redirect.String(), scope, state), http.StatusFound)
}
