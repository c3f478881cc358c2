package v2_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
	"github.com/wxflow/wxflow/workers/wechat/v2"
)

// TestDownloadBillSignVector: the downloadbill request of WeChat's bill
// reference, signed with the test key (MD5).
func TestDownloadBillSignVector(t *testing.T) {
	p := map[string]string{"appid": "wxd678efh567hg6787", "bill_date": "20240310", "bill_type": "ALL", "mch_id": "1900000109",
		"nonce_str": "Zx81nB0qLm3Kd7Vt", "sign_type": "MD5", "tar_type": "GZIP"}
	if got := v2.Sign(p, "TestOnlyApiV2Key0123456789ABCDEF", v2.SignMD5); got != "1F4E69594649474F22F3FCFE6AC95185" {
		t.Fatalf("sign %s", got)
	}
}

// TestDownloadBillAnswers reads downloadbill's answers as WeChat sends
// them: the gzip of the bill, and the failure XMLs (one element per line).
func TestDownloadBillAnswers(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("..", "bill", "testdata", "all_20240310.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Name = "1900000109All2024-03-10.csv"
	_, _ = zw.Write(golden)
	_ = zw.Close()
	fail := func(msg, code string) []byte {
		return []byte("<xml><return_code><![CDATA[FAIL]]></return_code>\n<return_msg><![CDATA[" + msg + "]]></return_msg>\n<error_code><![CDATA[" + code + "]]></error_code>\n</xml>")
	}
	tests := []struct {
		name      string
		status    int
		body      []byte
		want      error
		retryable bool
	}{
		{name: "gzip bill", status: 200, body: gz.Bytes()},
		{name: "no bill", status: 200, body: fail("No Bill Exist", "20002"), want: wechat.ErrNoBill},
		{name: "documents' casing", status: 200, body: fail("NO Bill Exist", "20002"), want: wechat.ErrNoBill},
		{name: "creating", status: 200, body: fail("Bill Creating", ""), want: wechat.ErrBillNotReady, retryable: true},
		{name: "system error", status: 200, body: fail("SYSTEMERROR", ""), retryable: true},
		{name: "bad date", status: 200, body: fail("invalid bill_date", "20001")},
		{name: "gateway", status: 502, body: []byte("bad gateway"), retryable: true},
		{name: "plain text where gzip was asked", status: 200, body: golden, retryable: true},
		{name: "cut gzip", status: 200, body: gz.Bytes()[:gz.Len()/2], retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				p, err := v2.ParseXML(body)
				if r.URL.Path != "/pay/downloadbill" || err != nil || p["bill_date"] != "20240310" || p["bill_type"] != "ALL" ||
					p["tar_type"] != "GZIP" || v2.Verify(p, "TestOnlyApiV2Key0123456789ABCDEF") != nil {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write(tt.body)
			}))
			defer srv.Close()
			m := &wechat.Merchant{Name: "test", AppID: "wxd678efh567hg6787", MchID: "1900000109", APIKey: "TestOnlyApiV2Key0123456789ABCDEF"}
			c, err := v2.NewClient(v2.Config{BaseURL: srv.URL, Merchant: m})
			if err != nil {
				t.Fatal(err)
			}
			data, err := c.DownloadBill(context.Background(), bill.NewDate(2024, 3, 10), bill.All)
			if tt.name == "gzip bill" {
				if err != nil || !bytes.Equal(data, golden) {
					t.Fatalf("%v", err)
				}
				return
			}
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) || wechat.IsRetryable(err) != tt.retryable {
				t.Fatalf("error %v (retryable %v), want %v retryable %v", err, wechat.IsRetryable(err), tt.want, tt.retryable)
			}
		})
	}
}
