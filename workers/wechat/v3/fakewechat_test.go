package v3_test

import (
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v3"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// answer is what the fake WeChat sends back for one request. Body is signed
// as it is, then Tamper (when set) may change the headers or the body that
// goes on the wire, which is how the tests forge bad responses.
type answer struct {
	Status int
	Body   string
	// SignedAt is the Wechatpay-Timestamp; time.Now when zero.
	SignedAt time.Time
	// SignKey signs the response; WeChat's key when nil.
	SignKey *rsa.PrivateKey
	// Serial goes into Wechatpay-Serial; the merchant's PUB_KEY_ID when empty.
	Serial string
	Tamper func(h http.Header, body []byte) []byte
}

// seen is one request as the fake WeChat received it.
type seen struct {
	Method, RequestURI string
	Header             http.Header
	Body               []byte
}

// fakeWeChat is an httptest server playing WeChat Pay v3 with the package's
// own server-side primitives: it checks each request as WeChat would
// (Authorization over the raw request URI and body, the headers every call
// carries) and signs its answer with the WeChat Pay private key of the vectors.
type fakeWeChat struct {
	t        *testing.T
	srv      *httptest.Server
	merchant *wechat.Merchant
	wxKey    *rsa.PrivateKey
	answer   func(r *http.Request, body []byte) answer

	mu   sync.Mutex
	reqs []seen
}

func newFakeWeChat(t *testing.T, answer func(r *http.Request, body []byte) answer) *fakeWeChat {
	t.Helper()
	vs := wechattest.Load(t)
	wxKey, err := wechat.ParseRSAPrivateKey([]byte(vs.Keys.V3.WechatpayPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeWeChat{t: t, merchant: testMerchant(t, vs), wxKey: wxKey, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client is a Client of the vectors' merchant pointed at the fake.
func (f *fakeWeChat) client(t *testing.T) *v3.Client {
	t.Helper()
	c, err := v3.NewClient(v3.Config{BaseURL: f.srv.URL + "/", Merchant: f.merchant, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requests returns what the fake received so far.
func (f *fakeWeChat) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func (f *fakeWeChat) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake WeChat: read body: %v", err)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()

	var a answer
	if problem := f.checkRequest(r, body); problem != "" {
		f.t.Errorf("fake WeChat: %s %s: %s", r.Method, r.RequestURI, problem)
		a = answer{Status: http.StatusUnauthorized, Body: `{"code":"SIGN_ERROR","message":"` + problem + `"}`}
	} else {
		a = f.answer(r, body)
	}
	f.write(w, a)
}

// checkRequest is WeChat's side of v3 request signing: it checks the
// Authorization header as WeChat does; "" means the request is fine.
func (f *fakeWeChat) checkRequest(r *http.Request, body []byte) string {
	m := f.merchant
	auth, err := v3.ParseAuthorization(r.Header.Get("Authorization"))
	switch {
	case err != nil:
		return err.Error()
	case auth.MchID != m.MchID || auth.SerialNo != m.SerialNo:
		return "Authorization names another merchant or certificate"
	case r.Header.Get("Accept") != "application/json":
		return "Accept is " + r.Header.Get("Accept")
	case r.Header.Get("User-Agent") == "":
		return "no User-Agent"
	case r.Header.Get("Wechatpay-Serial") != m.WechatPayPublicKeyID:
		return "Wechatpay-Serial is " + r.Header.Get("Wechatpay-Serial")
	case len(body) > 0 && r.Header.Get("Content-Type") != "application/json":
		return "Content-Type is " + r.Header.Get("Content-Type")
	case len(body) > 0 && !json.Valid(body):
		return "body is not JSON"
	}
	// The signature covers the URI exactly as sent, escapes included.
	if err := v3.VerifyRequest(&m.PrivateKey.PublicKey, r.Method, r.RequestURI, body, auth, time.Now()); err != nil {
		return err.Error()
	}
	return ""
}

func (f *fakeWeChat) write(w http.ResponseWriter, a answer) {
	at, key, serial := a.SignedAt, a.SignKey, a.Serial
	if at.IsZero() {
		at = time.Now()
	}
	if key == nil {
		key = f.wxKey
	}
	if serial == "" {
		serial = f.merchant.WechatPayPublicKeyID
	}
	body := []byte(a.Body)
	h, err := v3.SignResponseHeaders(key, serial, body, at)
	if err != nil {
		f.t.Errorf("fake WeChat: sign: %v", err)
		return
	}
	if a.Tamper != nil {
		body = a.Tamper(h, body)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	if len(body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(body)
}
