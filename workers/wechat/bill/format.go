package bill

import (
	"bytes"
	"fmt"
	"strings"
)

// Format prints rows as a trade bill of type t, as WeChat does: the BOM,
// the header of t's current layout, each row's values back-ticked, the
// summary header and the summary of the rows, every line ending with CRLF.
// Rows are printed in the order given. Values cannot hold a line break or
// ",`" (the bill's delimiter): line breaks become spaces and a back-tick
// after a comma an apostrophe.
func Format(t Type, rows []Row) ([]byte, error) {
	header, ok := layouts[t]
	if !ok {
		return nil, fmt.Errorf("bill: cannot print bill type %q", t)
	}
	var b bytes.Buffer
	b.Write(bom)
	b.WriteString(strings.Join(header, ","))
	b.WriteString("\r\n")
	for i := range rows {
		for j, name := range header {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('`')
			c := columns[name]
			b.WriteString(clean(c.get(&rows[i])))
		}
		b.WriteString("\r\n")
	}
	s := Summarize(rows)
	b.WriteString(strings.Join(summaryHeader, ","))
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "`%d,`%s,`%s,`%s,`%s,`%s,`%s\r\n", s.Count, FormatFen(s.SettlementFen), FormatFen(s.RefundFen),
		FormatFen(s.CouponRefundFen), s.Fee, FormatFen(s.TotalFen), FormatFen(s.RequestedRefundFen))
	return b.Bytes(), nil
}

// clean keeps a value on its line and in its field.
func clean(v string) string {
	if !strings.ContainsAny(v, "\r\n`") {
		return v
	}
	v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	return strings.ReplaceAll(v, ",`", ",'")
}
