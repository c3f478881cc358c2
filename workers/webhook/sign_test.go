package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/webhook"
)

// signatureVector is one row of testdata/signatures.json: the secret, the
// time and the raw body, and the Wxflow-Signature they make. The expected
// headers were computed with `openssl dgst -sha256 -hmac`, not with Sign.
type signatureVector struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	T      int64  `json:"t"`
	Body   string `json:"body"`
	Header string `json:"header"`
}

func readVectors(t *testing.T) []signatureVector {
	t.Helper()
	b, err := os.ReadFile("testdata/signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []signatureVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestSignVectors(t *testing.T) {
	vs := readVectors(t)
	if len(vs) < 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			if got := webhook.Sign(v.Secret, time.Unix(v.T, 0), []byte(v.Body)); got != v.Header {
				t.Fatalf("Sign = %s, want %s", got, v.Header)
			}
			if err := verifySignature(v.Secret, v.Header, []byte(v.Body), time.Unix(v.T, 0).Add(4*time.Minute)); err != nil {
				t.Fatalf("the documented verification refuses the vector: %v", err)
			}
		})
	}
}

// TestVerificationRefuses: the documented verification refuses a changed
// body, another secret, a header of another time, a replay past the
// tolerance and malformed headers.
func TestVerificationRefuses(t *testing.T) {
	v := readVectors(t)[0]
	at := time.Unix(v.T, 0)
	for _, tc := range []struct {
		name, secret, header, body string
		now                        time.Time
	}{
		{"changed body", v.Secret, v.Header, v.Body + " ", at},
		{"another secret", v.Secret + "x", v.Header, v.Body, at},
		{"the prefix left out of the key", strings.TrimPrefix(v.Secret, "whsec_"), v.Header, v.Body, at},
		{"another time", v.Secret, strings.Replace(v.Header, "t=1700000000", "t=1700000001", 1), v.Body, at},
		{"replayed after the tolerance", v.Secret, v.Header, v.Body, at.Add(webhook.Tolerance + time.Second)},
		{"from the future", v.Secret, v.Header, v.Body, at.Add(-webhook.Tolerance - time.Second)},
		{"no v1", v.Secret, "t=1700000000", v.Body, at},
		{"no t", v.Secret, v.Header[len("t=1700000000,"):], v.Body, at},
		{"empty", v.Secret, "", v.Body, at},
	} {
		if err := verifySignature(tc.secret, tc.header, []byte(tc.body), tc.now); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// verifySignature is the receiver's check as docs/API.md shows it (the
// standard library only): the tests' receivers verify every delivery with it.
func verifySignature(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed Wxflow-Signature")
	}
	if age := now.Sub(time.Unix(t, 0)); age > 5*time.Minute || age < -5*time.Minute {
		return errors.New("signature too old (or from the future): a replay?")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return errors.New("signature does not match")
	}
	return nil
}

func ExampleSign() {
	body := []byte(`{"id":"evt_1","type":"notified"}`)
	fmt.Println(webhook.Sign("whsec_0123456789abcdefghijklmnopqrstuv0123456789abcdefghij", time.Unix(1700000000, 0), body))
	// Output: t=1700000000,v1=552bdd14f8063b36719469b0f29d62b166819e886055fab6af541b9be91f9f64
}
