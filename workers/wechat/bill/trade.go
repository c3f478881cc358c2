package bill

import (
	"math"
	"strings"
	"time"
)

// Type is a trade bill's bill_type.
type Type string

// The trade bill types wxflow reads and prints. Each excludes 充值退款
// (RECHARGE_REFUND, which Parse reads too).
const (
	All     Type = "ALL"     // every payment and refund of the day (27 columns)
	Success Type = "SUCCESS" // the payments (20 columns)
	Refund  Type = "REFUND"  // the refunds, with their request and success times (29 columns)
)

// Valid reports whether t is one of [All], [Success] and [Refund].
func (t Type) Valid() bool { return t == All || t == Success || t == Refund }

// Trade states of a bill row (交易状态).
const (
	StateSuccess = "SUCCESS" // a payment
	StateRefund  = "REFUND"  // a refund (its row repeats the payment's numbers)
	StateRevoked = "REVOKED" // a reversed payment-code payment
)

// Row is one detail line of a trade bill: a payment (TradeState SUCCESS) or
// a refund (REFUND), which repeats its payment's TransactionID, OutTradeNo
// and OpenID. Fields a layout does not have stay zero, except as noted.
type Row struct {
	// TradeTime (交易时间): the payment's success time; on a refund row of an
	// ALL bill, the refund's time; on a REFUND bill, the payment's.
	TradeTime  time.Time
	AppID      string // 公众账号ID: the trade's appid
	MchID      string // 商户号
	SubMchID   string // 特约商户号 (子商户号): "0" for a direct merchant
	DeviceInfo string // 设备号
	// TransactionID (微信订单号) and OutTradeNo (商户订单号) name the payment,
	// on its refund rows too.
	TransactionID string
	OutTradeNo    string
	OpenID        string // 用户标识
	TradeType     string // 交易类型: JSAPI, NATIVE, APP, MWEB, MICROPAY…
	TradeState    string // 交易状态: StateSuccess, StateRefund, StateRevoked
	BankType      string // 付款银行: OTHERS, CFT, bank codes
	Currency      string // 货币种类: CNY
	// SettlementFen (应结订单金额) is the payment less 免充值 coupons; 0 on
	// refund rows. Older layouts lack it: it is then TotalFen.
	SettlementFen int64
	CouponFen     int64 // 代金券金额 (older: 代金券或立减优惠金额, 企业红包金额)
	// RefundRequestedAt (退款申请时间) and RefundSucceededAt (退款成功时间)
	// are in REFUND bills only; RefundSucceededAt is zero while the refund
	// was processing when the bill was made.
	RefundRequestedAt time.Time
	RefundSucceededAt time.Time
	// RefundID (微信退款单号) and OutRefundNo (商户退款单号) name a refund; ""
	// on payment rows (which print "0").
	RefundID    string
	OutRefundNo string
	RefundFen   int64 // 退款金额: the settlement refund
	// CouponRefundFen is 充值券退款金额 (older: 代金券或立减优惠退款金额, 企业红包退款金额).
	CouponRefundFen int64
	RefundType      string // 退款类型: ORIGINAL, BALANCE…; "" on payment rows
	RefundStatus    string // 退款状态 when the bill was made: SUCCESS, PROCESSING…
	Body            string // 商品名称
	Attach          string // 商户数据包
	// Fee (手续费) is positive on payments and negative on refunds (the fee
	// given back).
	Fee      Fee
	Rate     Rate   // 费率
	TotalFen int64  // 订单金额: the order total; 0 on refund rows
	RateNote string // 费率备注
	// RequestedRefundFen (申请退款金额) is the refund asked for; 0 on payment
	// rows. Older layouts lack it: it is then RefundFen.
	RequestedRefundFen int64
}

// IsRefund reports whether the row is a refund.
func (r Row) IsRefund() bool { return r.TradeState == StateRefund }

// Summary is a trade bill's last line: the count of detail rows (refund rows
// included) and the sums of their columns.
type Summary struct {
	Count              int   // 总交易单数
	SettlementFen      int64 // 应结订单总金额
	RefundFen          int64 // 退款总金额
	CouponRefundFen    int64 // 充值券退款总金额
	Fee                Fee   // 手续费总金额
	TotalFen           int64 // 订单总金额
	RequestedRefundFen int64 // 申请退款总金额
}

// Summarize sums rows as a bill's summary does.
func Summarize(rows []Row) Summary {
	s, _ := summarize(rows)
	return s
}

// maxAmountFen is the largest amount a bill writes: 15 digits of yuan
// (ParseFen reads no more), 999999999999999.99.
const maxAmountFen = 1e17 - 1

// summarize sums rows, and says whether every sum is one a bill can write:
// no overflow, and no amount past maxAmountFen (rows each within it may
// sum past it, and a summary printed from them would not read).
func summarize(rows []Row) (Summary, bool) {
	s, ok := Summary{Count: len(rows)}, true
	add := func(sum *int64, v, limit int64) {
		if v > 0 && *sum > math.MaxInt64-v || v < 0 && *sum < math.MinInt64-v {
			ok = false
		}
		*sum += v
		if *sum > limit || *sum < -limit {
			ok = false
		}
	}
	for _, r := range rows {
		add(&s.SettlementFen, r.SettlementFen, maxAmountFen)
		add(&s.RefundFen, r.RefundFen, maxAmountFen)
		add(&s.CouponRefundFen, r.CouponRefundFen, maxAmountFen)
		add((*int64)(&s.Fee), int64(r.Fee), math.MaxInt64)
		add(&s.TotalFen, r.TotalFen, maxAmountFen)
		add(&s.RequestedRefundFen, r.RequestedRefundFen, maxAmountFen)
	}
	return s, ok
}

// Bill is a parsed trade bill.
type Bill struct {
	// Type is what the header says: REFUND with 退款申请时间, ALL with
	// 微信退款单号, SUCCESS otherwise.
	Type Type
	// Columns is the header as the file has it.
	Columns []string
	// Legacy is true when the layout is not the one [Format] prints for Type
	// (an older merchant's); the summary's sums are then not checked.
	Legacy  bool
	Rows    []Row
	Summary Summary
}

// timeLayout is how bills write times (Beijing time).
const timeLayout = "2006-01-02 15:04:05"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(beijing).Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.ParseInLocation(timeLayout, s, beijing)
}

// column is one column of the trade bill: its name, older names, how a
// row prints it and reads it.
type column struct {
	name    string
	aliases []string
	get     func(*Row) string
	set     func(*Row, string) error
}

func text(f func(*Row) *string) (func(*Row) string, func(*Row, string) error) {
	return func(r *Row) string { return *f(r) }, func(r *Row, v string) error { *f(r) = v; return nil }
}

// zeroID is a refund id column: "0" on payment rows.
func zeroID(f func(*Row) *string) (func(*Row) string, func(*Row, string) error) {
	return func(r *Row) string {
			if *f(r) == "" {
				return "0"
			}
			return *f(r)
		}, func(r *Row, v string) error {
			if v == "0" {
				v = ""
			}
			*f(r) = v
			return nil
		}
}

func fen(f func(*Row) *int64) (func(*Row) string, func(*Row, string) error) {
	return func(r *Row) string { return FormatFen(*f(r)) }, func(r *Row, v string) (err error) { *f(r), err = ParseFen(v); return }
}

func when(f func(*Row) *time.Time) (func(*Row) string, func(*Row, string) error) {
	return func(r *Row) string { return formatTime(*f(r)) }, func(r *Row, v string) (err error) { *f(r), err = parseTime(v); return }
}

func col(name string, aliases []string, g func(*Row) string, s func(*Row, string) error) column {
	return column{name: name, aliases: aliases, get: g, set: s}
}

// columns are every trade-bill column wxflow knows, by their current names.
var columns = func() map[string]column {
	cs := []column{}
	add := func(name string, aliases []string, g func(*Row) string, s func(*Row, string) error) {
		cs = append(cs, col(name, aliases, g, s))
	}
	g, s := when(func(r *Row) *time.Time { return &r.TradeTime })
	add("交易时间", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.AppID })
	add("公众账号ID", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.MchID })
	add("商户号", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.SubMchID })
	add("特约商户号", []string{"子商户号"}, g, s)
	g, s = text(func(r *Row) *string { return &r.DeviceInfo })
	add("设备号", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.TransactionID })
	add("微信订单号", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.OutTradeNo })
	add("商户订单号", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.OpenID })
	add("用户标识", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.TradeType })
	add("交易类型", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.TradeState })
	add("交易状态", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.BankType })
	add("付款银行", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.Currency })
	add("货币种类", nil, g, s)
	g, s = fen(func(r *Row) *int64 { return &r.SettlementFen })
	add("应结订单金额", nil, g, s)
	g, s = fen(func(r *Row) *int64 { return &r.CouponFen })
	add("代金券金额", []string{"代金券或立减优惠金额", "企业红包金额"}, g, s)
	g, s = when(func(r *Row) *time.Time { return &r.RefundRequestedAt })
	add("退款申请时间", nil, g, s)
	g, s = when(func(r *Row) *time.Time { return &r.RefundSucceededAt })
	add("退款成功时间", nil, g, s)
	g, s = zeroID(func(r *Row) *string { return &r.RefundID })
	add("微信退款单号", nil, g, s)
	g, s = zeroID(func(r *Row) *string { return &r.OutRefundNo })
	add("商户退款单号", nil, g, s)
	g, s = fen(func(r *Row) *int64 { return &r.RefundFen })
	add("退款金额", nil, g, s)
	g, s = fen(func(r *Row) *int64 { return &r.CouponRefundFen })
	add("充值券退款金额", []string{"代金券或立减优惠退款金额", "企业红包退款金额"}, g, s)
	g, s = text(func(r *Row) *string { return &r.RefundType })
	add("退款类型", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.RefundStatus })
	add("退款状态", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.Body })
	add("商品名称", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.Attach })
	add("商户数据包", nil, g, s)
	add("手续费", []string{"返还手续费"}, func(r *Row) string { return r.Fee.String() },
		func(r *Row, v string) (err error) { r.Fee, err = ParseFee(v); return })
	add("费率", nil, func(r *Row) string { return r.Rate.String() },
		func(r *Row, v string) (err error) {
			if v == "" {
				return nil
			}
			r.Rate, err = ParseRate(v)
			return
		})
	g, s = fen(func(r *Row) *int64 { return &r.TotalFen })
	add("订单金额", []string{"总金额"}, g, s)
	g, s = fen(func(r *Row) *int64 { return &r.RequestedRefundFen })
	add("申请退款金额", nil, g, s)
	g, s = text(func(r *Row) *string { return &r.RateNote })
	add("费率备注", nil, g, s)
	m := map[string]column{}
	for _, c := range cs {
		m[c.name] = c
		for _, a := range c.aliases {
			m[a] = c
		}
	}
	return m
}()

// layouts are the headers Format prints (the 免充值券 settlement layout,
// every merchant's since 2018).
var layouts = map[Type][]string{
	All: strings.Split("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"+
		"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注", ","),
	Success: strings.Split("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"+
		"应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注", ","),
	Refund: strings.Split("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"+
		"应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"+
		"商户数据包,手续费,费率,订单金额,申请退款金额,费率备注", ","),
}

// Header is the header line Format prints for t (nil for an unknown type).
func Header(t Type) []string { return append([]string(nil), layouts[t]...) }

// summaryHeader is the seven-column summary of every current layout.
var summaryHeader = strings.Split("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额", ",")

// summaryColumns read a summary's values by header name, older names included.
var summaryColumns = map[string]func(*Summary, string) error{
	"总交易单数": func(s *Summary, v string) error {
		n, err := parseDecimal(v, 0, false)
		if err != nil || n > 1<<31 {
			return errorf("count %q is not a count", v)
		}
		s.Count = int(n)
		return nil
	},
	"应结订单总金额":       sumFen(func(s *Summary) *int64 { return &s.SettlementFen }),
	"退款总金额":         sumFen(func(s *Summary) *int64 { return &s.RefundFen }),
	"总退款金额":         sumFen(func(s *Summary) *int64 { return &s.RefundFen }),
	"充值券退款总金额":      sumFen(func(s *Summary) *int64 { return &s.CouponRefundFen }),
	"总代金券或立减优惠退款金额": sumFen(func(s *Summary) *int64 { return &s.CouponRefundFen }),
	"总企业红包退款金额":     sumFen(func(s *Summary) *int64 { return &s.CouponRefundFen }),
	"订单总金额":         sumFen(func(s *Summary) *int64 { return &s.TotalFen }),
	"总交易额":          sumFen(func(s *Summary) *int64 { return &s.TotalFen }),
	"申请退款总金额":       sumFen(func(s *Summary) *int64 { return &s.RequestedRefundFen }),
	"手续费总金额":        func(s *Summary, v string) (err error) { s.Fee, err = ParseFee(v); return },
}

func sumFen(f func(*Summary) *int64) func(*Summary, string) error {
	return func(s *Summary, v string) (err error) { *f(s), err = ParseFen(v); return }
}
