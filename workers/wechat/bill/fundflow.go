package bill

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Fund-flow directions (收支类型).
const (
	Income  = "收入"
	Expense = "支出"
)

// FundRow is one line of a fund-flow bill (资金账单): one movement of money
// on the merchant's account.
type FundRow struct {
	At            time.Time // 记账时间
	TransactionID string    // 微信支付业务单号: the payment's or refund's WeChat number
	FlowID        string    // 资金流水单号
	Name          string    // 业务名称: 交易, 退款, 提现…
	Kind          string    // 业务类型
	Direction     string    // 收支类型: Income or Expense
	AmountFen     int64     // 收支金额(元)
	BalanceFen    int64     // 账户结余(元): the balance after the movement (may be negative)
	Applicant     string    // 资金变更提交申请人: "system" for trades
	Note          string    // 备注, e.g. 结算总金额 0.01 元;含手续费 0.00 元
	VoucherNo     string    // 业务凭证号: the merchant's number (out_trade_no, out_refund_no)
}

// FundSummary is the fund-flow bill's last line.
type FundSummary struct {
	Count        int   // 资金流水总笔数
	IncomeCount  int   // 收入笔数
	IncomeFen    int64 // 收入金额
	ExpenseCount int   // 支出笔数
	ExpenseFen   int64 // 支出金额
}

// SummarizeFunds sums rows as a fund-flow bill's summary does.
func SummarizeFunds(rows []FundRow) FundSummary {
	s := FundSummary{Count: len(rows)}
	for _, r := range rows {
		switch r.Direction {
		case Income:
			s.IncomeCount++
			s.IncomeFen += r.AmountFen
		case Expense:
			s.ExpenseCount++
			s.ExpenseFen += r.AmountFen
		}
	}
	return s
}

// FundFlow is a parsed fund-flow bill.
type FundFlow struct {
	Rows    []FundRow
	Summary FundSummary
}

// fundHeader is the fund-flow header as files print it (ASCII parentheses;
// WeChat's documents print full-width ones, which Parse accepts too).
var fundHeader = strings.Split("记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号", ",")

var fundSummaryHeader = strings.Split("资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额", ",")

// ParseFundFlow reads a fund-flow bill and checks its summary (count, and
// the count and sum of each direction) against its rows. Errors wrap
// [wechat.ErrMalformed].
func ParseFundFlow(data []byte) (*FundFlow, error) {
	ls, err := lines(data)
	if err != nil {
		return nil, err
	}
	header := strings.Split(strings.NewReplacer("（", "(", "）", ")").Replace(ls[0]), ",")
	idx := map[string]int{}
	for i, name := range header {
		if _, dup := idx[name]; dup {
			return nil, errorf("line 1: column %s twice", name)
		}
		idx[name] = i
	}
	for _, need := range fundHeader[:8] {
		if _, ok := idx[need]; !ok {
			return nil, errorf("line 1: not a fund-flow header (no %s)", need)
		}
	}
	get := func(vs []string, name string) string {
		if i, ok := idx[name]; ok {
			return vs[i]
		}
		return ""
	}
	f := &FundFlow{}
	n := 1
	for ; n < len(ls) && strings.HasPrefix(ls[n], "`"); n++ {
		vs, _ := values(ls[n], false)
		if len(vs) != len(header) {
			return nil, errorf("line %d: %d values for %d columns", n+1, len(vs), len(header))
		}
		r := FundRow{TransactionID: get(vs, "微信支付业务单号"), FlowID: get(vs, "资金流水单号"), Name: get(vs, "业务名称"),
			Kind: get(vs, "业务类型"), Direction: get(vs, "收支类型"), Applicant: get(vs, "资金变更提交申请人"),
			Note: get(vs, "备注"), VoucherNo: get(vs, "业务凭证号")}
		var err error
		if r.At, err = parseTime(get(vs, "记账时间")); err != nil {
			return nil, errorf("line %d, 记账时间: %v", n+1, err)
		}
		if r.AmountFen, err = ParseFen(get(vs, "收支金额(元)")); err != nil {
			return nil, errorf("line %d, 收支金额(元): %v", n+1, err)
		}
		if r.BalanceFen, err = parseDecimal(get(vs, "账户结余(元)"), 2, true); err != nil {
			return nil, errorf("line %d, 账户结余(元): %v", n+1, err)
		}
		if r.Direction != Income && r.Direction != Expense {
			return nil, errorf("line %d: 收支类型 %q is neither %s nor %s", n+1, r.Direction, Income, Expense)
		}
		f.Rows = append(f.Rows, r)
	}
	if n >= len(ls) || !strings.HasPrefix(ls[n], "资金流水总笔数") || n+2 != len(ls) {
		return nil, errorf("line %d: want the summary header (资金流水总笔数…), its values and nothing after", n+1)
	}
	names := strings.Split(ls[n], ",")
	vs, _ := values(ls[n+1], true)
	if len(vs) != len(names) || len(names) != len(fundSummaryHeader) {
		return nil, errorf("line %d: want %d summary values", n+2, len(fundSummaryHeader))
	}
	var s FundSummary
	for i, name := range names {
		var err error
		switch name {
		case "资金流水总笔数":
			s.Count, err = parseCount(vs[i])
		case "收入笔数":
			s.IncomeCount, err = parseCount(vs[i])
		case "收入金额":
			s.IncomeFen, err = ParseFen(vs[i])
		case "支出笔数":
			s.ExpenseCount, err = parseCount(vs[i])
		case "支出金额":
			s.ExpenseFen, err = ParseFen(vs[i])
		default:
			err = fmt.Errorf("unknown summary column")
		}
		if err != nil {
			return nil, errorf("line %d, %s: %v", n+2, name, err)
		}
	}
	if want := SummarizeFunds(f.Rows); s != want {
		return nil, errorf("the summary %+v is not the sum of the rows %+v (cut short or altered?)", s, want)
	}
	f.Summary = s
	return f, nil
}

// parseCount reads a count, which WeChat's documents print as "20.0".
func parseCount(v string) (int, error) {
	n, err := parseDecimal(strings.TrimSuffix(v, ".0"), 0, false)
	if err != nil || n > 1<<31 {
		return 0, fmt.Errorf("%q is not a count", v)
	}
	return int(n), nil
}

// FormatFundFlow prints rows as a fund-flow bill: BOM, header, back-ticked
// rows, summary, CRLF line ends.
func FormatFundFlow(rows []FundRow) []byte {
	var b bytes.Buffer
	b.Write(bom)
	b.WriteString(strings.Join(fundHeader, ","))
	b.WriteString("\r\n")
	for _, r := range rows {
		vs := []string{formatTime(r.At), r.TransactionID, r.FlowID, r.Name, r.Kind, r.Direction, FormatFen(r.AmountFen),
			FormatFen(r.BalanceFen), r.Applicant, r.Note, r.VoucherNo}
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('`')
			b.WriteString(clean(v))
		}
		b.WriteString("\r\n")
	}
	s := SummarizeFunds(rows)
	b.WriteString(strings.Join(fundSummaryHeader, ","))
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "`%d,`%d,`%s,`%d,`%s\r\n", s.Count, s.IncomeCount, FormatFen(s.IncomeFen), s.ExpenseCount, FormatFen(s.ExpenseFen))
	return b.Bytes()
}
