package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// orderAnswer is the answer of a command on an order: {"order": …}, or
// {"order": {"id": …}, "pending": true} when the engine did not answer in time.
type orderAnswer struct {
	Order   Order `json:"order"`
	Pending bool  `json:"pending"`
}

func (c *Client) orderCommand(ctx context.Context, k call) (OrderResult, error) {
	a, err := c.do(ctx, k)
	if err != nil {
		return OrderResult{}, err
	}
	var v orderAnswer
	if err := decode(k, a, &v); err != nil {
		return OrderResult{}, err
	}
	return OrderResult{Order: v.Order, Pending: v.Pending || a.status == http.StatusAccepted && v.Order.State == "",
		Replayed: a.header.Get("Idempotent-Replayed") == "true"}, nil
}

// CreateOrder asks wxflow for a new order (POST /v1/orders). The answer is
// the order (with an openid it is authorized already), or Pending when the
// engine has not answered within its time: poll [Client.GetOrder].
//
// Give r an IdempotencyKey: the same key and request are then one order
// however often sent, and the client retries a create that met a network
// error or a 5xx. The same key with another request is [ErrConflict].
// wxflow checks r (see [CreateOrderRequest.Validate]): an invalid one is an
// [*Error] with Code "invalid_fields" listing every problem.
func (c *Client) CreateOrder(ctx context.Context, r CreateOrderRequest) (OrderResult, error) {
	if r.IdempotencyKey != "" {
		var ps problems
		checkToken(&ps, "Idempotency-Key", r.IdempotencyKey, maxIdempotencyKey)
		if err := ps.err(); err != nil {
			return OrderResult{}, err
		}
	}
	return c.orderCommand(ctx, call{method: http.MethodPost, path: "/v1/orders", body: r.body(),
		idemKey: r.IdempotencyKey, safe: r.IdempotencyKey != ""})
}

// GetOrder reads one of the shop's orders (GET /v1/orders/{id}): the order,
// its history (refused requests included) and its refunds. Another shop's
// order, like one that does not exist, is [ErrNotFound].
func (c *Client) GetOrder(ctx context.Context, id string) (OrderView, error) {
	if err := checkOrderID(id); err != nil {
		return OrderView{}, err
	}
	k := call{method: http.MethodGet, path: "/v1/orders/" + id, safe: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return OrderView{}, err
	}
	var v OrderView
	return v, decode(k, a, &v)
}

// CloseOrder closes an unpaid order (POST /v1/orders/{id}/close). Once
// WeChat has a prepay_id, wxflow closes there first: the answer is then the
// order still signed, which becomes closed when WeChat has closed it (or
// notified, if the payer paid meanwhile). Closing again is answered as the
// first time (Replayed). A paid order is [ErrInvalidState].
func (c *Client) CloseOrder(ctx context.Context, id string) (OrderResult, error) {
	if err := checkOrderID(id); err != nil {
		return OrderResult{}, err
	}
	return c.orderCommand(ctx, call{method: http.MethodPost, path: "/v1/orders/" + id + "/close", jsonType: true, safe: true})
}

// PayParams are an order's signed pay parameters in the three shapes WeChat's
// front ends want. The signature is the same; the keys differ. Hand the one
// your page uses to it unchanged.
type PayParams struct {
	// Bridge is for WeixinJSBridge.invoke('getBrandWCPayRequest', …) in an
	// Official Account page: appId, timeStamp, nonceStr, package, signType, paySign.
	Bridge json.RawMessage `json:"bridge"`
	// ChooseWXPay is for wx.chooseWXPay(…) of the JS-SDK, after wx.config:
	// no appId, and timestamp in lower case.
	ChooseWXPay json.RawMessage `json:"choose_wx_pay"`
	// RequestPayment is for wx.requestPayment(…) in a mini-program: no appId.
	RequestPayment json.RawMessage `json:"request_payment"`
}

// Signed is what the pay parameters say, read from the Bridge shape.
type Signed struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"` // "prepay_id=…"
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// Signed reads the parameters' fields.
func (p PayParams) Signed() (Signed, error) {
	var s Signed
	if err := json.Unmarshal(p.Bridge, &s); err != nil {
		return s, fmt.Errorf("client: pay parameters: %w", err)
	}
	return s, nil
}

// PayParams reads an order's signed pay parameters (GET
// /v1/orders/{id}/pay-params). They exist only while the order is signed:
// before and after, [ErrNotSigned] (once paid, do not pay again).
func (c *Client) PayParams(ctx context.Context, id string) (PayParams, error) {
	if err := checkOrderID(id); err != nil {
		return PayParams{}, err
	}
	k := call{method: http.MethodGet, path: "/v1/orders/" + id + "/pay-params", safe: true}
	a, err := c.do(ctx, k)
	if err != nil {
		return PayParams{}, err
	}
	var p PayParams
	return p, decode(k, a, &p)
}

// validOrderID: 1-64 of [0-9A-Za-z_-], as wxflow's order ids are.
func validOrderID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkOrderID refuses, without a request, an id no order has: as wxflow
// would, [ErrNotFound]. It keeps the id one segment of the path.
func checkOrderID(id string) error {
	if !validOrderID(id) {
		return &Error{Code: CodeNotFound, Reason: fmt.Sprintf("no such order: %q is not an order id", id)}
	}
	return nil
}
