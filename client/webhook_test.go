package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/client"
)

const (
	secret    = "whsec_0123456789abcdefghijklmnopqrstuv0123456789abcdefghij"
	oldSecret = "whsec_oldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldold"
	eventBody = `{"id":"evt_1","type":"notified","order_id":"o_1","seq":6,"from":"signed","to":"notified","at":"2026-11-30T02:13:29Z","command_id":"notify:o_1:4200:1990","actor":"wechat:notify","order":{"id":"o_1","merchant":"default","shop":"demo","out_trade_no":"wxf1","description":"tea","amount_fen":1990,"pay_api":"v3","client":"jsapi","state":"notified","paid_fen":1990,"refunded_fen":0,"version":6}}`
)

var signedAt = time.Unix(1796004802, 0)

// TestVerifyWebhook: a delivery verifies under its secret (any of several
// v1 during a rotation) within the tolerance, and in no other case.
func TestVerifyWebhook(t *testing.T) {
	body := []byte(eventBody)
	good := client.SignWebhook(secret, signedAt, body)
	old := client.SignWebhook(oldSecret, signedAt, body)
	rotated := old + "," + strings.TrimPrefix(good, "t=1796004802,")
	tests := []struct {
		name      string
		header    string
		body      string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"good", good, eventBody, signedAt, 0, nil},
		{"rotation, new secret second", rotated, eventBody, signedAt, 0, nil},
		{"an unknown scheme beside", good + ",v0=abc", eventBody, signedAt, 0, nil},
		{"spaces after commas", strings.ReplaceAll(rotated, ",", ", "), eventBody, signedAt, 0, nil},
		{"just within the tolerance", good, eventBody, signedAt.Add(5 * time.Minute), 0, nil},
		{"wrong secret", old, eventBody, signedAt, 0, client.ErrWebhookSignature},
		{"tampered body", good, strings.Replace(eventBody, "1990", "1", 1), signedAt, 0, client.ErrWebhookSignature},
		{"another time signed", strings.Replace(good, "t=1796004802", "t=1796004803", 1), eventBody, signedAt, 0, client.ErrWebhookSignature},
		{"replayed later", good, eventBody, signedAt.Add(5*time.Minute + time.Second), 0, client.ErrWebhookStale},
		{"from the future", good, eventBody, signedAt.Add(-6 * time.Minute), 0, client.ErrWebhookStale},
		{"a tighter tolerance", good, eventBody, signedAt.Add(time.Minute), 30 * time.Second, client.ErrWebhookStale},
		{"no header", "", eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"no t", strings.TrimPrefix(good, "t=1796004802,"), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"no v1", "t=1796004802", eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"two t", "t=1,t=1796004802," + strings.TrimPrefix(good, "t=1796004802,"), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"upper-case hex", good[:len("t=1796004802,v1=")] + strings.ToUpper(good[len("t=1796004802,v1="):]), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"short signature", good[:len(good)-2], eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"t with a sign", strings.Replace(good, "t=", "t=+", 1), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"t with a leading zero", strings.Replace(good, "t=", "t=0", 1), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"negative t", strings.Replace(good, "t=1796004802", "t=-1", 1), eventBody, signedAt, 0, client.ErrWebhookMalformed},
		{"a huge header", good + strings.Repeat(",v1="+strings.Repeat("0", 64), 100), eventBody, signedAt, 0, client.ErrWebhookMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := client.VerifyWebhook(secret, tc.header, []byte(tc.body), tc.now, tc.tolerance)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("VerifyWebhook: %v, want %v", err, tc.want)
			}
		})
	}
	if err := client.VerifyWebhook("", good, body, signedAt, 0); err == nil {
		t.Fatal("verified with no secret")
	}
}

// TestWebhookHandler: the handler answers 204 to a genuine delivery it
// handled, 500 when the handler failed (wxflow sends it again), and never
// calls the handler for a forged, replayed or inconsistent delivery.
func TestWebhookHandler(t *testing.T) {
	var got []client.Event
	fail := false
	h := &client.WebhookHandler{
		Secrets: []string{oldSecret, secret},
		Now:     func() time.Time { return signedAt.Add(time.Minute) },
		Handle: func(_ context.Context, e client.Event) error {
			if fail {
				return errors.New("database down")
			}
			got = append(got, e)
			return nil
		},
	}
	post := func(method, body, sig, id, typ string) int {
		r := httptest.NewRequest(method, "/hooks/wxflow", strings.NewReader(body))
		r.Header.Set(client.SignatureHeader, sig)
		r.Header.Set(client.EventIDHeader, id)
		r.Header.Set(client.EventTypeHeader, typ)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	good := client.SignWebhook(secret, signedAt, []byte(eventBody))
	if code := post(http.MethodPost, eventBody, good, "evt_1", "notified"); code != http.StatusNoContent || len(got) != 1 {
		t.Fatalf("a genuine delivery: %d, handled %d", code, len(got))
	}
	if e := got[0]; e.ID != "evt_1" || e.Type != client.EventNotified || !e.Order.Paid() || e.Seq != 6 || e.Subject() != "wxflow.evt.default.notified.o_1" {
		t.Fatalf("decoded %+v", e)
	}
	notAnEvent := `{"stream":"WXFLOW_CMD","seq":3}`
	otherOrder := strings.Replace(eventBody, `"order":{"id":"o_1"`, `"order":{"id":"o_2"`, 1)
	for _, tc := range []struct {
		name                      string
		method, body, sig, id, ty string
		want                      int
	}{
		{"forged", http.MethodPost, eventBody, client.SignWebhook("whsec_guess", signedAt, []byte(eventBody)), "evt_1", "notified", 401},
		{"replayed an hour later", http.MethodPost, eventBody, client.SignWebhook(secret, signedAt.Add(-time.Hour), []byte(eventBody)), "evt_1", "notified", 401},
		{"unsigned", http.MethodPost, eventBody, "", "evt_1", "notified", 401},
		{"headers of another event", http.MethodPost, eventBody, good, "evt_2", "notified", 400},
		{"headers of another type", http.MethodPost, eventBody, good, "evt_1", "refunded", 400},
		{"signed but not an event", http.MethodPost, notAnEvent, client.SignWebhook(secret, signedAt, []byte(notAnEvent)), "", "", 400},
		{"signed, another order inside", http.MethodPost, otherOrder, client.SignWebhook(secret, signedAt, []byte(otherOrder)), "evt_1", "notified", 400},
		{"a GET", http.MethodGet, "", good, "evt_1", "notified", 405},
	} {
		if code := post(tc.method, tc.body, tc.sig, tc.id, tc.ty); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the handler saw %d events, want only the genuine one", len(got))
	}
	// The old secret still verifies during a rotation.
	if code := post(http.MethodPost, eventBody, client.SignWebhook(oldSecret, signedAt, []byte(eventBody)), "evt_1", "notified"); code != 204 {
		t.Fatalf("signed with the old secret: %d", code)
	}
	fail = true
	if code := post(http.MethodPost, eventBody, good, "evt_1", "notified"); code != http.StatusInternalServerError {
		t.Fatalf("a failing handler: %d, want 500", code)
	}
	big := &client.WebhookHandler{Secrets: []string{secret}, MaxBody: 16, Handle: func(context.Context, client.Event) error { return nil }}
	w := httptest.NewRecorder()
	big.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(eventBody)))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over MaxBody: %d", w.Code)
	}
}

// TestSignatureVectors: the signatures wxflow's deliverer is tested
// against (computed with openssl, not with either signer) verify here, and
// SignWebhook makes them.
func TestSignatureVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		Name, Secret, Body, Header string
		T                          int64
	}
	if err := json.Unmarshal(b, &vs); err != nil || len(vs) < 3 {
		t.Fatalf("%d vectors: %v", len(vs), err)
	}
	for _, v := range vs {
		at := time.Unix(v.T, 0)
		if got := client.SignWebhook(v.Secret, at, []byte(v.Body)); got != v.Header {
			t.Errorf("%s: SignWebhook = %s, want %s", v.Name, got, v.Header)
		}
		if err := client.VerifyWebhook(v.Secret, v.Header, []byte(v.Body), at.Add(4*time.Minute), 0); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
		if err := client.VerifyWebhook(v.Secret+"x", v.Header, []byte(v.Body), at, 0); !errors.Is(err, client.ErrWebhookSignature) {
			t.Errorf("%s under another secret: %v", v.Name, err)
		}
	}
}

// FuzzParseSignatureHeader: any header parses or is refused, never
// panics; what parses has a time and 1 to 8 signatures of 32 bytes, and a
// header made by SignWebhook always parses to its own time.
func FuzzParseSignatureHeader(f *testing.F) {
	f.Add(client.SignWebhook(secret, signedAt, []byte(eventBody)))
	f.Add("t=1796004802,v1=" + strings.Repeat("ab", 32) + ",v1=" + strings.Repeat("cd", 32))
	f.Add("t=1,v0=x,v1=" + strings.Repeat("0", 64))
	f.Add("")
	f.Add("t=,v1=")
	f.Add(",,,=")
	f.Fuzz(func(t *testing.T, h string) {
		s, err := client.ParseSignatureHeader(h)
		if err != nil {
			if !errors.Is(err, client.ErrWebhookMalformed) {
				t.Fatalf("%q: %v is not ErrWebhookMalformed", h, err)
			}
			return
		}
		if s.Timestamp < 0 || len(s.V1) == 0 || len(s.V1) > 8 {
			t.Fatalf("%q parsed to %+v", h, s)
		}
		for _, v := range s.V1 {
			if len(v) != 32 {
				t.Fatalf("%q: a signature of %d bytes", h, len(v))
			}
		}
		again, err := client.ParseSignatureHeader(client.SignWebhook(secret, time.Unix(s.Timestamp, 0), []byte(h)))
		if err != nil || again.Timestamp != s.Timestamp {
			t.Fatalf("a header SignWebhook made does not parse back: %+v %v", again, err)
		}
	})
}

// BenchmarkVerifyWebhook: verifying one delivery of an event (about 1.5 KB)
// with two signatures, as during a rotation.
func BenchmarkVerifyWebhook(b *testing.B) {
	body := []byte(strings.Repeat(eventBody, 2))
	header := client.SignWebhook(oldSecret, signedAt, body) + "," + strings.TrimPrefix(client.SignWebhook(secret, signedAt, body), "t=1796004802,")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := client.VerifyWebhook(secret, header, body, signedAt, 0); err != nil {
			b.Fatal(err)
		}
	}
}
