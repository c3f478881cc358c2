package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Verb names a command: the third token of its subject wxflow.cmd.<verb>.<origin>.
type Verb string

// The commands the engine accepts.
const (
	VerbCreate    Verb = "create"    // shop: a new order
	VerbAuthorize Verb = "authorize" // authorize worker: the payer's openid is known
	VerbPrepaid   Verb = "prepaid"   // prepay worker: WeChat returned a prepay_id
	VerbSigned    Verb = "signed"    // sign worker: front-end pay parameters built
	VerbNotify    Verb = "notify"    // notification handler or reconciler: WeChat says paid
	VerbRefund    Verb = "refund"    // shop or admin: queue a refund of part or all of what was paid
	VerbRefunded  Verb = "refunded"  // refund notification or query: a refund settled
	VerbClose     Verb = "close"     // shop, admin, expiry, close worker
	VerbFail      Verb = "fail"      // a worker met a final error
	VerbFlag      Verb = "flag"      // a worker or handler asks for a person's attention
	VerbReplay    Verb = "replay"    // admin, reconciler, a v2 refund notification: re-emit what the current state needs
	VerbResolve   Verb = "resolve"   // admin: a person clears one flag, saying why
)

// VerbSendRefund is the engine's own command, never on NATS (no origin may
// publish it): send the order's next queued refund to the refund worker,
// once it is due (refundqueue.go).
const VerbSendRefund Verb = "send_refund"

// CommandSubjectPrefix prefixes every command subject.
const CommandSubjectPrefix = "wxflow.cmd."

// Command is a request into the engine, published on
// wxflow.cmd.<verb>.<origin> with Nats-Msg-Id = <origin>/<ID>. ID is the
// idempotency key: the engine applies a command id at most once, and
// JetStream drops a re-published id inside its duplicate window. Exactly one
// of the payload fields matches Verb.
type Command struct {
	ID string `json:"id"`
	// Origin is who publishes the command: the last token of its subject,
	// which NATS permissions tie to the publisher. It is never read from
	// the payload: the intake sets it from the subject.
	Origin  Origin    `json:"-"`
	Verb    Verb      `json:"verb"`
	OrderID OrderID   `json:"order_id"`
	At      time.Time `json:"at"`
	// Actor says who asks: "shop:<name>", "worker:prepay", "wechat:notify",
	// "reconciler", "admin:<name>" … It is written to the order's history.
	Actor string `json:"actor,omitempty"`
	// Reason is a free text kept in the history (admin actions must give one).
	Reason string `json:"reason,omitempty"`
	// TraceID follows a shop's request through every process.
	TraceID string `json:"trace_id,omitempty"`

	Create    *CreateOrder `json:"create,omitempty"`
	Authorize *Authorize   `json:"authorize,omitempty"`
	Prepaid   *PrepaidInfo `json:"prepaid,omitempty"`
	Signed    *SignedInfo  `json:"signed,omitempty"`
	Notify    *Payment     `json:"notify,omitempty"`
	Refund    *RefundAsk   `json:"refund,omitempty"`
	Send      *RefundSend  `json:"send_refund,omitempty"`
	Refunded  *RefundDone  `json:"refunded,omitempty"`
	Close     *CloseAsk    `json:"close,omitempty"`
	Fail      *Failure     `json:"fail,omitempty"`
	Flag      *FlagInfo    `json:"flag,omitempty"`
	Resolve   *Resolution  `json:"resolve,omitempty"`
}

// Subject is where the command is published: wxflow.cmd.<verb>.<origin>.
func (c Command) Subject() string {
	return CommandSubjectPrefix + string(c.Verb) + "." + string(c.Origin)
}

// ErrNoOrigin is returned by Publish for a command that does not say who
// publishes it.
var ErrNoOrigin = errors.New("engine: a command needs an Origin to be published")

// CreateOrder is the payload of VerbCreate. Exactly one of OpenID, OAuthCode
// and LoginCode is set. RequestHash fingerprints the shop's request so that a
// reused idempotency key or out_trade_no with other content is refused.
type CreateOrder struct {
	Merchant string `json:"merchant"`
	// Shop is the authenticated shop that asks; the order records it.
	Shop        string `json:"shop,omitempty"`
	OutTradeNo  string `json:"out_trade_no"`
	Description string `json:"description"`
	AmountFen   int64  `json:"amount_fen"`
	PayAPI      PayAPI `json:"pay_api"`
	Client      Client `json:"client"`
	// AppID is the app the payer pays in; empty: the merchant's app for Client.
	AppID       string    `json:"appid,omitempty"`
	OpenID      string    `json:"openid,omitempty"`
	OAuthCode   string    `json:"oauth_code,omitempty"`
	LoginCode   string    `json:"login_code,omitempty"`
	ClientIP    string    `json:"client_ip,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	RequestHash string    `json:"request_hash,omitempty"`
}

// Authorize is the payload of VerbAuthorize.
type Authorize struct {
	OpenID string `json:"openid"`
}

// PrepaidInfo is the payload of VerbPrepaid.
type PrepaidInfo struct {
	PrepayID string `json:"prepay_id"`
}

// SignedInfo is the payload of VerbSigned: the front-end parameter object.
type SignedInfo struct {
	PayParams RawJSON `json:"pay_params"`
}

// Payment sources: how wxflow learnt that WeChat took the money.
const (
	SourceNotification = "notification" // a verified WeChat notification
	SourceQuery        = "query"        // an order query answered SUCCESS
)

// Payment is the payload of VerbNotify: what WeChat said about the payment.
// The engine checks AmountFen against the order before marking it paid.
type Payment struct {
	TransactionID string    `json:"transaction_id"`
	AmountFen     int64     `json:"amount_fen"`
	OpenID        string    `json:"openid,omitempty"`
	PaidAt        time.Time `json:"paid_at"`
	// Source is SourceNotification or SourceQuery; nothing else may mark an
	// order paid (the front end's "ok" never does).
	Source string `json:"source"`
}

// RefundAsk is the payload of VerbRefund. OutRefundNo is the refund's
// idempotency key at WeChat; the API derives it from the shop's request.
type RefundAsk struct {
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason,omitempty"`
}

// RefundSend is the payload of VerbSendRefund: the queued refund the engine
// means to send (the order's next one), so that a send decided on stale
// facts is refused rather than sending another.
type RefundSend struct {
	OutRefundNo string `json:"out_refund_no"`
}

// RefundDone is the payload of VerbRefunded: WeChat's final word on a refund.
type RefundDone struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id,omitempty"`
	// Succeeded is false when WeChat refused the refund for good or closed
	// it (REFUNDCLOSE / CLOSED).
	Succeeded bool   `json:"succeeded"`
	Source    string `json:"source"`
	// Code and Message are WeChat's for a refund that failed: the err_code
	// (v2) or code (v3) and message of its refusal, or the status word of a
	// refund it closed (REFUNDCLOSE, CLOSED), which comes with no message.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// CloseAsk is the payload of VerbClose. An order that may already have been
// offered to the payer (it has a prepay_id) is closed only once WeChat has
// confirmed: the first close emits EventCloseRequested for the close worker,
// which calls closeorder and sends Confirmed=true.
type CloseAsk struct {
	Confirmed bool `json:"confirmed"`
}

// Failure is the payload of VerbFail: a final error, with WeChat's code.
// State is the state the failed step started from: a failure of a step the
// order has already moved past (a late or replayed event) is refused.
type Failure struct {
	Step    string `json:"step"`
	Code    string `json:"code"`
	Message string `json:"message"`
	State   State  `json:"state,omitempty"`
	// Flag, when set, is raised with the failure: a person must act beyond
	// the order (merchant_misconfigured: the merchant's keys or apps).
	Flag string `json:"flag,omitempty"`
}

// FlagInfo is the payload of VerbFlag. Reason is the flag's name (flags.go:
// 1-64 of [0-9a-z_:.-]); the command's Reason says why.
type FlagInfo struct {
	Reason string `json:"reason"`
}

// Resolution is the payload of VerbResolve: the one flag a person clears.
// The command's Actor (admin:<who>) and Reason are required: they are the
// history's record of who cleared an alert, and why.
type Resolution struct {
	Flag string `json:"flag"`
}

// Publish sends cmd on its subject with Nats-Msg-Id = cmd.ID and waits for
// JetStream's PubAck: once it returns nil the command is durable and will be
// applied, even if the caller dies. header adds headers (e.g. ReplyHeader).
func Publish(ctx context.Context, js jetstream.JetStream, cmd Command, header nats.Header) (*jetstream.PubAck, error) {
	if cmd.Origin == "" || strings.ContainsAny(string(cmd.Origin), ".*> ") {
		return nil, fmt.Errorf("%w: %s %s", ErrNoOrigin, cmd.Verb, cmd.ID)
	}
	if cmd.At.IsZero() {
		cmd.At = time.Now().UTC()
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: cmd.Subject(), Data: b, Header: nats.Header{}}
	for k, v := range header {
		msg.Header[k] = v
	}
	// The message id is scoped by origin: a publisher cannot make JetStream
	// drop another's command by taking its id first.
	msg.Header.Set(jetstream.MsgIDHeader, string(cmd.Origin)+"/"+cmd.ID)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(pctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", cmd.Verb, cmd.ID, err)
	}
	return ack, nil
}
