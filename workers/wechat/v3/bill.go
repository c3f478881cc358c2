package v3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// BillLocator is WeChat's answer to a bill application: where to download
// the bill (a URL that works for minutes) and the SHA-1 of its
// decompressed bytes. The answer is signed, so the hash is WeChat's word.
type BillLocator struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// billDownloadPath is the only path a download URL may have.
const billDownloadPath = "/v3/billdownload/file"

// TradeBill applies for the trade bill (申请交易账单) of type t for the Beijing
// day d, compressed. A day without trades is an error matching
// [wechat.ErrNoBill]; a bill not made yet, [wechat.ErrBillNotReady].
func (c *Client) TradeBill(ctx context.Context, d bill.Date, t bill.Type) (BillLocator, error) {
	var loc BillLocator
	err := c.do(ctx, http.MethodGet, "/v3/bill/tradebill?bill_date="+d.String()+"&bill_type="+url.QueryEscape(string(t))+"&tar_type=GZIP", nil, &loc)
	return loc, err
}

// FundFlowBill applies for the fund-flow bill (申请资金账单) of account
// (BASIC, OPERATION or FEES) for the Beijing day d, compressed.
func (c *Client) FundFlowBill(ctx context.Context, d bill.Date, account string) (BillLocator, error) {
	var loc BillLocator
	err := c.do(ctx, http.MethodGet, "/v3/bill/fundflowbill?bill_date="+d.String()+"&account_type="+url.QueryEscape(account)+"&tar_type=GZIP", nil, &loc)
	return loc, err
}

// DownloadBill downloads what loc points to (下载账单) and returns it
// decompressed, once its SHA-1 is the one WeChat gave; else the error
// matches [wechat.ErrBillHash] and is retryable (apply again: the URL may
// have expired too). The request is signed like any v3 call; the answer is
// not (WeChat signs no download). It goes to the client's base URL, never
// to another host the locator might name: the Authorization is for WeChat.
func (c *Client) DownloadBill(ctx context.Context, loc BillLocator) ([]byte, error) {
	const api = "v3/billdownload/file"
	if !strings.EqualFold(loc.HashType, "SHA1") {
		return nil, &wechat.Error{API: api, Message: fmt.Sprintf("hash_type %q: only SHA1 is known", loc.HashType)}
	}
	u, err := url.Parse(loc.DownloadURL)
	if err != nil || u.Path != billDownloadPath || u.RawQuery == "" {
		return nil, &wechat.Error{API: api, Err: fmt.Errorf("%w: download_url %q", wechat.ErrMalformed, loc.DownloadURL)}
	}
	pathAndQuery := u.EscapedPath() + "?" + u.RawQuery
	m := c.cfg.Merchant
	nonce, ts := NonceStr(), c.cfg.Now().Unix()
	sig, err := SignMessage(m.Signer(), RequestMessage(http.MethodGet, pathAndQuery, ts, nonce, nil))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+pathAndQuery, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", AuthorizationHeader(m.MchID, m.SerialNo, nonce, ts, sig))
	req.Header.Set("Accept", "*/*")
	req.Header.Set("User-Agent", "wxflow")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &wechat.Error{API: api, Retryable: ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), Err: err}
	}
	defer resp.Body.Close()
	raw, err := bill.ReadAll(resp.Body, bill.MaxBytes)
	if err != nil {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: !errors.Is(err, bill.ErrTooLarge), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		// Unsigned, and nothing is acted on but applying again.
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true, Message: string(raw[:min(len(raw), 200)])}
	}
	data := raw
	if bill.IsGzip(raw) {
		if data, err = bill.Gunzip(raw, bill.MaxBytes); err != nil {
			return nil, &wechat.Error{API: api, Retryable: !errors.Is(err, bill.ErrTooLarge), Err: err}
		}
	}
	if got := bill.SHA1(data); !bill.SameHash(got, loc.HashValue) {
		return nil, &wechat.Error{API: api, Retryable: true, Err: fmt.Errorf("%w: SHA-1 %s, WeChat gave %s", wechat.ErrBillHash, got, loc.HashValue)}
	}
	return data, nil
}
