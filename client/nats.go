package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS sends a shop's commands to wxflow over NATS and hears its events,
// as the shop's NATS user (shop-<name>, made by `wxflow shop add`). It is
// safe for concurrent use. The shop opens the connection itself, with its
// seed and its inbox prefix ([ShopNATSOptions]); NATS closes nothing of it.
//
// Commands over NATS are what the HTTP API sends for the shop, with what
// the API would add done here: the request is checked as the API would
// ([CreateOrderRequest.Validate]), the order id and merchant numbers are
// made, and the engine's answer is awaited on the shop's inbox. The shop
// API over HTTP ([Client]) needs none of this and is the simpler way;
// NATS suits a shop that already lives on wxflow's NATS.
type NATS struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg NATSConfig
}

// NATSConfig says who the shop is on NATS.
type NATSConfig struct {
	// Shop is the shop's name (its NATS user is shop-<Shop>). Required.
	Shop string
	// Merchants are the merchants the shop acts for: [NATS.Feed] and
	// [NATS.Watch] hear them all unless told fewer. Required for those.
	Merchants []string
	// AnswerTimeout is how long a command waits for the engine's answer
	// once NATS has it durably (5 s); then the result is Pending.
	AnswerTimeout time.Duration
}

// NATSInboxPrefix is the inbox prefix of the shop's NATS user: the only
// inbox its user may hear, where JetStream's acknowledgements and the
// engine's answers come. Connect with nats.CustomInboxPrefix(NATSInboxPrefix(shop)).
func NATSInboxPrefix(shop string) string { return "_INBOX_shop-" + shop }

// ShopNATSOptions are the options the shop's connection needs: its nkey
// seed (the file `wxflow shop add` wrote: <data>/nats/creds/shop-<name>.nk)
// and its inbox prefix. Add TLS options and a name as you wish.
//
//	opts, err := client.ShopNATSOptions("acme", "/etc/acme/shop-acme.nk")
//	nc, err := nats.Connect("tls://nats.internal:4222", opts...)
func ShopNATSOptions(shop, seedFile string) ([]nats.Option, error) {
	if !validToken(shop) {
		return nil, fmt.Errorf("client: shop name %q: want [a-z0-9_-]", shop)
	}
	seed, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, fmt.Errorf("client: shop %s's seed: %w", shop, err)
	}
	return []nats.Option{seed, nats.CustomInboxPrefix(NATSInboxPrefix(shop))}, nil
}

// ErrInboxPrefix: the connection's inboxes are not the shop's; its user
// could not hear JetStream's acknowledgements nor the engine's answers.
var ErrInboxPrefix = errors.New("client: the NATS connection does not use the shop's inbox prefix (nats.CustomInboxPrefix(client.NATSInboxPrefix(shop)))")

// NewNATS is the shop cfg.Shop on the connection nc, which must have been
// opened with the shop's inbox prefix ([ShopNATSOptions]).
func NewNATS(nc *nats.Conn, cfg NATSConfig) (*NATS, error) {
	if nc == nil {
		return nil, errors.New("client: NewNATS: no connection")
	}
	if !validToken(cfg.Shop) {
		return nil, fmt.Errorf("client: shop name %q: want [a-z0-9_-]", cfg.Shop)
	}
	for _, m := range cfg.Merchants {
		if !validToken(m) {
			return nil, fmt.Errorf("client: merchant name %q: want [a-z0-9_-]", m)
		}
	}
	if !strings.HasPrefix(nc.NewInbox(), NATSInboxPrefix(cfg.Shop)+".") {
		return nil, ErrInboxPrefix
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 5 * time.Second
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &NATS{nc: nc, js: js, cfg: cfg}, nil
}

// The engine's command, as wxflow.cmd.<verb>.shop_<name> carries it
// (engine.Command): only the verbs a shop may send.
type command struct {
	ID      string         `json:"id"`
	Verb    string         `json:"verb"`
	OrderID string         `json:"order_id"`
	At      time.Time      `json:"at"`
	Reason  string         `json:"reason,omitempty"`
	TraceID string         `json:"trace_id,omitempty"`
	Create  *createPayload `json:"create,omitempty"`
	Refund  *refundBody    `json:"refund,omitempty"`
	Close   *closePayload  `json:"close,omitempty"`
}

type createPayload struct {
	Merchant    string    `json:"merchant"`
	Shop        string    `json:"shop"`
	OutTradeNo  string    `json:"out_trade_no"`
	Description string    `json:"description"`
	AmountFen   int64     `json:"amount_fen"`
	PayAPI      PayAPI    `json:"pay_api"`
	Frontend    Frontend  `json:"client"`
	AppID       string    `json:"appid,omitempty"`
	OpenID      string    `json:"openid,omitempty"`
	OAuthCode   string    `json:"oauth_code,omitempty"`
	LoginCode   string    `json:"login_code,omitempty"`
	ClientIP    string    `json:"client_ip,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	RequestHash string    `json:"request_hash"`
}

type closePayload struct {
	Confirmed bool `json:"confirmed"`
}

// commandResult is the engine's answer (engine.Result).
type commandResult struct {
	Applied bool    `json:"applied"`
	Code    string  `json:"code"`
	Reason  string  `json:"reason"`
	Order   Order   `json:"order"`
	Events  []Event `json:"events"`
}

// The headers of a command: JetStream's de-duplication id, and where the
// engine answers.
const (
	msgIDHeader = "Nats-Msg-Id"
	replyHeader = "Wxflow-Reply"
)

// derive is a hex SHA-256 of a purpose and its parts, n characters long:
// ids that the same request always gives.
func derive(n int, purpose string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(purpose))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))[:n]
}

// randomHex is n random hex characters.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24+)
	return hex.EncodeToString(b)[:n]
}

// CreateOrder creates an order for merchant (one the shop acts for) by
// publishing wxflow.cmd.create.shop_<name>, and waits for the engine's
// answer. r is checked first as the API would ([CreateOrderRequest.Validate]):
// over NATS nothing else checks it before WeChat.
//
// The order's id is made here: from r.IdempotencyKey when given (the same
// shop and key, the same order: sending again is safe, within NATS's
// duplicate window and after it), else at random. Keep the keys
// unguessable: another shop that knew one could take its order id first.
// r.OutTradeNo, when empty, is made from the id as the API does.
//
// Pending means NATS has the command durably and the engine has not
// answered in time, or (also Replayed) that the same command was sent
// within the duplicate window and its answer went to the first send: read
// the order over HTTP or hear its events.
func (n *NATS) CreateOrder(ctx context.Context, merchant string, r CreateOrderRequest) (OrderResult, error) {
	if err := r.Validate(); err != nil {
		return OrderResult{}, err
	}
	if !validToken(merchant) {
		return OrderResult{}, &Error{Code: CodeMerchantNotAllowed, Reason: fmt.Sprintf("merchant %q is not a merchant's name", merchant)}
	}
	id := "o_" + randomHex(26)
	if r.IdempotencyKey != "" {
		id = "o_" + derive(26, "wxflow nats order id", n.cfg.Shop, r.IdempotencyKey)
	}
	b := r.body()
	p := &createPayload{Merchant: merchant, Shop: n.cfg.Shop, OutTradeNo: b.OutTradeNo, Description: b.Description,
		AmountFen: b.AmountFen, PayAPI: b.PayAPI, Frontend: b.Frontend, AppID: b.AppID, OpenID: b.OpenID, OAuthCode: b.OAuthCode,
		LoginCode: b.LoginCode, ClientIP: b.ClientIP}
	if p.OutTradeNo == "" {
		p.OutTradeNo = "wxf" + strings.TrimPrefix(id, "o_")
	}
	if p.Frontend == "" {
		p.Frontend = FrontendJSAPI
		if p.LoginCode != "" {
			p.Frontend = FrontendMiniProgram
		}
	}
	if r.ExpiresIn > 0 {
		p.ExpiresAt = time.Now().Add(r.ExpiresIn).UTC()
	}
	// The fingerprint of what was asked (not of when): the same request
	// again is the order that exists, another one with its key a conflict.
	fp, _ := json.Marshal(struct {
		Merchant string     `json:"merchant"`
		Body     createBody `json:"body"`
	}{merchant, b})
	p.RequestHash = derive(64, "wxflow nats create", string(fp))
	res, err := n.send(ctx, command{ID: "create:" + id + ":" + p.RequestHash[:16], Verb: "create", OrderID: id, Create: p})
	if err != nil {
		return OrderResult{}, err
	}
	return res.orderResult(id)
}

// Refund asks to refund part or all of one of the shop's paid orders by
// publishing wxflow.cmd.refund.shop_<name>, and waits for the engine's
// answer. r is checked first as the API would. The refund's number is
// r.OutRefundNo, else made from r.IdempotencyKey, else at random (then a
// second send is a second refund): give one of the two.
func (n *NATS) Refund(ctx context.Context, orderID string, r RefundRequest) (RefundResult, error) {
	if err := checkOrderID(orderID); err != nil {
		return RefundResult{}, err
	}
	if err := r.Validate(); err != nil {
		return RefundResult{}, err
	}
	no := r.OutRefundNo
	switch {
	case no == "" && r.IdempotencyKey != "":
		no = "wxr" + derive(29, "wxflow nats out_refund_no", n.cfg.Shop, orderID, r.IdempotencyKey)
	case no == "":
		no = "wxr" + randomHex(29)
	}
	res, err := n.send(ctx, command{ID: fmt.Sprintf("refund:%s:%s:%d", orderID, no, r.AmountFen), Verb: "refund", OrderID: orderID,
		Reason: r.Reason, Refund: &refundBody{OutRefundNo: no, AmountFen: r.AmountFen, Reason: r.Reason}})
	if err != nil {
		return RefundResult{}, err
	}
	out := RefundResult{Refund: Refund{OrderID: orderID, OutRefundNo: no, AmountFen: r.AmountFen, Reason: r.Reason}}
	switch {
	case !res.answered:
		out.Pending, out.Replayed = true, res.duplicate
		return out, nil
	case !res.answer.Applied && res.answer.Code != "duplicate" && res.answer.Code != "duplicate_command":
		return RefundResult{}, &Error{Code: res.answer.Code, Reason: res.answer.Reason}
	}
	// The refund as this command left it, from the engine's events; a
	// repeat's answer carries none (the order's refunds are read over HTTP).
	out.Replayed = !res.answer.Applied
	for _, e := range res.answer.Events {
		if e.Refund != nil && e.Refund.OutRefundNo == no {
			out.Refund = *e.Refund
		}
	}
	return out, nil
}

// CloseOrder closes one of the shop's unpaid orders by publishing
// wxflow.cmd.close.shop_<name>, and waits for the engine's answer: as
// [Client.CloseOrder].
func (n *NATS) CloseOrder(ctx context.Context, orderID string) (OrderResult, error) {
	if err := checkOrderID(orderID); err != nil {
		return OrderResult{}, err
	}
	res, err := n.send(ctx, command{ID: "close:" + orderID + ":shop", Verb: "close", OrderID: orderID,
		Reason: "closed by the shop", Close: &closePayload{}})
	if err != nil {
		return OrderResult{}, err
	}
	return res.orderResult(orderID)
}

// sent is a command's fate: the engine's answer, or none yet.
type sent struct {
	answer    commandResult
	answered  bool
	duplicate bool // JetStream had the command already: the answer went to the first send
}

// orderResult turns the engine's answer into the API's: applied, the same
// request again (the order as it is), or a refusal.
func (s sent) orderResult(id string) (OrderResult, error) {
	switch {
	case !s.answered:
		return OrderResult{Order: Order{ID: id}, Pending: true, Replayed: s.duplicate}, nil
	case s.answer.Applied:
		return OrderResult{Order: s.answer.Order}, nil
	case s.answer.Code == "exists" || s.answer.Code == "duplicate_command" && s.answer.Order.ID != "":
		return OrderResult{Order: s.answer.Order, Replayed: true}, nil
	}
	return OrderResult{}, &Error{Code: s.answer.Code, Reason: s.answer.Reason}
}

// send publishes c on wxflow.cmd.<verb>.shop_<name> with its de-duplication
// id, waits for JetStream's acknowledgement (then the command is durable and
// will be applied) and for the engine's answer on the shop's inbox.
func (n *NATS) send(ctx context.Context, c command) (sent, error) {
	origin := "shop_" + n.cfg.Shop
	c.At = time.Now().UTC()
	data, err := json.Marshal(c)
	if err != nil {
		return sent{}, fmt.Errorf("client: %s %s: %w", c.Verb, c.OrderID, err)
	}
	inbox := n.nc.NewInbox()
	answers := make(chan *nats.Msg, 1)
	sub, err := n.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return sent{}, fmt.Errorf("client: %s %s: %w", c.Verb, c.OrderID, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := nats.NewMsg("wxflow.cmd." + c.Verb + "." + origin)
	msg.Data = data
	msg.Header.Set(msgIDHeader, origin+"/"+c.ID)
	msg.Header.Set(replyHeader, inbox)
	ack, err := n.js.PublishMsg(ctx, msg)
	if err != nil {
		return sent{}, fmt.Errorf("client: %s %s: %w", c.Verb, c.OrderID, err)
	}
	if ack.Duplicate {
		return sent{duplicate: true}, nil
	}
	t := time.NewTimer(n.cfg.AnswerTimeout)
	defer t.Stop()
	select {
	case m := <-answers:
		var res commandResult
		if err := json.Unmarshal(m.Data, &res); err != nil {
			return sent{}, fmt.Errorf("client: %s %s: the engine's answer: %w", c.Verb, c.OrderID, err)
		}
		return sent{answer: res, answered: true}, nil
	case <-t.C:
		return sent{}, nil
	case <-ctx.Done():
		return sent{}, fmt.Errorf("client: %s %s is sent, its answer not awaited: %w", c.Verb, c.OrderID, ctx.Err())
	}
}
