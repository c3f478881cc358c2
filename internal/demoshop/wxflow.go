package demoshop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// wxflowAPI is the shop backend's client of wxflow's shop API: JSON over
// HTTP with the shop's key, as any shop calls it. It never follows a
// redirect: /v1/oauth/authorize answers one for the payer's browser.
type wxflowAPI struct {
	base string
	key  string
	http *http.Client
}

// apiError is an answer of the shop API other than 2xx: its status, and the
// error's code and reason (docs/API.md, "Errors").
type apiError struct {
	Status int
	Code   string
	Reason string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("wxflow answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("wxflow answered HTTP %d %s: %s", e.Status, e.Code, e.Reason)
}

// errorCode is the API's error code of err, or "".
func errorCode(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// call sends in (when not nil) as JSON and decodes a 2xx answer into out
// (when not nil). header holds name, value pairs. It returns the answer's
// status and Location header.
func (c *wxflowAPI) call(ctx context.Context, method, path string, in, out any, header ...string) (int, string, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, "", err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("wxflow %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("wxflow %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				Code   string `json:"code"`
				Reason string `json:"reason"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, "", &apiError{Status: resp.StatusCode, Code: e.Error.Code, Reason: e.Error.Reason}
	}
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("wxflow %s %s: the answer is not the JSON expected: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// order is the part of wxflow's order the shop reads.
type order struct {
	ID            string `json:"id"`
	Description   string `json:"description"`
	AmountFen     int64  `json:"amount_fen"`
	PayAPI        string `json:"pay_api"`
	Client        string `json:"client"`
	State         string `json:"state"`
	PaidFen       int64  `json:"paid_fen"`
	RefundedFen   int64  `json:"refunded_fen"`
	TransactionID string `json:"transaction_id"`
	FailReason    string `json:"fail_reason"`
}

// historyEntry is one line of an order's history.
type historyEntry struct {
	At      string `json:"at"`
	Applied bool   `json:"applied"`
	Type    string `json:"type"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
}

// refundEntry is one refund of an order. Its status is "state" in the
// order's refunds (pending, succeeded, failed) and "status" in a queued
// refund (queued, pending, succeeded, failed): the shop reads either.
type refundEntry struct {
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	State       string `json:"state"`
	Status      string `json:"status"`
}

// status is the refund's status, whichever name the API gave it.
func (r refundEntry) status() string {
	if r.Status != "" {
		return r.Status
	}
	return r.State
}

// orderView is GET /v1/orders/{id}.
type orderView struct {
	Order   order          `json:"order"`
	History []historyEntry `json:"history"`
	Refunds []refundEntry  `json:"refunds"`
}

// createRequest is POST /v1/orders.
type createRequest struct {
	AmountFen   int64  `json:"amount_fen"`
	Description string `json:"description"`
	PayAPI      string `json:"pay_api"`
	OAuthCode   string `json:"oauth_code,omitempty"`
	LoginCode   string `json:"login_code,omitempty"`
	Client      string `json:"client"`
	ClientIP    string `json:"client_ip,omitempty"`
}

// createOrder creates an order; idempotencyKey makes a repeat (a reload of
// the OAuth callback) answer the same order. A 202 (the engine was slow) has
// the order's id too.
func (c *wxflowAPI) createOrder(ctx context.Context, q createRequest, idempotencyKey string) (string, error) {
	var out struct {
		Order struct {
			ID string `json:"id"`
		} `json:"order"`
	}
	if _, _, err := c.call(ctx, http.MethodPost, "/v1/orders", q, &out, "Idempotency-Key", idempotencyKey); err != nil {
		return "", err
	}
	if out.Order.ID == "" {
		return "", errors.New("wxflow POST /v1/orders: the answer names no order")
	}
	return out.Order.ID, nil
}

// getOrder reads an order, its history and its refunds.
func (c *wxflowAPI) getOrder(ctx context.Context, id string) (orderView, error) {
	var v orderView
	_, _, err := c.call(ctx, http.MethodGet, "/v1/orders/"+url.PathEscape(id), nil, &v)
	return v, err
}

// authorizeURL asks wxflow for WeChat's OAuth page that brings the payer back
// to redirectURI with a code.
func (c *wxflowAPI) authorizeURL(ctx context.Context, redirectURI, state string) (string, error) {
	q := url.Values{"redirect_uri": {redirectURI}, "scope": {"snsapi_base"}, "state": {state}}
	status, loc, err := c.call(ctx, http.MethodGet, "/v1/oauth/authorize?"+q.Encode(), nil, nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusFound || !strings.HasPrefix(loc, "http") {
		return "", fmt.Errorf("wxflow GET /v1/oauth/authorize: HTTP %d without a redirect", status)
	}
	return loc, nil
}

// refundAnswer is the answer of POST /v1/orders/{id}/refunds, in either
// shape: the order ({"order": {…}}) or the queued refund ({"out_refund_no",
// "status", …}).
type refundAnswer struct {
	Order *struct {
		State string `json:"state"`
	} `json:"order"`
	OutRefundNo string `json:"out_refund_no"`
	Status      string `json:"status"`
	Pending     bool   `json:"pending"`
}
