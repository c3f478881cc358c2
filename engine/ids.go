package engine

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + a time-ordered, random id made of [0-9a-v]:
// sortable by creation, and safe as a NATS subject token.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 32)
	return prefix + "_" + strings.Repeat("0", 9-len(ts)) + ts + idEncoding.EncodeToString(b[:])
}

// ValidOrderID reports whether id can be an order id: 1–64 of [0-9A-Za-z_-],
// so that it is one NATS subject token.
func ValidOrderID(id OrderID) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
