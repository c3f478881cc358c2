package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// adminAuth is what lets a person into /admin/: the admins and their tokens,
// the sessions of the page, the failed sign-ins of each client, and the
// origins whose forms are accepted.
type adminAuth struct {
	admins   admins
	sessions *sessions
	limiter  *loginLimiter
	ttl      time.Duration
	origins  []string
}

// newAdminAuth checks the admin settings of cfg; nil when the admin side is off.
func newAdminAuth(cfg Config) (*adminAuth, error) {
	as, err := parseAdmins(cfg.AdminToken)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if len(as) == 0 {
		return nil, nil
	}
	ttl := cfg.AdminSessionTTL
	if ttl == 0 {
		ttl = engine.AdminSessionMaxAge
	}
	if ttl < 0 || ttl > engine.AdminSessionMaxAge {
		return nil, fmt.Errorf("api: AdminSessionTTL %s: want up to %s (the session bucket's TTL)", ttl, engine.AdminSessionMaxAge)
	}
	a := &adminAuth{admins: as, sessions: &sessions{js: cfg.JS}, limiter: newLoginLimiter(loginEvery, loginBurst), ttl: ttl}
	for _, o := range cfg.AdminOrigins {
		if origin := originOf(o); origin != "" {
			a.origins = append(a.origins, origin)
		}
	}
	return a, nil
}

// signedIn is the admin a request acts for, and for the pages the CSRF token
// their forms must carry.
type signedIn struct {
	Name string
	CSRF string
}

type signedInKey struct{}

func withSignedIn(ctx context.Context, who signedIn) context.Context {
	return context.WithValue(ctx, signedInKey{}, who)
}

// signedInAs is the admin the request was let in for (by token or session).
func signedInAs(ctx context.Context) signedIn {
	who, _ := ctx.Value(signedInKey{}).(signedIn)
	return who
}

// actor is what the history records as the author of an admin's command:
// the signed-in identity, never a name the request gives itself.
func actor(ctx context.Context) string { return "admin:" + signedInAs(ctx).Name }

// retryAfter sets Retry-After to wait, in whole seconds rounded up.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
}

// tooManySignIns answers an API client that failed to sign in too often.
func tooManySignIns(w http.ResponseWriter, wait time.Duration) {
	retryAfter(w, wait)
	writeError(w, http.StatusTooManyRequests, "too_many_attempts", "too many failed sign-ins from this address: try again later")
}

// refuseSignIn counts and logs a failed sign-in (the client's address, never
// the text it sent).
func (s *Server) refuseSignIn(r *http.Request, via string) {
	ip := clientIP(r)
	s.admin.limiter.failed(ip, s.cfg.Now())
	s.log.Warn("admin: sign-in refused: wrong token", "client_ip", ip, "via", via, "path", r.URL.Path)
}

// requireToken lets a request of the admin API in by its bearer token alone.
// The page's cookie is never read here: the API takes no CSRF token, so a
// browser's ambient credentials must not work on it.
func (s *Server) requireToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !bearer {
			token = ""
		}
		if token != "" {
			if wait := s.admin.limiter.wait(clientIP(r), s.cfg.Now()); wait > 0 {
				tooManySignIns(w, wait)
				return
			}
		}
		name, ok := s.admin.admins.match(token)
		if !ok {
			if r.Header.Get("Authorization") != "" {
				s.refuseSignIn(r, "bearer")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="wxflow admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
			return
		}
		h(w, r.WithContext(withSignedIn(r.Context(), signedIn{Name: name})))
	}
}

// requireSession lets a page request in by its session cookie; a form
// posted to it must also come from the admin page's origin and carry the
// session's CSRF token. Either failing changes nothing.
func (s *Server) requireSession(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, sess, err := s.session(r)
		if errors.Is(err, errNoSession) {
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		if r.Method == http.MethodPost {
			if err := checkOrigin(r, s.admin.origins, true); err != nil {
				s.log.Warn("admin: form refused: other origin", "client_ip", clientIP(r), "admin", sess.Admin,
					"path", r.URL.Path, "origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"))
				http.Error(w, "refused: "+err.Error(), http.StatusForbidden)
				return
			}
			if !csrfOK(id, r.PostFormValue(csrfField)) {
				s.log.Warn("admin: form refused: no valid CSRF token", "client_ip", clientIP(r), "admin", sess.Admin, "path", r.URL.Path)
				http.Error(w, "refused: the form has no valid CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(withSignedIn(r.Context(), signedIn{Name: sess.Admin, CSRF: csrfToken(id)})))
	}
}

// session is the live session the request's cookie names. A session whose
// admin was removed, or whose token was changed, since it began is ended.
func (s *Server) session(r *http.Request) (string, session, error) {
	c, err := r.Cookie(adminCookie)
	if err != nil || c.Value == "" {
		return "", session{}, errNoSession
	}
	sess, err := s.admin.sessions.get(r.Context(), c.Value, s.cfg.Now())
	if err == nil && !s.admin.admins.holds(sess) {
		s.log.Warn("admin: session refused: its token is no longer the admin's", "admin", sess.Admin, "client_ip", clientIP(r))
		_ = s.admin.sessions.end(r.Context(), c.Value)
		return "", session{}, errNoSession
	}
	return c.Value, sess, err
}

// sessionCookie is the cookie of session id, alive for maxAge seconds
// (negative: delete it). Path /admin/ keeps it off the shop API; SameSite
// Strict keeps other sites' links and forms from sending it.
func (s *Server) sessionCookie(r *http.Request, id string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: adminCookie, Value: id, Path: "/admin/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.cfg.SecureCookies || r.TLS != nil}
}

// adminLoginPage is the sign-in form. It shows only its own two messages:
// anyone can send an admin a link to it (no session is needed), so text
// taken from the link ("?m=Your session expired: mail your token to …")
// would be someone else's words on wxflow's page.
func (s *Server) adminLoginPage(w http.ResponseWriter, r *http.Request) {
	msg := r.URL.Query().Get("m")
	if msg != msgWrongToken && msg != msgSignedOut {
		msg = ""
	}
	s.render(w, r, http.StatusOK, "login.html", map[string]any{"Title": "sign in", "Message": msg})
}

// The sign-in page's messages.
const (
	msgWrongToken = "Wrong token."
	msgSignedOut  = "Signed out."
)

// adminLogin turns a valid token into a new session. A client that failed
// loginBurst times recently is answered 429 whatever it sends.
func (s *Server) adminLogin(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r, s.admin.origins, false); err != nil {
		s.log.Warn("admin: sign-in refused: other origin", "client_ip", clientIP(r), "origin", r.Header.Get("Origin"))
		http.Error(w, "refused: "+err.Error(), http.StatusForbidden)
		return
	}
	now := s.cfg.Now()
	if wait := s.admin.limiter.wait(clientIP(r), now); wait > 0 {
		s.log.Warn("admin: sign-in refused: too many failures", "client_ip", clientIP(r))
		retryAfter(w, wait)
		s.render(w, r, http.StatusTooManyRequests, "login.html", map[string]any{"Title": "sign in",
			"Message": "Too many failed sign-ins from your address: try again in a minute."})
		return
	}
	name, ok := s.admin.admins.match(r.PostFormValue("token"))
	if !ok {
		s.refuseSignIn(r, "page")
		http.Redirect(w, r, "/admin/login?m="+url.QueryEscape(msgWrongToken), http.StatusSeeOther)
		return
	}
	if old, err := r.Cookie(adminCookie); err == nil {
		_ = s.admin.sessions.end(r.Context(), old.Value) // signing in again ends the session before
	}
	id, sess, err := s.admin.sessions.create(r.Context(), name, s.admin.admins.tag(name), now, s.admin.ttl)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	http.SetCookie(w, s.sessionCookie(r, id, int(sess.Expires.Sub(now)/time.Second)))
	s.log.Info("admin: signed in", "admin", name, "client_ip", clientIP(r), "until", sess.Expires)
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

// adminLogout ends the session (on every api process) and drops its cookie.
// It is a form behind requireSession: another site cannot sign an admin out.
func (s *Server) adminLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(adminCookie)
	if err == nil {
		if err := s.admin.sessions.end(r.Context(), c.Value); err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
	}
	http.SetCookie(w, s.sessionCookie(r, "", -1))
	s.log.Info("admin: signed out", "admin", signedInAs(r.Context()).Name, "client_ip", clientIP(r))
	http.Redirect(w, r, "/admin/login?m="+url.QueryEscape(msgSignedOut), http.StatusSeeOther)
}
