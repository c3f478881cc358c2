// Package demoshop is a shop that takes WeChat payments through wxflow, as a
// shop's pages and backend would: `wxflow dev` serves it at /demo/ on its own
// listener. Pick an item, sign in with WeChat's OAuth, pay with WeChat's
// JS-SDK (wx.config, then wx.chooseWXPay), see the order paid, refund it.
// Beside it, the mini-program flow (a wx.login code, then the parameters of
// wx.requestPayment), which a browser can only show.
//
// Its backend half is a shop backend like any other: it knows the shop's API
// key and calls wxflow's shop API over HTTP (/v1/oauth/authorize,
// /v1/orders, /v1/jssdk/config, /v1/orders/{id}/pay-params, refunds); it
// imports nothing of the engine, and reads the API's JSON into its own
// types. Its front-end half (static/shop.js) is the JavaScript a shop's page
// needs, written to be copied.
//
// The page never takes the JS-SDK's success callback for a payment: it polls
// the shop's backend (GET /demo/api/orders/{id}, once a second), which reads
// the order from wxflow, and says "paid" only when wxflow has applied
// WeChat's verified notification (or its own order query) and paid_fen is
// the amount. A refund is shown the same way, from the order's refunded_fen,
// state and refunds, so it reads the same whether the API answers a refund
// with the order or with the queued refund.
//
// In a browser there is no WeChat client: the page loads the simulator's
// stand-in WeixinJSBridge (workers/wechat/sim) before the JS-SDK, which plays
// WeChat's in-app browser, its signature checks and its pay sheet.
package demoshop
