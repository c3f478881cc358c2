package bill

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/wxflow/wxflow/workers/wechat"
)

// bom is the byte-order mark WeChat puts before the header.
var bom = []byte("\uFEFF")

// errorf is a refusal of a file that is not a bill: it wraps [wechat.ErrMalformed].
func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: bill: %s", wechat.ErrMalformed, fmt.Sprintf(format, args...))
}

// lines splits a bill into its lines: the BOM dropped, "\r\n" or "\n" ends,
// the empty lines at the end dropped (the last line ends with CRLF too).
func lines(data []byte) ([]string, error) {
	if !utf8.Valid(data) {
		return nil, errorf("not UTF-8")
	}
	data = bytes.TrimPrefix(data, bom)
	ls := strings.Split(string(data), "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	for len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	if len(ls) == 0 {
		return nil, errorf("empty")
	}
	return ls, nil
}

// values splits a line of back-ticked values: exactly one back-tick is
// taken off each value. Splitting on ",`" rather than "," keeps a comma
// inside a value (a product name, an attach) in its value. With optional,
// values without a back-tick pass (the sandbox's summaries).
func values(line string, optional bool) ([]string, bool) {
	if !strings.HasPrefix(line, "`") {
		if !optional {
			return nil, false
		}
		vs := strings.Split(line, ",")
		for i, v := range vs {
			vs[i] = strings.TrimPrefix(v, "`")
		}
		return vs, true
	}
	return strings.Split(line[1:], ",`"), true
}

// Parse reads a trade bill of any layout: the columns are found by their
// header names (older names too), the rows read until the summary header
// (总交易单数), and the summary checked against the rows: its count
// always, its sums on current layouts. Errors wrap [wechat.ErrMalformed]
// and name the line.
//
// An empty day is not a file but an error answer ("No Bill Exist",
// NO_STATEMENT_EXIST): the clients tell it apart before Parse.
func Parse(data []byte) (*Bill, error) {
	ls, err := lines(data)
	if err != nil {
		return nil, err
	}
	header := strings.Split(ls[0], ",")
	cols := make([]*column, len(header))
	seen := map[string]bool{}
	for i, name := range header {
		c, ok := columns[name]
		if !ok {
			continue // a column wxflow does not know: kept in Columns, not read
		}
		if seen[c.name] {
			return nil, errorf("line 1: column %s twice", name)
		}
		seen[c.name] = true
		cols[i] = &c
	}
	for _, need := range []string{"交易时间", "商户号", "微信订单号", "商户订单号", "交易状态"} {
		if !seen[need] {
			return nil, errorf("line 1: not a trade bill header (no %s)", need)
		}
	}
	b := &Bill{Type: Success, Columns: header}
	switch {
	case seen["退款申请时间"]:
		b.Type = Refund
	case seen["微信退款单号"]:
		b.Type = All
	}
	b.Legacy = !slices.Equal(header, layouts[b.Type])
	n := 1
	for ; n < len(ls) && strings.HasPrefix(ls[n], "`"); n++ {
		vs, _ := values(ls[n], false)
		if len(vs) != len(header) {
			return nil, errorf("line %d: %d values for %d columns", n+1, len(vs), len(header))
		}
		var r Row
		for i, v := range vs {
			if cols[i] == nil {
				continue
			}
			if err := cols[i].set(&r, v); err != nil {
				return nil, errorf("line %d, %s: %v", n+1, header[i], err)
			}
		}
		if !seen["应结订单金额"] {
			r.SettlementFen = r.TotalFen
		}
		if !seen["申请退款金额"] {
			r.RequestedRefundFen = r.RefundFen
		}
		b.Rows = append(b.Rows, r)
	}
	if err := b.readSummary(ls, n); err != nil {
		return nil, err
	}
	return b, nil
}

// readSummary reads the summary header at line n and its values, and
// checks them against the rows.
func (b *Bill) readSummary(ls []string, n int) error {
	if n >= len(ls) {
		return errorf("no summary: the file ends after line %d (cut short?)", n)
	}
	if !strings.HasPrefix(ls[n], "总交易单数") {
		return errorf("line %d: neither a row (`…) nor the summary header (总交易单数…)", n+1)
	}
	if n+2 != len(ls) {
		return errorf("line %d: want the summary header, its values and nothing after", n+1)
	}
	names := strings.Split(ls[n], ",")
	vs, _ := values(ls[n+1], true)
	if len(vs) != len(names) {
		return errorf("line %d: %d summary values for %d columns", n+2, len(vs), len(names))
	}
	got := map[string]bool{}
	for i, name := range names {
		set, ok := summaryColumns[name]
		if !ok {
			continue
		}
		if got[name] {
			return errorf("line %d: summary column %s twice", n+1, name)
		}
		got[name] = true
		if err := set(&b.Summary, vs[i]); err != nil {
			return errorf("line %d, %s: %v", n+2, name, err)
		}
	}
	if !got["总交易单数"] {
		return errorf("line %d: no 总交易单数 in the summary", n+1)
	}
	sum, ok := summarize(b.Rows)
	if !ok {
		return errorf("the rows' sums are past what a bill can write (999999999999999.99 yuan)")
	}
	if b.Summary.Count != len(b.Rows) {
		return errorf("the summary counts %d rows, the bill has %d (cut short or altered?)", b.Summary.Count, len(b.Rows))
	}
	if b.Legacy || !slices.Equal(names, summaryHeader) {
		return nil
	}
	if sum != b.Summary {
		return errorf("the summary %+v is not the sum of the rows %+v", b.Summary, sum)
	}
	return nil
}
