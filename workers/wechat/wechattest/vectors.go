// Package wechattest loads the verified WeChat signing and encryption test
// vectors (workers/wechat/testdata/vectors.json: WeChat's official examples
// and our own, each recomputed and matching; every key in it is test-only)
// for the protocol packages' tests and the simulator's.
package wechattest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Vectors is the parsed vectors file.
type Vectors struct {
	Keys struct {
		V2APIKey string `json:"v2_api_key_test_only"`
		V3       struct {
			MerchantPrivateKeyPEM  string `json:"merchant_private_key_pem"`
			MerchantPublicKeyPEM   string `json:"merchant_public_key_pem"`
			MerchantSerialNo       string `json:"merchant_serial_no"`
			MchID                  string `json:"mchid"`
			WechatpayPrivateKeyPEM string `json:"wechatpay_private_key_pem"`
			WechatpayPublicKeyPEM  string `json:"wechatpay_public_key_pem"`
			WechatpayPublicKeyID   string `json:"wechatpay_public_key_id"`
			APIv3Key               string `json:"apiv3_key"`
		} `json:"v3"`
	} `json:"keys"`
	Vectors []Vector `json:"vectors"`
}

// Vector is one test vector; its fields vary by kind, so they stay raw.
type Vector map[string]json.RawMessage

// ID returns the vector's id.
func (v Vector) ID() string { return v.String("id") }

// String returns a string field, or "" when absent or not a string.
func (v Vector) String(field string) string {
	var s string
	_ = json.Unmarshal(v[field], &s)
	return s
}

// Decode unmarshals a field into out, failing the test on error.
func (v Vector) Decode(t testing.TB, field string, out any) {
	t.Helper()
	if err := json.Unmarshal(v[field], out); err != nil {
		t.Fatalf("vector %s field %s: %v", v.ID(), field, err)
	}
}

// ByID returns the vector with that id, failing the test when absent.
func (vs Vectors) ByID(t testing.TB, id string) Vector {
	t.Helper()
	for _, v := range vs.Vectors {
		if v.ID() == id {
			return v
		}
	}
	t.Fatalf("no vector %q", id)
	return nil
}

// Load reads workers/wechat/testdata/vectors.json.
func Load(t testing.TB) Vectors {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "testdata", "vectors.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("vectors: %v", err)
	}
	var vs Vectors
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("vectors: %v", err)
	}
	return vs
}
