package engine

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// This file is the one table of flags: what each flag an order may carry
// means and who may clear it. An order keeps a set of flags; a new flag
// never erases another. docs/ARCHITECTURE.md lists them.

// FlagKind says who may clear a flag.
type FlagKind string

// The kinds of flags.
const (
	// FlagAlert: money may be wrong (taken and not recorded, not given back,
	// the wrong amount). Only a person clears it, with `wxflow admin resolve`
	// (VerbResolve), recorded in the history with who and why; a replay, the
	// reconciler or a later flag never does. An amount_mismatch cleared by the
	// reconciler's replay nine seconds after it was raised is why.
	FlagAlert FlagKind = "alert"
	// FlagOperational: a step stopped (a dead-lettered event, a failed
	// payment notification); the money is where wxflow says. A replay, which
	// runs the step again, clears it; a person may resolve it too.
	FlagOperational FlagKind = "operational"
)

// The flags wxflow raises.
const (
	FlagAmountMismatch   = "amount_mismatch"             // WeChat says another amount was paid than the order's
	FlagPaidAfterClose   = "paid_after_close"            // WeChat took money for a closed order: a person refunds it
	FlagRefundClosed     = "refund_closed"               // WeChat closed a refund: the payer did not get the money back
	FlagRefundAbnormal   = "refund_abnormal"             // WeChat could not pay a refund into the payer's account
	FlagPaymentFailed    = "payment_failed_notification" // a verified notification said the payment failed
	FlagDeadLetterPrefix = "dead_letter:"                // dead_letter:<worker>: a worker gave up on the order's event
	// FlagMerchantMisconfigured: the order failed because its merchant's
	// configuration is wrong (unknown or broken in the registry, or refused
	// by WeChat for its signature or its appid/mchid binding). The fix is
	// the merchant's folder; the shop then creates the order again.
	FlagMerchantMisconfigured = "merchant_misconfigured"
)

// flagNameMaxLen bounds a flag's name.
const flagNameMaxLen = 64

// flagRule is one row of the flag table: a flag (or, with prefix, every flag
// starting so) and its kind.
type flagRule struct {
	name   string
	prefix bool
	kind   FlagKind
}

// flagRules is every flag wxflow raises. A flag not in the table (raised by
// a newer worker, or by hand) is an alert: a person looks before it goes.
var flagRules = []flagRule{
	{name: FlagAmountMismatch, kind: FlagAlert},
	{name: FlagPaidAfterClose, kind: FlagAlert},
	{name: FlagRefundClosed, kind: FlagAlert},
	{name: FlagRefundAbnormal, kind: FlagAlert},
	{name: FlagBooksUnrecordedPayment, kind: FlagAlert}, // the books' flags (books.go)
	{name: FlagBooksMissingAtWechat, kind: FlagAlert},
	{name: FlagBooksAmountDiffers, kind: FlagAlert},
	{name: FlagBooksStateDiffers, kind: FlagAlert},
	{name: FlagBooksUnknownRefund, kind: FlagAlert},
	{name: FlagPaymentFailed, kind: FlagOperational},
	{name: FlagMerchantMisconfigured, kind: FlagOperational}, // the order failed; a payment WeChat took after all raises its own alert
	{name: FlagDeadLetterPrefix, prefix: true, kind: FlagOperational},
}

// KindOf is the kind of a flag: its row's, or FlagAlert for a flag the
// table does not know.
func KindOf(flag string) FlagKind {
	for _, r := range flagRules {
		if flag == r.name || r.prefix && strings.HasPrefix(flag, r.name) {
			return r.kind
		}
	}
	return FlagAlert
}

// validFlag reports whether a flag's name is 1-64 of [0-9a-z_:.-]: flags
// are names, not free text (the reason goes to the history).
func validFlag(flag string) bool {
	if flag == "" || len(flag) > flagNameMaxLen {
		return false
	}
	for _, c := range flag {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("_:.-", c)) {
			return false
		}
	}
	return true
}

// Flags is the set of an order's flags, in the order they were raised. It
// is stored as a JSON array (the empty set as "").
type Flags []string

// Has reports whether flag is in the set.
func (f Flags) Has(flag string) bool { return slices.Contains(f, flag) }

// Primary is the flag a one-line view shows (Order.Flag): the first alert
// raised, else the first flag; "" when there is none.
func (f Flags) Primary() string {
	for _, x := range f {
		if KindOf(x) == FlagAlert {
			return x
		}
	}
	if len(f) > 0 {
		return f[0]
	}
	return ""
}

// Value stores the set as a JSON array, "" when empty.
func (f Flags) Value() (driver.Value, error) {
	if len(f) == 0 {
		return "", nil
	}
	b, err := json.Marshal([]string(f))
	return string(b), err
}

// Scan reads the stored set.
func (f *Flags) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("Flags: cannot scan %T", src)
	}
	*f = nil
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, (*[]string)(f)); err != nil {
		return fmt.Errorf("Flags: %w", err)
	}
	return nil
}

// raise adds flag to the order's set; false when it was there already.
func (o *Order) raise(flag string) bool {
	if o.Flags.Has(flag) {
		return false
	}
	o.Flags = append(slices.Clone(o.Flags), flag)
	o.Flag = o.Flags.Primary()
	return true
}

// clearFlag takes flag off the order's set; false when it was not there.
func (o *Order) clearFlag(flag string) bool {
	if !o.Flags.Has(flag) {
		return false
	}
	o.Flags = slices.DeleteFunc(slices.Clone(o.Flags), func(x string) bool { return x == flag })
	if len(o.Flags) == 0 {
		o.Flags = nil
	}
	o.Flag = o.Flags.Primary()
	return true
}

// clearOperational takes the operational flags off the order's set (what a
// replay answers) and keeps the alerts.
func (o *Order) clearOperational() {
	for _, x := range slices.Clone(o.Flags) {
		if KindOf(x) == FlagOperational {
			o.clearFlag(x)
		}
	}
}

// flagReason is the history's reason of a flag or a resolution: the flag's
// name, then why.
func flagReason(flag, why string) string {
	if why == "" {
		return flag
	}
	return flag + ": " + why
}
