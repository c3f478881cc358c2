package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook delivery. The body is the [Event]'s JSON.
const (
	// SignatureHeader is "t=<unix seconds>,v1=<hex HMAC-SHA256>"; during a
	// secret rotation it carries one v1= per secret.
	SignatureHeader = "Wxflow-Signature"
	// EventIDHeader is the event's id: a delivery may come more than once.
	EventIDHeader = "Wxflow-Event-Id"
	// EventTypeHeader is the event's type.
	EventTypeHeader = "Wxflow-Event-Type"
)

// DefaultWebhookTolerance is how far a signature's time may be from the
// receiver's clock: a request captured and replayed later is refused.
const DefaultWebhookTolerance = 5 * time.Minute

// Errors of webhook verification.
var (
	// ErrWebhookMalformed: the signature header is missing or unreadable.
	ErrWebhookMalformed = errors.New("wxflow webhook: malformed signature header")
	// ErrWebhookSignature: no signature matches the body under the secret.
	ErrWebhookSignature = errors.New("wxflow webhook: signature does not match")
	// ErrWebhookStale: the signed time is outside the tolerance (a replay,
	// or a clock far off).
	ErrWebhookStale = errors.New("wxflow webhook: signature time outside the tolerance")
)

// maxSignatureHeader bounds the header parsed: a few signatures, not a flood.
const maxSignatureHeader = 4096

// WebhookSignature is a parsed Wxflow-Signature header.
type WebhookSignature struct {
	// Timestamp is the signed time, in Unix seconds.
	Timestamp int64
	// V1 are the HMAC-SHA256 signatures (32 bytes each), one per secret
	// being used (several during a rotation).
	V1 [][]byte
}

// ParseSignatureHeader reads "t=<unix seconds>,v1=<64 lowercase hex>[,v1=…]".
// Elements it does not know (another scheme, "v0=…") are skipped; exactly
// one t= and at least one well-formed v1= are required. It reads at most
// 4 KiB and keeps at most 8 signatures.
func ParseSignatureHeader(h string) (WebhookSignature, error) {
	var s WebhookSignature
	if len(h) > maxSignatureHeader {
		return s, fmt.Errorf("%w: longer than %d bytes", ErrWebhookMalformed, maxSignatureHeader)
	}
	seenT := false
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return s, fmt.Errorf("%w: %q is not key=value", ErrWebhookMalformed, part)
		}
		switch k {
		case "t":
			if seenT {
				return s, fmt.Errorf("%w: two t=", ErrWebhookMalformed)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || strconv.FormatInt(n, 10) != v { // the signed text is canonical
				return s, fmt.Errorf("%w: t=%q is not Unix seconds", ErrWebhookMalformed, v)
			}
			s.Timestamp, seenT = n, true
		case "v1":
			if len(v) != 2*sha256.Size || strings.ToLower(v) != v {
				return s, fmt.Errorf("%w: v1= is not 64 lowercase hex digits", ErrWebhookMalformed)
			}
			sig, err := hex.DecodeString(v)
			if err != nil {
				return s, fmt.Errorf("%w: v1= is not 64 lowercase hex digits", ErrWebhookMalformed)
			}
			if len(s.V1) < 8 {
				s.V1 = append(s.V1, sig)
			}
		}
	}
	switch {
	case !seenT:
		return s, fmt.Errorf("%w: no t=", ErrWebhookMalformed)
	case len(s.V1) == 0:
		return s, fmt.Errorf("%w: no v1=", ErrWebhookMalformed)
	}
	return s, nil
}

// SignWebhook returns the Wxflow-Signature value of body sent at t under
// secret, as wxflow signs its deliveries: "t=<t>,v1=<lowercase hex of
// HMAC-SHA256(secret, "<t>.<body>")>". Useful to test a webhook endpoint.
func SignWebhook(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a delivery: that one of the header's v1 signatures
// is the HMAC-SHA256 of "<t>.<body>" under secret (the whole "whsec_…"
// string), compared in constant time, and that t is within tolerance of now
// (tolerance 0: [DefaultWebhookTolerance]). Verify the raw body, before
// decoding it. Errors: [ErrWebhookMalformed], [ErrWebhookSignature],
// [ErrWebhookStale].
func VerifyWebhook(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("wxflow webhook: no secret to verify with")
	}
	sig, err := ParseSignatureHeader(header)
	if err != nil {
		return err
	}
	want := webhookMAC(secret, strconv.FormatInt(sig.Timestamp, 10), body)
	ok := false
	for _, v1 := range sig.V1 {
		ok = hmac.Equal(v1, want) || ok // every one compared: the time does not say which matched
	}
	if !ok {
		return ErrWebhookSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if d := now.Sub(time.Unix(sig.Timestamp, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now, tolerance %s", ErrWebhookStale, d.Round(time.Second), tolerance)
	}
	return nil
}

// WebhookHandler is an [http.Handler] for wxflow's webhook deliveries: it
// verifies each (any of Secrets, so that a rotation is seamless), decodes
// the [Event] and calls Handle. A delivery that fails verification is
// answered 401 and never reaches Handle; Handle's error is answered 500, so
// wxflow delivers again later; nil is 204. Deliveries come at least once:
// Handle must be idempotent (by Event.ID).
type WebhookHandler struct {
	// Secrets are the endpoint's signing secrets ("whsec_…"): during a
	// rotation, the old and the new. Required.
	Secrets []string
	// Handle handles one event. Required.
	Handle func(ctx context.Context, e Event) error
	// Tolerance is DefaultWebhookTolerance when 0.
	Tolerance time.Duration
	// MaxBody bounds a delivery's body (1 MiB when 0).
	MaxBody int64
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// ServeHTTP verifies, decodes and handles one delivery.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	e, err := h.Verify(r.Header, body)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrNotAnEvent) {
			status = http.StatusBadRequest
		}
		http.Error(w, "refused: "+err.Error(), status)
		return
	}
	if err := h.Handle(r.Context(), e); err != nil {
		http.Error(w, "not handled; send it again later", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Verify checks a delivery's headers and body under any of the handler's
// secrets and decodes its event, which must agree with the Wxflow-Event-Id
// and Wxflow-Event-Type headers.
func (h *WebhookHandler) Verify(header http.Header, body []byte) (Event, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	sig := header.Get(SignatureHeader)
	err := errors.New("wxflow webhook: no secret configured")
	for _, s := range h.Secrets {
		if err = VerifyWebhook(s, sig, body, now, h.Tolerance); err == nil || !errors.Is(err, ErrWebhookSignature) {
			break // verified, or malformed or stale whatever the secret
		}
	}
	if err != nil {
		return Event{}, err
	}
	e, err := decodeEvent("", body)
	if err != nil {
		return Event{}, err
	}
	if id, t := header.Get(EventIDHeader), header.Get(EventTypeHeader); id != e.ID || t != string(e.Type) {
		return Event{}, fmt.Errorf("%w: headers say event %q of type %q, the body %q of type %q", ErrNotAnEvent, id, t, e.ID, e.Type)
	}
	return e, nil
}
