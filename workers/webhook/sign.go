package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The headers of every delivery. The body is the event's JSON (engine.Event)
// exactly as published on wxflow.evt.<merchant>.<type>.<order_id>.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" ([Sign]).
	SignatureHeader = "Wxflow-Signature"
	// EventIDHeader carries the event's id: receivers dedupe by it (a
	// delivery may come more than once).
	EventIDHeader = "Wxflow-Event-Id"
	// EventTypeHeader carries the event's type (notified, refunded, …).
	EventTypeHeader = "Wxflow-Event-Type"
)

// Tolerance is how far a receiver should accept a signature's time from
// its own clock: a captured request replayed later than this is refused.
const Tolerance = 5 * time.Minute

// Sign returns the Wxflow-Signature value of body sent at t under the
// endpoint's secret: "t=<t in unix seconds>,v1=<lowercase hex of
// HMAC-SHA256(key, "<t>.<body>")>", where the key is the secret string as
// shown when the endpoint was made (whsec_…, every byte of it). The time is
// signed with the body, so a receiver that checks it against its clock
// (within [Tolerance]) refuses old requests replayed.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}
