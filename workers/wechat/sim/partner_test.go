package sim_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// multi is a simulator serving DevMerchants over HTTPS, the registry wxflow
// loads from its KeysDir, and a shop that keeps every notification raw.
type multi struct {
	sim     *sim.Sim
	url     string
	keysDir string
	http    *http.Client
	reg     *wechat.Registry
	shop    *httptest.Server
	notes   chan note
	stop    func()
}

type note struct {
	path   string
	header http.Header
	body   []byte
}

func startMulti(t *testing.T, keysDir, ledgerDir string) *multi {
	t.Helper()
	s, err := sim.New(sim.Config{KeysDir: keysDir, LedgerDir: ledgerDir, Merchants: sim.DevMerchants(), TimeScale: 0.001,
		RefundDelay: 1000 * time.Hour, BillsAtOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	mu := &multi{sim: s, keysDir: keysDir, notes: make(chan note, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = s.ServerTLSConfig()
	srv.StartTLS()
	var once bool
	mu.stop = func() {
		if !once {
			once = true
			srv.Close()
			cancel()
			<-done
		}
	}
	t.Cleanup(mu.stop)
	mu.url = srv.URL
	mu.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
	if mu.reg, err = wechat.LoadRegistry(keysDir, ""); err != nil {
		t.Fatal(err)
	}
	if len(mu.reg.Broken()) != 0 {
		t.Fatalf("broken merchants: %v", mu.reg.Broken())
	}
	mu.shop = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.notes <- note{path: r.URL.Path, header: r.Header.Clone(), body: body}
		if strings.HasPrefix(r.URL.Path, "/v2") {
			_, _ = w.Write(v2.NotifyReply(true, "OK"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(mu.shop.Close)
	return mu
}

// m is a merchant (order-taking) or provider by name.
func (mu *multi) m(t *testing.T, name string) *wechat.Merchant {
	t.Helper()
	if m, err := mu.reg.Merchant(name); err == nil {
		return m
	}
	for _, p := range mu.reg.Providers() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no merchant %s", name)
	return nil
}

// issue plays a user consenting (path /sim/oauth/code) or logging in
// (/sim/login) in app appid; it returns the code and the openid.
func (mu *multi) issue(t *testing.T, path, appid, user string) (string, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"appid": appid, "user": user})
	resp, err := mu.http.Post(mu.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Code, OpenID, AppID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.AppID != appid {
		t.Fatalf("%s for %s: %d %+v %v", path, appid, resp.StatusCode, out, err)
	}
	return out.Code, out.OpenID
}

// v3call signs a v3 call as merchant signer (key signs; mchid and serial
// in the header) and verifies the answer with WeChat Pay's key for signer.
func (mu *multi) v3call(t *testing.T, signer, key *wechat.Merchant, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	ts, nonce := time.Now().Unix(), v3.NonceStr()
	sig, err := v3.SignMessage(key.PrivateKey, v3.RequestMessage(method, path, ts, nonce, raw))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, mu.url+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", v3.AuthorizationHeader(signer.MchID, signer.SerialNo, nonce, ts, sig))
	req.Header.Set("Content-Type", "application/json")
	resp, err := mu.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		if err := v3.VerifyResponse(signer.WechatPayPublicKey, resp.Header, out, time.Now()); err != nil {
			t.Fatalf("%s %s: answer not signed with WeChat Pay's key for %s: %v", method, path, signer.Name, err)
		}
	}
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return resp.StatusCode, m
}

// v2call sends a v2 call as merchant m (mch_id, its API key; its client
// certificate on /secapi/) and verifies a SUCCESS answer's sign.
func (mu *multi) v2call(t *testing.T, m *wechat.Merchant, key wechat.Secret, path string, p map[string]string) map[string]string {
	t.Helper()
	p["mch_id"], p["nonce_str"] = m.MchID, v2.NonceStr()
	p["sign"] = v2.Sign(p, string(key), v2.SignMD5)
	hc := mu.http
	if strings.HasPrefix(path, "/secapi/") {
		hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: mu.sim.RootCAs(), Certificates: []tls.Certificate{*m.Certificate}}}}
	}
	resp, err := hc.Post(mu.url+path, "text/xml", bytes.NewReader(v2.EncodeXML(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out, err := v2.ParseXML(raw)
	if err != nil {
		t.Fatal(err)
	}
	if out["return_code"] == "SUCCESS" {
		if err := v2.Verify(out, string(m.APIKey)); err != nil {
			t.Fatalf("%s: answer not signed with %s's key: %v", path, m.Name, err)
		}
	}
	return out
}

// note waits for the next notification.
func (mu *multi) note(t *testing.T) note {
	t.Helper()
	select {
	case n := <-mu.notes:
		return n
	case <-time.After(60 * time.Second):
		t.Fatal("no notification")
	}
	return note{}
}

// pay plays the payer on /sim/pay with the pay sheet's parameters.
func (mu *multi) pay(t *testing.T, running string, params map[string]string) (int, map[string]string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"appid": running, "params": params})
	resp, err := mu.http.Post(mu.url+"/sim/pay", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func v3PayParams(t *testing.T, m *wechat.Merchant, appid, prepayID string) map[string]string {
	t.Helper()
	p, err := v3.PayParams(m.PrivateKey, appid, prepayID, v3.NonceStr(), time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appOf(t *testing.T, m *wechat.Merchant, kind wechat.AppKind) string {
	t.Helper()
	for _, a := range m.OwnApps() {
		if a.Kind == kind {
			return a.AppID
		}
	}
	t.Fatalf("%s has no %s", m.Name, kind)
	return ""
}

func TestMerchantsLayoutStableAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	mu := startMulti(t, dir, "")
	if got := mu.reg.Names(); strings.Join(got, ",") != "default,provider-sub1,provider-sub2,second" {
		t.Fatalf("order-taking merchants = %v", got)
	}
	def, sec, prov := mu.m(t, "default"), mu.m(t, "second"), mu.m(t, "provider")
	seen := map[string]string{}
	for _, m := range []*wechat.Merchant{def, sec, prov} {
		for _, id := range []string{m.MchID, m.SerialNo, m.WechatPayPublicKeyID, string(m.APIKey), string(m.APIv3Key)} {
			if other, dup := seen[id]; dup {
				t.Fatalf("%s and %s share %q: WeChat keys each merchant apart", m.Name, other, id)
			}
			seen[id] = m.Name
		}
	}
	if def.WechatPayPublicKey.Equal(sec.WechatPayPublicKey) || def.PrivateKey.Equal(prov.PrivateKey) {
		t.Fatal("two merchants share a key pair")
	}
	sub1, sub2 := mu.m(t, "provider-sub1"), mu.m(t, "provider-sub2")
	if sub1.MchID != prov.MchID || sub1.SubMchID == "" || sub1.SubMchID == sub2.SubMchID || len(sub1.Apps) != 1 ||
		len(sub2.Apps) != 0 || sub2.AppID != prov.AppID {
		t.Fatalf("sub-merchants: %+v / %+v", sub1.LogValue(), sub2.LogValue())
	}
	if k := mu.sim.Keys(); k.Merchant.Name != "default" || k.Registry == nil || k.Merchant.MchID != def.MchID {
		t.Fatalf("Keys: merchant %s", k.Merchant.Name)
	}
	mu.stop()
	again := startMulti(t, dir, "")
	for _, n := range []string{"default", "second", "provider", "provider-sub1", "provider-sub2"} {
		a, b := mu.m(t, n), again.m(t, n)
		if a.MchID != b.MchID || a.SubMchID != b.SubMchID || a.SerialNo != b.SerialNo || a.AppID != b.AppID {
			t.Fatalf("%s changed across a restart", n)
		}
	}
}

func TestOpenIDsAndCodesPerApp(t *testing.T) {
	mu := startMulti(t, t.TempDir(), "")
	def, sec := mu.m(t, "default"), mu.m(t, "second")
	oaA, oaB := appOf(t, def, wechat.AppOfficialAccount), appOf(t, sec, wechat.AppOfficialAccount)
	_, inA := mu.issue(t, "/sim/oauth/code", oaA, "alice")
	code, inB := mu.issue(t, "/sim/oauth/code", oaB, "alice")
	_, againA := mu.issue(t, "/sim/oauth/code", oaA, "alice")
	if inA == inB || inA != againA {
		t.Fatalf("alice: %s in A, %s in B, %s in A again: want one openid per app", inA, inB, againA)
	}
	secretOf := func(m *wechat.Merchant, appid string) string {
		a, _ := m.App(appid)
		return string(a.AppSecret)
	}
	exchange := func(appid, secret, code string) map[string]any {
		q := url.Values{"appid": {appid}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}
		resp, err := mu.http.Get(mu.url + "/sns/oauth2/access_token?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	// B's code exchanged by A (with A's own secret) is refused as WeChat does.
	if out := exchange(oaA, secretOf(def, oaA), code); out["errcode"] != float64(40029) {
		t.Fatalf("B's code exchanged by A: %v", out)
	}
	// A's secret does not open B.
	if out := exchange(oaB, secretOf(def, oaA), code); out["errcode"] != float64(40125) {
		t.Fatalf("B with A's secret: %v", out)
	}
	if out := exchange(oaB, secretOf(sec, oaB), code); out["openid"] != inB {
		t.Fatalf("B's own exchange: %v", out)
	}
	// A mini-program's wx.login code: its own openid, and jscode2session by it only.
	mini := appOf(t, def, wechat.AppMiniProgram)
	js, inMini := mu.issue(t, "/sim/login", mini, "alice")
	if inMini == inA {
		t.Fatal("alice has the same openid in the mini-program and the Official Account")
	}
	q := url.Values{"appid": {mini}, "secret": {secretOf(def, mini)}, "js_code": {js}, "grant_type": {"authorization_code"}}
	resp, err := mu.http.Get(mu.url + "/sns/jscode2session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var sess map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if sess["openid"] != inMini {
		t.Fatalf("jscode2session: %v", sess)
	}
	// An Official Account is no mini-program: /sim/login refuses it.
	resp, err = mu.http.Post(mu.url+"/sim/login", "application/json", strings.NewReader(`{"appid":"`+oaB+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wx.login in an Official Account: %d", resp.StatusCode)
	}
}
