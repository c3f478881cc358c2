package sim

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/wxflow/wxflow/workers/wechat/bill"
	"github.com/wxflow/wxflow/workers/wechat/v2"
	"github.com/wxflow/wxflow/workers/wechat/v3"
)

// The simulator prints the daily bills (对账单) from its ledger, as WeChat
// does: v2 /pay/downloadbill (the bill text, or its gzip, or a FAIL XML),
// v3 /v3/bill/tradebill and /v3/bill/fundflowbill (a signed JSON with the
// SHA-1 of the bill and a download URL) and /v3/billdownload/file (the
// bytes, unsigned, behind a valid v3 Authorization).
//
// A day is a Beijing calendar day. Its bills are ready Config.BillDelay
// (10 h before scaling: 10:00 the next day) after the day ends, and are
// then printed as the ledger stood at that moment, so every download of a
// day's bill is the same bytes: a refund settled later shows PROCESSING, as
// on WeChat, where a bill is never made again. Before that the answer is
// "Bill Creating" / STATEMENT_CREATING, unless Config.BillsAtOnce, which
// prints any day up to today as it stands now (for demos and tests that
// cannot wait for tomorrow). A day without a payment or a refund has no
// bill ("No Bill Exist" / NO_STATEMENT_EXIST); a day of such a bill without
// rows of the type asked (a REFUND bill on a day without refunds) is an
// empty bill: its header and a zero summary. Days in the future or more
// than three months back are invalid.

// billRetention is how far back WeChat serves bills: three months.
const billRetention = 92 * 24 * time.Hour

// billTokenTTL is how long a v3 download URL works (5 min in WeChat's
// current documents; not scaled, so a slow test does not lose its download).
const billTokenTTL = 5 * time.Minute

// billDownload is a v3 download URL's content.
type billDownload struct {
	mchid   string // the merchant that applied: only it may download
	data    []byte // the bill as printed (uncompressed)
	gzip    bool
	expires time.Time
}

// billProblem is why a bill cannot be given: WeChat's v2 return_msg and
// error_code, and its v3 status and code.
type billProblem struct {
	v2Msg, v2Code string
	status        int
	v3Code        string
}

var (
	noBill       = &billProblem{"No Bill Exist", "20002", http.StatusBadRequest, "NO_STATEMENT_EXIST"}
	billCreating = &billProblem{"Bill Creating", "", http.StatusBadRequest, "STATEMENT_CREATING"}
	badBillDate  = &billProblem{"invalid bill_date", "20001", http.StatusBadRequest, "INVALID_REQUEST"}
	badBillType  = &billProblem{"invalid bill_type", "20001", http.StatusBadRequest, "PARAM_ERROR"}
	badTarType   = &billProblem{"invalid tar_type", "20001", http.StatusBadRequest, "PARAM_ERROR"}
)

// billDelay and feeRate are the configured values or WeChat's.
func (s *Sim) billDelay() time.Duration { return cmp.Or(s.cfg.BillDelay, 10*time.Hour) }
func (s *Sim) feeRate() bill.Rate       { return cmp.Or(s.cfg.FeeRate, 60) }

// BillReadyAt is when the bills of day d can be downloaded: BillDelay after
// the day ends, scaled; at once with Config.BillsAtOnce.
func (s *Sim) BillReadyAt(d bill.Date) time.Time {
	if s.cfg.BillsAtOnce {
		return d.Start()
	}
	return d.End().Add(s.scaled(s.billDelay()))
}

// billAsOf checks day d and returns the instant its bills are printed as of.
func (s *Sim) billAsOf(d bill.Date) (time.Time, *billProblem) {
	now := s.now()
	today := bill.DateOf(now)
	switch {
	case today.Before(d), d.End().Before(now.Add(-billRetention)):
		return time.Time{}, badBillDate
	case d == today && !s.cfg.BillsAtOnce:
		return time.Time{}, billCreating
	}
	ready := d.End().Add(s.scaled(s.billDelay()))
	if now.Before(ready) {
		if !s.cfg.BillsAtOnce {
			return time.Time{}, billCreating
		}
		return now, nil
	}
	return ready, nil
}

// tradeRows are the ALL bill's rows of day d as of asOf, and the REFUND
// bill's (which show the payment's time and the refund's two times); the
// caller holds s.mu.
func (s *Sim) tradeRows(f billFilter, d bill.Date, asOf time.Time) (all, refunds []bill.Row) {
	rate := s.feeRate()
	row := func(o *order) bill.Row {
		return bill.Row{TradeTime: o.PaidAt, AppID: o.AppID, MchID: o.MchID, SubMchID: cmp.Or(o.SubMchID, "0"), TransactionID: o.TransactionID,
			OutTradeNo: o.OutTradeNo, OpenID: s.spOpenID(o), TradeType: o.TradeType, TradeState: bill.StateSuccess,
			BankType: "OTHERS", Currency: "CNY", Body: o.Description, Rate: rate}
	}
	for _, o := range s.orders {
		if !f.has(o) || o.PaidAt.IsZero() || !d.Contains(o.PaidAt) || o.PaidAt.After(asOf) {
			continue
		}
		r := row(o)
		r.SettlementFen, r.TotalFen, r.Fee = o.TotalFen, o.TotalFen, rate.FeeOf(o.TotalFen)
		all = append(all, r)
	}
	for _, rf := range s.refunds {
		o := s.orders[okey(rf.MchID, rf.OutTradeNo)]
		if o == nil || !f.has(o) || !d.Contains(rf.CreatedAt) || rf.CreatedAt.After(asOf) {
			continue
		}
		r := row(o)
		r.TradeTime, r.TradeState = rf.CreatedAt, bill.StateRefund
		r.RefundID, r.OutRefundNo, r.RefundFen, r.RequestedRefundFen = rf.RefundID, rf.OutRefundNo, rf.RefundFen, rf.RefundFen
		r.RefundType, r.RefundStatus, r.Fee = "ORIGINAL", "PROCESSING", rate.FeeOf(-rf.RefundFen)
		if !rf.SettledAt.IsZero() && !rf.SettledAt.After(asOf) {
			r.RefundStatus = "SUCCESS"
		}
		all = append(all, r)
		byRefund := r
		byRefund.TradeTime, byRefund.RefundRequestedAt = o.PaidAt, rf.CreatedAt
		if r.RefundStatus == "SUCCESS" {
			byRefund.RefundSucceededAt = rf.SettledAt
		}
		refunds = append(refunds, byRefund)
	}
	order := func(a, b bill.Row) int {
		return cmp.Or(a.TradeTime.Compare(b.TradeTime), cmp.Compare(a.OutTradeNo, b.OutTradeNo), cmp.Compare(a.OutRefundNo, b.OutRefundNo))
	}
	slices.SortFunc(all, order)
	slices.SortFunc(refunds, func(a, b bill.Row) int {
		return cmp.Or(a.RefundRequestedAt.Compare(b.RefundRequestedAt), cmp.Compare(a.OutRefundNo, b.OutRefundNo))
	})
	return all, refunds
}

// tradeBill prints the trade bill of type t for day d as WeChat would give
// it now, or says why there is none.
// billFilter is whose trades a bill lists: a merchant number's, and of a
// provider's, every sub-merchant's or (sub set) one's.
type billFilter struct{ mchid, sub string }

func (f billFilter) has(o *order) bool {
	return o.MchID == f.mchid && (f.sub == "" || o.SubMchID == f.sub)
}

func (s *Sim) tradeBill(f billFilter, d bill.Date, t bill.Type) ([]byte, *billProblem) {
	if !t.Valid() {
		return nil, badBillType
	}
	asOf, p := s.billAsOf(d)
	if p != nil {
		return nil, p
	}
	s.mu.Lock()
	all, refunds := s.tradeRows(f, d, asOf)
	s.mu.Unlock()
	if len(all) == 0 {
		return nil, noBill
	}
	rows := all
	switch t {
	case bill.Success:
		rows = slices.DeleteFunc(slices.Clone(all), func(r bill.Row) bool { return r.IsRefund() })
	case bill.Refund:
		rows = refunds
	}
	data, err := bill.Format(t, rows)
	if err != nil {
		return nil, badBillType
	}
	return data, nil
}

// TradeBill is the first merchant's trade bill of type t for day d as
// WeChat gives it now (the bytes a download returns), or an error naming why
// there is none.
func (s *Sim) TradeBill(d bill.Date, t bill.Type) ([]byte, error) {
	return s.MerchantTradeBill(s.keys.Merchant.MchID, d, t)
}

// MerchantTradeBill is TradeBill of merchant number mchid: a provider's
// lists its sub-merchants' trades, each with its 特约商户号.
func (s *Sim) MerchantTradeBill(mchid string, d bill.Date, t bill.Type) ([]byte, error) {
	data, p := s.tradeBill(billFilter{mchid: mchid}, d, t)
	if p != nil {
		return nil, fmt.Errorf("sim: bill %s %s: %s", d, t, p.v3Code)
	}
	return data, nil
}

// fundFlow prints the BASIC account's fund-flow bill of day d: each
// payment comes in less its fee, each refund goes out less the fee given
// back, with the balance after each.
func (s *Sim) fundFlow(mchid string, d bill.Date, account string) ([]byte, *billProblem) {
	if account != "" && account != "BASIC" && account != "OPERATION" && account != "FEES" {
		return nil, badBillType
	}
	asOf, p := s.billAsOf(d)
	if p != nil {
		return nil, p
	}
	if account != "" && account != "BASIC" {
		return nil, noBill // wxflow's merchant has nothing on its other accounts
	}
	type move struct {
		at   time.Time
		row  bill.FundRow
		key  string
		sign int64
	}
	rate := s.feeRate()
	var moves []move
	s.mu.Lock()
	for _, o := range s.orders {
		if o.MchID != mchid || o.PaidAt.IsZero() || o.PaidAt.After(asOf) {
			continue
		}
		fee, _ := rate.FeeOf(o.TotalFen).Fen()
		moves = append(moves, move{at: o.PaidAt, key: o.OutTradeNo, sign: 1, row: bill.FundRow{TransactionID: o.TransactionID,
			FlowID: o.TransactionID, Name: "交易", Kind: "交易", Direction: bill.Income, AmountFen: o.TotalFen - fee, Applicant: "system",
			Note: fmt.Sprintf("结算总金额 %s 元;含手续费 %s 元", bill.FormatFen(o.TotalFen), bill.FormatFen(fee)), VoucherNo: o.OutTradeNo}})
	}
	for _, rf := range s.refunds {
		if rf.MchID != mchid || rf.CreatedAt.After(asOf) {
			continue
		}
		fee, _ := rate.FeeOf(rf.RefundFen).Fen()
		moves = append(moves, move{at: rf.CreatedAt, key: rf.OutRefundNo, sign: -1, row: bill.FundRow{TransactionID: rf.RefundID,
			FlowID: rf.RefundID, Name: "退款", Kind: "退款", Direction: bill.Expense, AmountFen: rf.RefundFen - fee, Applicant: "system",
			Note: fmt.Sprintf("退款总金额 %s 元;含手续费 %s 元", bill.FormatFen(rf.RefundFen), bill.FormatFen(fee)), VoucherNo: rf.OutRefundNo}})
	}
	s.mu.Unlock()
	slices.SortFunc(moves, func(a, b move) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.key, b.key)) })
	var balance int64
	var rows []bill.FundRow
	for _, m := range moves {
		balance += m.sign * m.row.AmountFen
		if d.Contains(m.at) {
			m.row.At, m.row.BalanceFen = m.at, balance
			rows = append(rows, m.row)
		}
	}
	if len(rows) == 0 {
		return nil, noBill
	}
	return bill.FormatFundFlow(rows), nil
}

// v2DownloadBill answers POST /pay/downloadbill: the bill text (gzip with
// tar_type=GZIP), never signed; a FAIL XML, never compressed, otherwise.
func (s *Sim) v2DownloadBill(w http.ResponseWriter, r *http.Request) {
	fail := func(msg, code string) {
		s.log.Info("v2 bill refused", "reason", msg)
		f := map[string]string{"return_code": "FAIL", "return_msg": msg}
		if code != "" {
			f["error_code"] = code
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(v2.EncodeXML(f))
	}
	body, err := readBody(r)
	if err != nil || len(body) == 0 {
		fail("missing parameter", "20001")
		return
	}
	p, err := v2.ParseXML(body)
	if err != nil {
		fail("data format error", "20001")
		return
	}
	pt := s.dir.parties[p["mch_id"]]
	switch {
	case pt == nil:
		fail("appid和mch_id不匹配", "20001")
		return
	case v2.Verify(p, string(pt.m.APIKey)) != nil:
		fail("SIGN ERROR", "20001")
		return
	case !pt.owns(p["appid"]):
		fail("appid和mch_id不匹配", "20001")
		return
	case !pt.provider() && p["sub_mch_id"] != "":
		fail("普通商户不允许传sub_mch_id", "20001")
		return
	case pt.provider() && p["sub_mch_id"] != "" && pt.subs[p["sub_mch_id"]] == nil:
		fail("受理关系不存在", "20001")
		return
	case p["bill_date"] == "":
		fail("missing parameter", "20001")
		return
	case s.systemError():
		fail("SYSTEMERROR", "")
		return
	}
	d, err := bill.ParseDate(p["bill_date"])
	if err != nil || len(p["bill_date"]) != 8 {
		fail(badBillDate.v2Msg, badBillDate.v2Code)
		return
	}
	gz := p["tar_type"] == "GZIP"
	if p["tar_type"] != "" && !gz {
		fail(badTarType.v2Msg, badTarType.v2Code)
		return
	}
	data, problem := s.tradeBill(billFilter{mchid: pt.m.MchID, sub: p["sub_mch_id"]}, d, bill.Type(cmp.Or(p["bill_type"], "ALL")))
	if problem != nil {
		fail(problem.v2Msg, problem.v2Code)
		return
	}
	s.log.Info("v2 bill", "bill_date", d, "bill_type", cmp.Or(p["bill_type"], "ALL"), "bytes", len(data))
	if gz {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(gzipBill(data, pt.m.MchID+"All"+d.String()+".csv"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(data)
}

// gzipBill compresses a bill, its gzip header naming the file as WeChat's does.
func gzipBill(data []byte, name string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Name = name
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

// billLocator is the v3 answer to a bill application, keys in the order
// WeChat sends them.
type billLocator struct {
	DownloadURL string `json:"download_url"`
	HashValue   string `json:"hash_value"`
	HashType    string `json:"hash_type"`
}

// v3TradeBill answers GET /v3/bill/tradebill.
func (s *Sim) v3TradeBill(r *http.Request, _ []byte, pt *party) v3Answer {
	q := r.URL.Query()
	d, err := bill.ParseDate(q.Get("bill_date"))
	if err != nil || len(q.Get("bill_date")) != 10 {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "bill_date must be yyyy-MM-dd")
	}
	sub := q.Get("sub_mchid")
	switch {
	case !pt.provider() && sub != "":
		return errDirectPartner
	case pt.provider() && sub != "" && pt.subs[sub] == nil:
		return errNoRelation
	}
	data, p := s.tradeBill(billFilter{mchid: pt.m.MchID, sub: sub}, d, bill.Type(cmp.Or(q.Get("bill_type"), "ALL")))
	return s.billAnswer(r, pt, data, p)
}

// v3FundFlowBill answers GET /v3/bill/fundflowbill.
func (s *Sim) v3FundFlowBill(r *http.Request, _ []byte, pt *party) v3Answer {
	q := r.URL.Query()
	d, err := bill.ParseDate(q.Get("bill_date"))
	if err != nil || len(q.Get("bill_date")) != 10 {
		return v3Err(http.StatusBadRequest, "PARAM_ERROR", "bill_date must be yyyy-MM-dd")
	}
	data, p := s.fundFlow(pt.m.MchID, d, q.Get("account_type"))
	return s.billAnswer(r, pt, data, p)
}

// billAnswer keeps a printed bill behind a fresh download token and
// answers its SHA-1 and URL.
func (s *Sim) billAnswer(r *http.Request, pt *party, data []byte, p *billProblem) v3Answer {
	if p != nil {
		return v3Err(p.status, p.v3Code, p.v2Msg)
	}
	tar := r.URL.Query().Get("tar_type")
	if tar != "" && tar != "GZIP" {
		return v3Err(badTarType.status, badTarType.v3Code, badTarType.v2Msg)
	}
	sum := sha1.Sum(data)
	token := randomAlnum(64)
	u := url.URL{Scheme: "https", Host: r.Host, Path: "/v3/billdownload/file", RawQuery: "token=" + token}
	if tar == "GZIP" {
		u.RawQuery += "&tartype=gzip"
	}
	s.mu.Lock()
	now := s.now()
	if s.billTokens == nil {
		s.billTokens = map[string]billDownload{}
	}
	for k, b := range s.billTokens {
		if now.After(b.expires) {
			delete(s.billTokens, k)
		}
	}
	s.billTokens[token] = billDownload{mchid: pt.m.MchID, data: data, gzip: tar == "GZIP", expires: now.Add(billTokenTTL)}
	s.mu.Unlock()
	return v3Answer{status: http.StatusOK, body: billLocator{DownloadURL: u.String(), HashValue: hex.EncodeToString(sum[:]), HashType: "SHA1"}}
}

// v3DownloadBill answers GET /v3/billdownload/file: the bill's bytes,
// unsigned (no Wechatpay-* headers), to the merchant whose v3 Authorization
// signs this exact path and query.
func (s *Sim) v3DownloadBill(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, code, msg string) {
		writeJSON(w, status, map[string]string{"code": code, "message": msg})
	}
	auth, err := v3.ParseAuthorization(r.Header.Get("Authorization"))
	var pt *party
	if err == nil {
		pt = s.dir.parties[auth.MchID]
	}
	switch {
	case err != nil:
		refuse(http.StatusUnauthorized, "SIGN_ERROR", "Authorization header is malformed")
		return
	case pt == nil || auth.SerialNo != pt.m.SerialNo:
		refuse(http.StatusForbidden, "NO_AUTH", "the bill was applied for by another merchant")
		return
	case v3.VerifyRequest(&pt.m.PrivateKey.PublicKey, r.Method, r.URL.RequestURI(), nil, auth, s.now()) != nil:
		refuse(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	}
	m := pt.m
	token := r.URL.Query().Get("token")
	s.mu.Lock()
	b, ok := s.billTokens[token]
	if ok && b.mchid != m.MchID {
		s.mu.Unlock()
		refuse(http.StatusForbidden, "NO_AUTH", "the bill was applied for by another merchant")
		return
	}
	corrupt := ok && s.dice.hit(s.faults.CorruptBillRate)
	if corrupt {
		s.injected["bill_corrupted"]++
	}
	s.mu.Unlock()
	if !ok || s.now().After(b.expires) || b.gzip != (r.URL.Query().Get("tartype") == "gzip") {
		refuse(http.StatusBadRequest, "INVALID_REQUEST", "下载链接无效或已过期, 请重新申请")
		return
	}
	data := b.data
	if corrupt {
		// A byte flipped on the way: the SHA-1 given with the URL no longer matches.
		data = slices.Clone(data)
		data[len(data)/2] ^= 0x20
		s.log.Info("fault: bill download corrupted")
	}
	if b.gzip {
		data = gzipBill(data, m.MchID+"All.csv")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}
