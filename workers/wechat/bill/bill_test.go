package bill_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// The worked example of the trade bill (merchant 1900000109, 2024-03-10,
// rate 0.60%): payment A 88.00, payment B 12.34, a partial refund of A
// 30.00. The files in testdata are its ALL, SUCCESS and REFUND bills, byte
// for byte (BOM, CRLF), with the SHA-1 a v3 download's hash_value carries.
var golden = []struct {
	file  string
	typ   bill.Type
	size  int
	sha1  string
	rows  func() []bill.Row
	count int
}{
	{"all_20240310.csv", bill.All, 1417, "503662395539b3f44a64acb832c9de8047332041", exampleAll, 3},
	{"success_20240310.csv", bill.Success, 917, "aebc1abfa1446a19656e19bd068a09fc3de212a6", func() []bill.Row { return exampleAll()[:2] }, 2},
	{"refund_20240310.csv", bill.Refund, 977, "173c903fb070cc0fa1efe612622d3515e3f7c19c", exampleRefund, 1},
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, bill.Beijing())
	if err != nil {
		panic(err)
	}
	return t
}

func payment(when, txid, outTradeNo, openid, bank string, fen int64, fee bill.Fee) bill.Row {
	return bill.Row{TradeTime: at(when), AppID: "wxd678efh567hg6787", MchID: "1900000109", SubMchID: "0",
		TransactionID: txid, OutTradeNo: outTradeNo, OpenID: openid, TradeType: "JSAPI", TradeState: bill.StateSuccess,
		BankType: bank, Currency: "CNY", SettlementFen: fen, Body: "wxflow-测试商品", Fee: fee, Rate: 60, TotalFen: fen}
}

func exampleAll() []bill.Row {
	a := payment("2024-03-10 09:15:02", "4200002101202403101234567890", "wxflow-20240310-0001", "oTEST-openid-0000000000000001", "OTHERS", 8800, bill.FeeFromFen(53))
	b := payment("2024-03-10 14:40:51", "4200002102202403105678901234", "wxflow-20240310-0002", "oTEST-openid-0000000000000002", "CFT", 1234, bill.FeeFromFen(7))
	r := a
	r.TradeTime, r.TradeState, r.SettlementFen, r.TotalFen = at("2024-03-10 18:02:05"), bill.StateRefund, 0, 0
	r.RefundID, r.OutRefundNo, r.RefundFen, r.RequestedRefundFen = "50300000012024031000000000001", "wxflow-R-20240310-0001", 3000, 3000
	r.RefundType, r.RefundStatus, r.Fee = "ORIGINAL", "SUCCESS", bill.FeeFromFen(-18)
	return []bill.Row{a, b, r}
}

func exampleRefund() []bill.Row {
	r := exampleAll()[2]
	r.TradeTime = at("2024-03-10 09:15:02") // a REFUND bill shows the payment's time
	r.RefundRequestedAt, r.RefundSucceededAt = at("2024-03-10 18:02:05"), at("2024-03-10 18:02:08")
	return []bill.Row{r}
}

func TestGoldenBills(t *testing.T) {
	for _, g := range golden {
		t.Run(g.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", g.file))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha1.Sum(want)
			if len(want) != g.size || hex.EncodeToString(sum[:]) != g.sha1 {
				t.Fatalf("fixture %s: %d bytes, SHA-1 %x; the worked example says %d bytes, %s", g.file, len(want), sum, g.size, g.sha1)
			}
			got, err := bill.Format(g.typ, g.rows())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Format printed\n%q\nwant\n%q", got, want)
			}
			b, err := bill.Parse(want)
			if err != nil {
				t.Fatal(err)
			}
			if b.Type != g.typ || b.Legacy || len(b.Rows) != g.count || b.Summary.Count != g.count {
				t.Fatalf("parsed type %s legacy %v, %d rows, summary %+v", b.Type, b.Legacy, len(b.Rows), b.Summary)
			}
			for i, r := range g.rows() {
				if !sameRow(b.Rows[i], r) {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, b.Rows[i], r)
				}
			}
		})
	}
}

// sameRow compares rows with times as instants.
func sameRow(a, b bill.Row) bool {
	if !a.TradeTime.Equal(b.TradeTime) || !a.RefundRequestedAt.Equal(b.RefundRequestedAt) || !a.RefundSucceededAt.Equal(b.RefundSucceededAt) {
		return false
	}
	a.TradeTime, a.RefundRequestedAt, a.RefundSucceededAt = b.TradeTime, b.RefundRequestedAt, b.RefundSucceededAt
	return a == b
}

func TestGoldenSummary(t *testing.T) {
	b, err := bill.Parse(mustRead(t, "all_20240310.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := bill.Summary{Count: 3, SettlementFen: 10034, RefundFen: 3000, Fee: bill.FeeFromFen(42), TotalFen: 10034, RequestedRefundFen: 3000}
	if b.Summary != want {
		t.Fatalf("summary %+v, want %+v", b.Summary, want)
	}
	if got := b.Summary.Fee.String(); got != "0.42000" {
		t.Fatalf("fee total prints %q", got)
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseLayouts reads what real merchants get besides the current
// layout: no BOM, LF line ends, the legacy 24-column header with its
// five-column summary, commas inside values, the sandbox's summary without
// back-ticks.
func TestParseLayouts(t *testing.T) {
	allText := strings.TrimPrefix(string(mustRead(t, "all_20240310.csv")), "\uFEFF")
	legacyHeader := "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率"
	legacyRow := "`2017-03-01 10:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`1004400740201409030005092168,`1409811653,`ohVuTvIb8fTp8OlMngb7CNnGdH5s,`JSAPI,`SUCCESS,`CFT,`CNY,`0.02,`0.00,`0,`0,`0,`0,`,`,`商品,`,`0.00000,`0.60%"
	tests := []struct {
		name       string
		data       string
		typ        bill.Type
		legacy     bool
		rows       int
		check      func(*bill.Bill) bool
		checkDescr string
	}{
		{name: "no BOM, LF", data: strings.ReplaceAll(allText, "\r\n", "\n"), typ: bill.All, rows: 3},
		{name: "no final line end", data: strings.TrimSuffix(allText, "\r\n"), typ: bill.All, rows: 3},
		{name: "legacy 24 columns", data: legacyHeader + "\r\n" + legacyRow + "\r\n总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额\r\n`1,`0.02,`0.0,`0.0,`0\r\n",
			typ: bill.All, legacy: true, rows: 1,
			check: func(b *bill.Bill) bool {
				r := b.Rows[0]
				return r.TotalFen == 2 && r.SettlementFen == 2 && r.SubMchID == "0" && b.Summary.TotalFen == 2
			},
			checkDescr: "总金额 read as the order total (and settlement), 子商户号 as 特约商户号"},
		{name: "comma in a value", data: strings.Replace(allText, "wxflow-测试商品,`,`0.07000", "wxflow-测试商品,`{\"a\":1,\"b\":2},`0.07000", 1), typ: bill.All, rows: 3,
			check: func(b *bill.Bill) bool { return b.Rows[1].Attach == `{"a":1,"b":2}` }, checkDescr: "attach keeps its comma"},
		{name: "sandbox summary without back-ticks", data: strings.Replace(allText, "`3,`100.34", "3,`100.34", 1), typ: bill.All, rows: 3},
		{name: "an unknown column is kept, not read", data: strings.Replace(strings.Replace(allText, "费率备注\r\n", "费率备注,新列\r\n", 1), ",`\r\n", ",`,`x\r\n", -1),
			typ: bill.All, legacy: true, rows: 3,
			check: func(b *bill.Bill) bool { return len(b.Columns) == 28 }, checkDescr: "28 columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bill.Parse([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if b.Type != tt.typ || b.Legacy != tt.legacy || len(b.Rows) != tt.rows {
				t.Fatalf("type %s legacy %v rows %d", b.Type, b.Legacy, len(b.Rows))
			}
			if tt.check != nil && !tt.check(b) {
				t.Fatalf("%s: %+v", tt.checkDescr, b)
			}
		})
	}
}

// TestParseRefuses: files that are not whole bills are refused with the
// line at fault, never read short.
func TestParseRefuses(t *testing.T) {
	all := string(mustRead(t, "all_20240310.csv"))
	lines := strings.SplitAfter(all, "\r\n")
	tests := []struct{ name, data, want string }{
		{"empty", "", "empty"},
		{"only a BOM", "\uFEFF\r\n", "empty"},
		{"XML error answer", "<xml><return_code><![CDATA[FAIL]]></return_code></xml>", "not a trade bill header"},
		{"cut after the rows", strings.Join(lines[:4], ""), "no summary"},
		{"cut inside a row", strings.Join(lines[:2], "") + lines[2][:40], "values for 27 columns"},
		{"a row dropped", lines[0] + lines[1] + lines[3] + lines[4] + lines[5], "counts 3 rows, the bill has 2"},
		{"an amount altered", strings.Replace(all, "`88.00,`0.00,`0,`0", "`98.00,`0.00,`0,`0", 1), "not the sum of the rows"},
		{"a fee altered", strings.Replace(all, "`0.53000", "`0.63000", 1), "not the sum of the rows"},
		{"float amount", strings.Replace(all, "`12.34,`0.00,`0,", "`1.234e1,`0.00,`0,", 1), "应结订单金额"},
		{"negative amount", strings.Replace(all, "`12.34,`0.00,`0,", "`-12.34,`0.00,`0,", 1), "应结订单金额"},
		{"three decimals", strings.Replace(all, "`12.34,`0.00,`0,", "`12.340,`0.00,`0,", 1), "应结订单金额"},
		{"bad time", strings.Replace(all, "2024-03-10 14:40:51", "2024-03-10T14:40:51", 1), "交易时间"},
		{"a line after the summary", all + "`x\r\n", "nothing after"},
		{"text between rows", lines[0] + lines[1] + "oops\r\n" + strings.Join(lines[2:], ""), "neither a row"},
		{"a column twice", strings.Replace(all, "设备号", "商户号", 1), "twice"},
		{"not UTF-8", "\xff\xfe交易", "not UTF-8"},
		{"summary count not a number", strings.Replace(all, "`3,`100.34", "`x,`100.34", 1), "总交易单数"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bill.Parse([]byte(tt.data))
			if err == nil {
				t.Fatal("parsed")
			}
			if !errors.Is(err, wechat.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFormatKeepsValuesInTheirFields(t *testing.T) {
	rows := exampleAll()
	rows[0].Body = "two\r\nlines ,`and a delimiter"
	data, err := bill.Format(bill.All, rows)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bill.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Rows[0].Body; got != "two  lines ,'and a delimiter" {
		t.Fatalf("body read back as %q", got)
	}
	if _, err := bill.Format("RECHARGE_REFUND", rows); err == nil {
		t.Fatal("printed an unknown type")
	}
}

func TestFeeRounding(t *testing.T) {
	tests := []struct {
		rate bill.Rate
		fen  int64
		want string
	}{
		{60, 8800, "0.53000"},   // 0.528
		{60, 1234, "0.07000"},   // 0.07404
		{60, 3000, "0.18000"},   // 0.18
		{60, -3000, "-0.18000"}, // a refund gives its fee back
		{54, 6000, "0.32000"},   // 0.324
		{54, -5000, "-0.27000"}, // 0.27
		{60, 1, "0.00000"},      // no minimum fee
		{60, 600, "0.04000"},    // 0.036
		{100, 50, "0.01000"},    // exactly half a fen: half away from zero
		{100, -50, "-0.01000"},
	}
	for _, tt := range tests {
		if got := tt.rate.FeeOf(tt.fen).String(); got != tt.want {
			t.Errorf("%s of %s = %s, want %s", tt.rate, bill.FormatFen(tt.fen), got, tt.want)
		}
	}
}

func TestMoneyText(t *testing.T) {
	for _, s := range []string{"0.00", "88.00", "1300.00", "0.01"} {
		n, err := bill.ParseFen(s)
		if err != nil || bill.FormatFen(n) != s {
			t.Errorf("%s → %d, %v → %s", s, n, err, bill.FormatFen(n))
		}
	}
	for _, s := range []string{"", ".5", "1.", "+1", "1,000.00", " 1", "1e3", "0x10", "1.001", "9999999999999999"} {
		if _, err := bill.ParseFen(s); err == nil {
			t.Errorf("ParseFen(%q) passed", s)
		}
	}
	for _, s := range []string{"0.00000", "-0.18000", "7.79000", "0.00100"} {
		f, err := bill.ParseFee(s)
		if err != nil || f.String() != s {
			t.Errorf("%s → %d, %v → %s", s, f, err, f)
		}
	}
	if f, _ := bill.ParseFee("0.001"); f != 100 {
		t.Errorf("0.001 yuan = %d", f)
	}
	if _, whole := bill.Fee(100).Fen(); whole {
		t.Error("a tenth of a fen is a whole fen")
	}
	for s, want := range map[string]bill.Rate{"0.60%": 60, "1.00%": 100, "0.54%": 54, "0.2%": 20} {
		if r, err := bill.ParseRate(s); err != nil || r != want {
			t.Errorf("%s → %d, %v", s, r, err)
		}
	}
	if _, err := bill.ParseRate("0.60"); err == nil {
		t.Error("a rate without % passed")
	}
}

// TestDate: a bill's day is the Beijing day, whatever the instant's zone.
func TestDate(t *testing.T) {
	d, err := bill.ParseDate("2024-03-10")
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := bill.ParseDate("20240310"); d2 != d {
		t.Fatal("v2 and v3 spellings differ")
	}
	if d.String() != "2024-03-10" || d.Compact() != "20240310" {
		t.Fatalf("%s %s", d, d.Compact())
	}
	start := time.Date(2024, 3, 9, 16, 0, 0, 0, time.UTC) // 00:00 in Beijing
	if !d.Start().Equal(start) || !d.End().Equal(start.Add(24*time.Hour)) {
		t.Fatalf("day runs %s to %s", d.Start(), d.End())
	}
	if !d.Contains(start) || d.Contains(start.Add(-time.Nanosecond)) || d.Contains(start.Add(24*time.Hour)) {
		t.Fatal("Contains is not [00:00, 24:00) Beijing")
	}
	if got := bill.DateOf(time.Date(2024, 3, 10, 15, 59, 59, 0, time.UTC)); got != d {
		t.Fatalf("23:59:59 Beijing is on %s", got)
	}
	if got := d.AddDays(-10).String(); got != "2024-02-29" {
		t.Fatalf("ten days before: %s", got)
	}
	for _, bad := range []string{"2024-3-10", "2024/03/10", "2024-02-30", "", "20240310 "} {
		if _, err := bill.ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) passed", bad)
		}
	}
}

func TestFundFlowRoundTrip(t *testing.T) {
	rows := []bill.FundRow{
		{At: at("2021-04-11 21:35:06"), TransactionID: "4200000934202104116411967580", FlowID: "4200000934202104116411967580", Name: "交易", Kind: "交易",
			Direction: bill.Income, AmountFen: 1, BalanceFen: 1, Applicant: "system", Note: "结算总金额 0.01 元;含手续费 0.00 元", VoucherNo: "1618148094082_GT"},
		{At: at("2021-04-11 22:00:00"), TransactionID: "50300000012021041100000000001", FlowID: "x", Name: "退款", Kind: "退款",
			Direction: bill.Expense, AmountFen: 1, BalanceFen: 0, Applicant: "system", VoucherNo: "R1"},
	}
	data := bill.FormatFundFlow(rows)
	if !bytes.HasPrefix(data, []byte("\uFEFF记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号\r\n")) {
		t.Fatalf("header: %q", data[:80])
	}
	if !bytes.HasSuffix(data, []byte("资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\r\n`2,`1,`0.01,`1,`0.01\r\n")) {
		t.Fatalf("summary: %q", data)
	}
	f, err := bill.ParseFundFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != 2 || f.Rows[0].Note != rows[0].Note || f.Summary.IncomeFen != 1 {
		t.Fatalf("%+v", f)
	}
	// WeChat's documents: full-width parentheses, counts as decimals.
	doc := strings.NewReplacer("(元)", "（元）", "`2,`1,`0.01,`1,`0.01", "`2.0,`1.0,`0.01,`1.0,`0.01").Replace(string(data))
	if _, err := bill.ParseFundFlow([]byte(doc)); err != nil {
		t.Fatalf("the documents' spelling: %v", err)
	}
	altered := strings.Replace(string(data), "`0.01,`1,`0.01", "`0.02,`1,`0.01", 1)
	if _, err := bill.ParseFundFlow([]byte(altered)); !errors.Is(err, wechat.ErrMalformed) {
		t.Fatalf("altered summary: %v", err)
	}
}

// BenchmarkParse reads an ALL bill of 10,000 rows (a busy merchant's day
// is a few of these).
func BenchmarkParse(b *testing.B) {
	rows := make([]bill.Row, 0, 10000)
	for i := range 10000 {
		r := exampleAll()[i%3]
		r.OutTradeNo = fmt.Sprintf("wxflow-%08d", i)
		rows = append(rows, r)
	}
	data, err := bill.Format(bill.All, rows)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := bill.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
