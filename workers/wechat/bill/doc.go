// Package bill reads and writes WeChat Pay's daily bills (对账单): the trade
// bill (交易账单, bill_type ALL, SUCCESS or REFUND) and the fund-flow bill
// (资金账单), byte for byte as WeChat prints them in API v2 and v3: UTF-8
// with a byte-order mark, CRLF line ends (the last line's too), a header of
// Chinese column names, a back-tick before every value, and a summary.
//
// [Parse] maps columns by their header names, not their positions, so the
// older layouts merchants still get (24 columns, 企业红包 wording, a
// five-column summary) read into the same [Row]; it checks the summary
// against the rows (their count and every sum), so a truncated or altered
// file is refused rather than read short. [Format] prints the current
// layout of each bill type; the simulator prints its bills with it.
//
// A bill's day is a calendar day in Beijing time (UTC+8), whatever the
// clock of the machine reading it: [Date].
//
// Money is never a float: amounts are whole fen (int64), fees are [Fee]
// (hundred-thousandths of a yuan, the five decimals 手续费 prints), rates
// are [Rate] (hundredths of a percent).
//
// Like the rest of workers/wechat, this package knows nothing of wxflow's
// orders: its words are out_trade_no, out_refund_no and fen.
package bill
