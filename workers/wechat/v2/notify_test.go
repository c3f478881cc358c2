package v2_test

import (
	"errors"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/wechattest"
)

// vectorClient is a client for the vectors' merchant (appid wxd678efh567hg6787, mch_id 1900000109).
func vectorClient(t testing.TB) (*v2.Client, wechattest.Vectors) {
	vs := wechattest.Load(t)
	m := &wechat.Merchant{Name: "test", AppID: "wxd678efh567hg6787", MchID: "1900000109", APIKey: wechat.Secret(vs.Keys.V2APIKey)}
	c, err := v2.NewClient(v2.Config{BaseURL: "https://unused", Merchant: m})
	if err != nil {
		t.Fatal(err)
	}
	return c, vs
}

func TestParseNotifyVector(t *testing.T) {
	c, vs := vectorClient(t)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(t, "v2_payment_notify_verify").Decode(t, "inputs", &in)
	n, err := c.ParseNotify([]byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if !n.Paid || n.TotalFen != 1 || n.OutTradeNo != "wxflow-20231115-0001" || n.TransactionID == "" {
		t.Fatalf("notification = %+v", n)
	}
	for name, body := range map[string]string{
		"tampered amount": replaceOnce(in.RawBody, "<total_fee>1</total_fee>", "<total_fee>2</total_fee>"),
		"no sign":         replaceOnce(in.RawBody, "<sign><![CDATA[48AC6329C55998A6327A738A53775821]]></sign>", ""),
	} {
		if _, err := c.ParseNotify([]byte(body)); !errors.Is(err, wechat.ErrSignature) {
			t.Errorf("%s: err = %v, want ErrSignature", name, err)
		}
	}
}

func TestParseRefundNotifyVector(t *testing.T) {
	c, vs := vectorClient(t)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(t, "v2_refund_notify_req_info").Decode(t, "inputs", &in)
	n, err := c.ParseRefundNotify([]byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != "SUCCESS" || n.OutRefundNo != "wxflow-r-20231116-0001" || n.RefundFen != 1 || n.Fields["refund_recv_accout"] == "" {
		t.Fatalf("refund notification = %+v", n)
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func FuzzParseNotify(f *testing.F) {
	c, vs := vectorClient(f)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(f, "v2_payment_notify_verify").Decode(f, "inputs", &in)
	f.Add([]byte(in.RawBody))
	f.Add([]byte(`<xml><return_code>SUCCESS</return_code></xml>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := c.ParseNotify(body)
		if err != nil {
			return
		}
		// Whatever was accepted carries a valid signature over every field.
		p, _ := v2.ParseXML(body)
		if v2.Verify(p, string(vs.Keys.V2APIKey)) != nil || n.OutTradeNo == "" {
			t.Fatalf("accepted an unsigned notification: %q", body)
		}
	})
}

func FuzzParseRefundNotify(f *testing.F) {
	c, vs := vectorClient(f)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(f, "v2_refund_notify_req_info").Decode(f, "inputs", &in)
	f.Add([]byte(in.RawBody))
	f.Fuzz(func(t *testing.T, body []byte) {
		if n, err := c.ParseRefundNotify(body); err == nil && (n.OutRefundNo == "" || n.Status == "") {
			t.Fatalf("accepted an incomplete refund notification: %+v", n)
		}
	})
}

// TestParseNotifyAmounts: a correctly signed notification whose total_fee is
// not plain decimal digits is malformed, never read as a guess ("1.5" as 1,
// "0x64" as 100, "010" as 8).
func TestParseNotifyAmounts(t *testing.T) {
	c, vs := vectorClient(t)
	var in struct {
		RawBody string `json:"raw_body"`
	}
	vs.ByID(t, "v2_payment_notify_verify").Decode(t, "inputs", &in)
	params, err := v2.ParseXML([]byte(in.RawBody))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fee  string
		want int64 // -1: malformed
	}{
		{"1", 1}, {"0", 0}, {"100", 100}, {"9223372036854775807", 9223372036854775807},
		{"1.5", -1}, {"0x64", -1}, {"010", -1}, {"1e3", -1}, {"100abc", -1}, {"1_000", -1},
		{"-1", -1}, {"+1", -1}, {" 1", -1}, {"", -1}, {"9223372036854775808", -1},
	} {
		p := map[string]string{}
		for k, v := range params {
			p[k] = v
		}
		p["total_fee"] = tc.fee
		delete(p, "sign")
		p["sign"] = v2.Sign(p, vs.Keys.V2APIKey, v2.SignType(p["sign_type"]))
		n, err := c.ParseNotify(v2.EncodeXML(p))
		switch {
		case tc.want < 0 && !errors.Is(err, wechat.ErrMalformed):
			t.Errorf("total_fee %q: err = %v, want ErrMalformed", tc.fee, err)
		case tc.want >= 0 && (err != nil || n.TotalFen != tc.want):
			t.Errorf("total_fee %q: %+v, %v; want %d fen", tc.fee, n, err, tc.want)
		}
	}
}
