// Package client is the Go client of wxflow for a shop's backend: the shop
// API over HTTP ([Client]), the same commands and wxflow's events over NATS
// ([NATS]), and the verification of wxflow's webhooks ([VerifyWebhook],
// [WebhookHandler]). It imports nothing of wxflow and only nats.go besides
// the standard library: its types mirror the JSON of docs/API.md.
//
// # Taking a payment
//
// Make one [Client] with the API's internal address and the shop's key
// (`wxflow shop add` prints it once):
//
//	c, err := client.New("https://wxflow.internal.example", os.Getenv("WXFLOW_SHOP_KEY"))
//
// Create the order with an Idempotency-Key (a retry then never makes a
// second order) and the payer: an openid you know, the code of WeChat's
// OAuth redirect ([Client.OAuthURL], [PayerOAuthCode]) or a mini-program's
// wx.login() code ([PayerLoginCode]):
//
//	res, err := c.CreateOrder(ctx, client.CreateOrderRequest{
//		AmountFen: 1990, Description: "tea", PayAPI: client.PayV3,
//		Payer: client.PayerOpenID(openid), IdempotencyKey: "cart-1001",
//	})
//
// Within moments the order is signed: fetch its pay parameters
// ([Client.PayParams]; ErrNotSigned until then) and hand the shape your
// page uses to it (Bridge for WeixinJSBridge, ChooseWXPay after wx.config,
// whose config [Client.JSSDKConfig] signs, RequestPayment in a
// mini-program). The page's "ok" is never proof of payment: the order is
// paid when wxflow says so ([Order.Paid]), which you learn by polling
// [Client.GetOrder], from a webhook ([WebhookHandler]) or on NATS
// ([NATS.Feed]). Refund a paid order with [Client.Refund] (give an
// OutRefundNo); close an unpaid one with [Client.CloseOrder].
//
// # Errors and retries
//
// A refusal is an [*Error] with the API's code, reason and, for invalid
// input, every problem; test it with errors.Is against [ErrNotFound],
// [ErrConflict], [ErrOverRefund], [ErrInvalidState], [ErrRateLimited] … The
// client retries only what is safe to send again ([RetryPolicy]): a 429
// after its Retry-After, and a network error or a 5xx for reads, closes,
// and creates and refunds that carry their key or number. A 202 "pending"
// answer is a success: the command is durable and will be applied.
//
// # NATS
//
// A shop that lives on wxflow's NATS connects as its user, shop-<name>,
// with [ShopNATSOptions], and wraps the connection with [NewNATS]. It may
// then create, refund and close ([NATS.CreateOrder] …; each waits for the
// engine's answer), hear its merchants' events durably and at least once
// ([NATS.Feed]: a feed per merchant that wxflow keeps for the shop), or
// live ([NATS.Watch]: one order, one type or one merchant, at most once).
//
// # Webhooks
//
// wxflow posts each event to a shop's webhook endpoint, signed with the
// endpoint's secret in the Wxflow-Signature header. [WebhookHandler]
// verifies the signature and its time, decodes the [Event] and hands it to
// your function; deliveries come at least once.
package client
