package bill_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// FuzzParseBill feeds arbitrary files to the trade-bill parser: a bill
// comes from WeChat over the network (v2 bills are not signed at all), and
// what it says decides which of wxflow's orders are queried and flagged.
// Parse must never panic; a refusal wraps wechat.ErrMalformed; and what it
// reads, printed back, must read again into rows that print the same
// bytes: nothing is read that the printer cannot say.
func FuzzParseBill(f *testing.F) {
	for _, name := range []string{"all_20240310.csv", "success_20240310.csv", "refund_20240310.csv"} {
		f.Add(mustRead(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bill.Parse(data)
		if err != nil {
			if !errors.Is(err, wechat.ErrMalformed) {
				t.Fatalf("refusal %v does not wrap ErrMalformed", err)
			}
			return
		}
		if b.Summary.Count != len(b.Rows) {
			t.Fatalf("summary counts %d, %d rows", b.Summary.Count, len(b.Rows))
		}
		printed, err := bill.Format(b.Type, b.Rows)
		if err != nil {
			t.Fatal(err)
		}
		again, err := bill.Parse(printed)
		if err != nil {
			t.Fatalf("the printed bill does not read: %v\n%q", err, printed)
		}
		if again.Legacy || again.Type != b.Type || len(again.Rows) != len(b.Rows) {
			t.Fatalf("printed %s (%d rows) reads as %s legacy %v (%d rows)", b.Type, len(b.Rows), again.Type, again.Legacy, len(again.Rows))
		}
		twice, _ := bill.Format(again.Type, again.Rows)
		if !bytes.Equal(twice, printed) {
			t.Fatalf("printing is not stable:\n%q\n%q", printed, twice)
		}
	})
}

// FuzzParseFundFlow does the same for the fund-flow bill.
func FuzzParseFundFlow(f *testing.F) {
	f.Add(bill.FormatFundFlow([]bill.FundRow{{TransactionID: "4200000934202104116411967580", Name: "交易", Direction: bill.Income, AmountFen: 1, BalanceFen: 1}}))
	f.Add(bill.FormatFundFlow(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		ff, err := bill.ParseFundFlow(data)
		if err != nil {
			if !errors.Is(err, wechat.ErrMalformed) {
				t.Fatalf("refusal %v does not wrap ErrMalformed", err)
			}
			return
		}
		printed := bill.FormatFundFlow(ff.Rows)
		again, err := bill.ParseFundFlow(printed)
		if err != nil {
			t.Fatalf("the printed bill does not read: %v\n%q", err, printed)
		}
		if !bytes.Equal(bill.FormatFundFlow(again.Rows), printed) {
			t.Fatal("printing is not stable")
		}
	})
}
