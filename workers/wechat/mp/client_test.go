package mp_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/mp"
)

// failingTransport fails every request the way a dead network does.
type failingTransport struct{}

// RoundTrip refuses the call.
func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}

// TestFailedCallKeepsSecretsOutOfErrors: the appsecret, a code and an
// access_token travel in the query of WeChat's platform calls; when a call
// fails, its error (which reaches the logs) must not quote them.
func TestFailedCallKeepsSecretsOutOfErrors(t *testing.T) {
	const secret, code, token = "APPSECRET-must-not-leak", "CODE-must-not-leak", "TOKEN-must-not-leak"
	c, err := mp.NewClient(mp.Config{BaseURL: "https://api.weixin.example", AppID: "wx520c15f417810387",
		AppSecret: secret, HTTPClient: &http.Client{Transport: failingTransport{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"cgi-bin/token":      func() error { _, err := c.AccessToken(ctx); return err },
		"getticket":          func() error { _, err := c.JSAPITicket(ctx, token); return err },
		"sns/oauth2":         func() error { _, err := c.ExchangeCode(ctx, code); return err },
		"sns/jscode2session": func() error { _, err := c.JSCode2Session(ctx, code); return err },
	}
	for name, call := range calls {
		err := call()
		if err == nil || !wechat.IsRetryable(err) {
			t.Errorf("%s: err = %v, want a retryable failure", name, err)
			continue
		}
		for _, s := range []string{secret, code, token} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error quotes %s: %v", name, s, err)
			}
		}
	}
}

// TestAnswerCutShortIsRetried: an answer that ends before its JSON does
// (empty, or cut off on the way) is asked again; one that does not read
// otherwise is WeChat's, and final. A code exchange asked again after its
// answer was lost is answered 40163, and the order fails safely.
func TestAnswerCutShortIsRetried(t *testing.T) {
	for _, tc := range []struct {
		body      string
		retryable bool
	}{
		{"", true},
		{"  \n", true},
		{`{"access_token":"ACCESS`, true},
		{`{"access_token":"ACCESS","expires_in":7200`, true},
		{"<html>502 Bad Gateway</html>", false},
		{`{"access_token":"ACCESS"}}`, false},
		{`{"errcode":40163,"errmsg":"code been used"}`, false},
	} {
		_, err := answeringClient(t, []byte(tc.body)).ExchangeCode(context.Background(), "CODE")
		if err == nil || wechat.IsRetryable(err) != tc.retryable {
			t.Errorf("answer %q: err = %v, want retryable %v", tc.body, err, tc.retryable)
		}
	}
}
