package mp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
)

// answerTransport answers every request with the same 200 and body, in
// memory: the fuzzer drives the client's decoding of api.weixin.qq.com
// answers without a network or a server per input.
type answerTransport struct{ body []byte }

// RoundTrip hands back the fixed answer.
func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json; encoding=utf-8"}}, Request: r,
		Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body))}, nil
}

// answeringClient is an mp client whose every call gets body as the answer.
func answeringClient(t testing.TB, body []byte) *mp.Client {
	c, err := mp.NewClient(mp.Config{BaseURL: "https://api.weixin.example", AppID: "wx520c15f417810387",
		AppSecret: "test-app-secret", HTTPClient: &http.Client{Transport: answerTransport{body}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzPlatformAnswer feeds one answer body to every call of the platform
// client (access_token, jsapi_ticket, OAuth code exchange and refresh,
// userinfo, jscode2session): they all share the {errcode, errmsg} check and
// then decode their own shape, and what they return decides whose openid an
// order is paid with and which token the deployment shares.
//
// It asserts that a body that is not JSON fails every call with
// wechat.ErrMalformed; that every call reads the same platform code, a
// non-zero decimal errcode, retryable exactly for -1 (busy) and 45011 (rate
// limit); that a snapshot user (is_snapshotuser=1) never comes out of the
// code exchange, and that it reports ErrInvalidCode only for the invalid-code
// errcodes or a snapshot user; and that a parsed OAuth token, session or
// profile re-encodes to an answer that parses equal.
//
// A successful code exchange or jscode2session carries an openid, and a
// token is never empty and lives a positive time of at most a week.
func FuzzPlatformAnswer(f *testing.F) {
	f.Add([]byte(`{"access_token":"ACCESS_TOKEN","expires_in":7200,"refresh_token":"REFRESH","openid":"oTEST","scope":"snsapi_base","is_snapshotuser":0}`))
	f.Add([]byte(`{"errcode":40029,"errmsg":"invalid code"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		c := answeringClient(t, body)
		var (
			oauth, refreshed mp.OAuthToken
			session          mp.Session
			profile          mp.UserInfo
			errs             = map[string]error{}
		)
		var token, ticket mp.Token
		token, errs["access_token"] = c.AccessToken(ctx)
		ticket, errs["getticket"] = c.JSAPITicket(ctx, "ACCESS_TOKEN")
		oauth, errs["oauth2/access_token"] = c.ExchangeCode(ctx, "CODE")
		refreshed, errs["oauth2/refresh_token"] = c.RefreshOAuthToken(ctx, "REFRESH")
		profile, errs["userinfo"] = c.UserInfo(ctx, "ACCESS_TOKEN", "oTEST")
		session, errs["jscode2session"] = c.JSCode2Session(ctx, "JSCODE")

		valid := json.Valid(body)
		code, first := "", true
		for name, err := range errs {
			if !valid && !errors.Is(err, wechat.ErrMalformed) {
				t.Fatalf("%s: a body that is not JSON gave %v, want ErrMalformed", name, err)
			}
			got := wechat.CodeOf(err)
			if first {
				code, first = got, false
			} else if got != code {
				t.Fatalf("%s read errcode %q where another call read %q", name, got, code)
			}
			if got == "" {
				continue
			}
			if n, perr := strconv.Atoi(got); perr != nil || n == 0 || strconv.Itoa(n) != got {
				t.Fatalf("%s: platform code %q is not a non-zero errcode", name, got)
			}
			if retry := wechat.IsRetryable(err); retry != (got == "-1" || got == "45011") {
				t.Fatalf("%s: errcode %s retryable=%v", name, got, retry)
			}
		}

		if err := errs["oauth2/access_token"]; err == nil && oauth.IsSnapshotUser == 1 {
			t.Fatalf("a snapshot user came out of the code exchange: %+v", oauth)
		} else if errors.Is(err, wechat.ErrInvalidCode) && !errors.Is(err, mp.ErrSnapshotUser) &&
			code != "40029" && code != "40163" && code != "42003" {
			t.Fatalf("ErrInvalidCode for errcode %q: %v", code, err)
		}

		for name, tok := range map[string]mp.Token{"access_token": token, "getticket": ticket} {
			if errs[name] == nil && (tok.Value == "" || tok.ExpiresIn <= 0 || tok.ExpiresIn > 7*24*time.Hour) {
				t.Fatalf("%s: accepted %+v", name, tok)
			}
		}
		if errs["oauth2/access_token"] == nil && oauth.OpenID == "" || errs["jscode2session"] == nil && session.OpenID == "" {
			t.Fatalf("an openid-less answer was accepted: %+v %+v", oauth, session)
		}

		// What parsed re-encodes to an answer that parses equal.
		reparse := func(name string, v any, again func(*mp.Client) (any, error)) {
			if errs[name] != nil {
				return
			}
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: %+v does not encode: %v", name, v, err)
			}
			got, err := again(answeringClient(t, raw))
			if err != nil || got != v {
				t.Fatalf("%s: %s parsed as %+v, err %v; want %+v", name, raw, got, err, v)
			}
		}
		reparse("oauth2/access_token", oauth, func(c *mp.Client) (any, error) { return c.ExchangeCode(ctx, "CODE") })
		reparse("oauth2/refresh_token", refreshed, func(c *mp.Client) (any, error) { return c.RefreshOAuthToken(ctx, "REFRESH") })
		reparse("userinfo", profile, func(c *mp.Client) (any, error) { return c.UserInfo(ctx, "ACCESS_TOKEN", "oTEST") })
		reparse("jscode2session", session, func(c *mp.Client) (any, error) { return c.JSCode2Session(ctx, "JSCODE") })
	})
}
