package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
)

// errcode answers a platform API error as WeChat does: HTTP 200, {errcode, errmsg}.
func errcode(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": msg})
}

// checkApp verifies appid and secret of a platform call: any app of any
// merchant, with its own secret.
func (s *Sim) checkApp(w http.ResponseWriter, q url.Values) bool {
	a, ok := s.dir.apps[q.Get("appid")]
	switch {
	case !ok:
		errcode(w, 40013, "invalid appid")
		return false
	case q.Get("secret") != string(a.AppSecret):
		errcode(w, 40125, "invalid appsecret")
		return false
	}
	return true
}

// defaultAppID is the app of a /sim/ call that names none: the first
// merchant's first app of kind want (its first app when none is).
func (s *Sim) defaultAppID(want wechat.AppKind) string {
	if a, ok := s.keys.Merchant.AppFor(want); ok {
		return a.AppID
	}
	return s.keys.Merchant.AppID
}

// handleToken issues a global access_token. The previous one stays valid for
// a grace of 5 minutes (scaled), then answers 40001, as on WeChat.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("grant_type") != "client_credential" {
		errcode(w, 40002, "invalid grant_type")
		return
	}
	if !s.checkApp(w, q) {
		return
	}
	appid := q.Get("appid")
	s.mu.Lock()
	defer s.mu.Unlock()
	// The quota is each app's own.
	if !s.countCall("cgi-bin/token "+appid, s.cfg.TokenQuota) {
		errcode(w, 45009, "reach max api daily quota limit")
		return
	}
	now := s.now()
	if latest := s.latestToken[appid]; latest != "" {
		if prev, ok := s.tokens[latest]; ok {
			if grace := now.Add(s.scaled(5 * time.Minute)); prev.Expires.After(grace) {
				s.tokens[latest] = token{AppID: appid, Expires: grace}
			}
		}
	}
	tok := "SIMTOKEN_" + randomAlnum(64)
	s.tokens[tok] = token{AppID: appid, Expires: now.Add(s.scaled(s.cfg.TokenTTL))}
	s.latestToken[appid] = tok
	s.log.Info("access_token issued", "token", tok[:13]+"…")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": int(s.cfg.TokenTTL.Seconds())})
}

// validToken checks a global access_token; the caller holds s.mu.
func (s *Sim) validToken(w http.ResponseWriter, tok string) bool {
	t, ok := s.tokens[tok]
	switch {
	case tok == "":
		errcode(w, 41001, "access_token missing")
	case !ok:
		errcode(w, 40001, "invalid credential, access_token is invalid or not latest")
	case s.now().After(t.Expires):
		errcode(w, 42001, "access_token expired")
	default:
		return true
	}
	return false
}

// handleTicket issues a jsapi_ticket for a valid access_token.
func (s *Sim) handleTicket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.validToken(w, q.Get("access_token")) {
		return
	}
	if q.Get("type") != "jsapi" {
		errcode(w, 40097, "invalid args")
		return
	}
	t := "SIMTICKET_" + randomAlnum(64)
	s.tickets[t] = token{AppID: s.tokens[q.Get("access_token")].AppID, Expires: s.now().Add(s.scaled(s.cfg.TokenTTL))}
	writeJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok", "ticket": t, "expires_in": int(s.cfg.TokenTTL.Seconds())})
}

// issueCode makes a single-use code of app appid that lives 5 minutes, not
// scaled: the time scale speeds WeChat's own clocks up, not the shop's round
// trip from the front end, which a code must outlive. The code names openid
// when given (as is); else the openid of user in appid (a new user when
// empty): one person, a different openid in each app.
func (s *Sim) issueCode(appid, openid, user string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if openid == "" {
		if user == "" {
			user = "u" + randomAlnum(16)
		}
		openid = openIDFor(user, appid)
	}
	if user == "" {
		user = "openid:" + openid
	}
	c := "SIMCODE" + randomAlnum(25)
	s.codes[c] = &code{AppID: appid, OpenID: openid, Expires: s.now().Add(5 * time.Minute)}
	if _, known := s.openids[openid]; !known {
		s.openids[openid], s.users[openid] = appid, user
	}
	return c, openid
}

// handleIssueCode plays the user: POST /sim/oauth/code (consent) or /sim/login
// (wx.login), body {"appid", "user", "openid"} all optional (appid: the first
// merchant's Official Account, resp. mini-program; user: a name for one
// person across apps); answers {"code", "openid", "appid"}.
func (s *Sim) handleIssueCode(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AppID  string `json:"appid"`
		User   string `json:"user"`
		OpenID string `json:"openid"`
	}
	if body, _ := io.ReadAll(io.LimitReader(r.Body, 4096)); len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	want := wechat.AppOfficialAccount
	if strings.HasSuffix(r.URL.Path, "/login") {
		want = wechat.AppMiniProgram
	}
	if in.AppID == "" {
		in.AppID = s.defaultAppID(want)
	}
	if a, ok := s.dir.apps[in.AppID]; !ok || !a.Kind.Serves(want) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "appid " + in.AppID + " is no " + string(want) + " of a merchant here"})
		return
	}
	c, openid := s.issueCode(in.AppID, in.OpenID, in.User)
	writeJSON(w, http.StatusOK, map[string]string{"code": c, "openid": openid, "appid": in.AppID})
}

// handleAuthorize is the consent page: it redirects at once to
// redirect_uri?code=…&state=…, as after a user's consent.
func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target, err := url.Parse(q.Get("redirect_uri"))
	app, known := s.dir.apps[q.Get("appid")]
	if !known || !app.Kind.Serves(wechat.AppOfficialAccount) || err != nil || !target.IsAbs() || q.Get("response_type") != "code" {
		http.Error(w, "该链接无法访问 (bad appid, redirect_uri or response_type)", http.StatusBadRequest)
		return
	}
	tq := target.Query()
	c, _ := s.issueCode(app.AppID, q.Get("openid"), q.Get("user"))
	tq.Set("code", c)
	tq.Set("state", q.Get("state"))
	target.RawQuery = tq.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// takeCode consumes a single-use code of app appid: 40029 unknown, expired
// or another app's, 40163 used.
func (s *Sim) takeCode(w http.ResponseWriter, c, appid string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cd, ok := s.codes[c]
	switch {
	case !ok || s.now().After(cd.Expires) || cd.AppID != appid:
		errcode(w, 40029, "invalid code")
	case cd.Used:
		errcode(w, 40163, "code been used")
	default:
		cd.Used = true
		return cd.OpenID, true
	}
	return "", false
}

func (s *Sim) handleOAuthToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !s.checkApp(w, q) {
		return
	}
	openid, ok := s.takeCode(w, q.Get("code"), q.Get("appid"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": "SIMUSER_" + randomAlnum(40), "expires_in": 7200,
		"refresh_token": "SIMREFRESH_" + openid, "openid": openid, "scope": "snsapi_base"})
}

func (s *Sim) handleOAuthRefresh(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	openid, ok := strings.CutPrefix(q.Get("refresh_token"), "SIMREFRESH_")
	s.mu.Lock()
	issuer, issued := s.openids[openid]
	s.mu.Unlock()
	if _, known := s.dir.apps[q.Get("appid")]; !known || !ok || issued && issuer != q.Get("appid") {
		errcode(w, 40030, "invalid refresh_token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": "SIMUSER_" + randomAlnum(40), "expires_in": 7200,
		"refresh_token": q.Get("refresh_token"), "openid": openid, "scope": "snsapi_base"})
}

func (s *Sim) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !strings.HasPrefix(q.Get("access_token"), "SIMUSER_") {
		errcode(w, 40001, "invalid credential")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"openid": q.Get("openid"), "nickname": "微信用户", "sex": 0, "headimgurl": "", "privilege": []string{}})
}

func (s *Sim) handleJSCode2Session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !s.checkApp(w, q) {
		return
	}
	openid, ok := s.takeCode(w, q.Get("js_code"), q.Get("appid"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"openid": openid, "session_key": randomAlnum(24)})
}

// handleOAuthCheck answers sns/auth: is this user-level token valid?
func (s *Sim) handleOAuthCheck(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Query().Get("access_token"), "SIMUSER_") {
		errcode(w, 40001, "invalid credential")
		return
	}
	errcode(w, 0, "ok")
}
