package v2

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/bill"
)

// DownloadBill downloads the trade bill (下载交易账单, pay/downloadbill) of
// type t for the Beijing day d and returns it as WeChat printed it,
// decompressed (it is asked for with tar_type=GZIP). The answer is not
// signed: the caller checks it by parsing it ([bill.Parse] checks the
// summary against the rows). A day without trades is an error matching
// [wechat.ErrNoBill]; a bill not made yet, [wechat.ErrBillNotReady].
func (c *Client) DownloadBill(ctx context.Context, d bill.Date, t bill.Type) ([]byte, error) {
	const api = "pay/downloadbill"
	m := c.cfg.Merchant
	p := map[string]string{"appid": m.AppID, "mch_id": m.MchID, "nonce_str": NonceStr(), "bill_date": d.Compact(),
		"bill_type": string(t), "tar_type": "GZIP"}
	if c.cfg.SignType != SignMD5 {
		p["sign_type"] = string(c.cfg.SignType)
	}
	p["sign"] = Sign(p, string(m.APIKey), c.cfg.SignType)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/pay/downloadbill", bytes.NewReader(EncodeXML(p)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &wechat.Error{API: api, Retryable: ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), Err: err}
	}
	defer resp.Body.Close()
	body, err := bill.ReadAll(resp.Body, bill.MaxBytes)
	if err != nil {
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: !errors.Is(err, bill.ErrTooLarge), Err: err}
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Retryable: true}
	case resp.StatusCode != http.StatusOK:
		return nil, &wechat.Error{API: api, HTTPStatus: resp.StatusCode, Message: string(bytes.TrimSpace(body[:min(len(body), 200)]))}
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("<")):
		// A failure is a small XML, never compressed (and never a bill,
		// which starts with its BOM).
		out, err := ParseXML(body)
		if err != nil {
			return nil, &wechat.Error{API: api, Retryable: true, Err: err}
		}
		msg := out["return_msg"]
		return nil, &wechat.Error{API: api, Code: msg, Message: out["error_code"], Retryable: retryableBillMsg(msg)}
	case !bill.IsGzip(body):
		return nil, &wechat.Error{API: api, Retryable: true, Err: errors.New("answer is neither gzip nor an error XML")}
	}
	data, err := bill.Gunzip(body, bill.MaxBytes)
	if err != nil {
		return nil, &wechat.Error{API: api, Retryable: !errors.Is(err, bill.ErrTooLarge), Err: err}
	}
	return data, nil
}

// retryableBillMsg says which failures of downloadbill pass: WeChat's
// transient ones, and a bill still being made.
func retryableBillMsg(msg string) bool {
	switch msg {
	case "SYSTEMERROR", "CompressGZip Error", "UnCompressGZip Error", "Bill Creating":
		return true
	}
	return false
}
