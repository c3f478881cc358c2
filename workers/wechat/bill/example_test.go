package bill_test

import (
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// A bill's fee is rounded to the fen per row; the rate prints with two decimals.
func ExampleRate_FeeOf() {
	rate := bill.Rate(60)
	fmt.Println(rate, rate.FeeOf(8800), rate.FeeOf(1234), rate.FeeOf(-3000))
	// Output: 0.60% 0.53000 0.07000 -0.18000
}

// A trade bill printed and read back: the rows, the summary's count and sums.
func ExampleParse() {
	data, _ := bill.Format(bill.Success, []bill.Row{{TradeState: bill.StateSuccess, MchID: "1900000109",
		TransactionID: "4200000001", OutTradeNo: "T1", SettlementFen: 8800, TotalFen: 8800, Fee: bill.FeeFromFen(53), Rate: 60}})
	b, err := bill.Parse(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Type, len(b.Rows), b.Rows[0].OutTradeNo, bill.FormatFen(b.Summary.TotalFen), b.Summary.Fee)
	// Output: SUCCESS 1 T1 88.00 0.53000
}
