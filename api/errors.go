package api

import (
	"encoding/json"
	"net/http"

	"github.com/wxflow/wxflow/engine"
)

// errorBody is every error answer: {"error": {"code", "reason", "problems"}},
// problems listing each field, parameter or header in the way (422 only).
type errorBody struct {
	Error struct {
		Code     string    `json:"code"`
		Reason   string    `json:"reason"`
		Problems []Problem `json:"problems,omitempty"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, reason string) {
	var b errorBody
	b.Error.Code, b.Error.Reason = code, reason
	writeJSON(w, status, b)
}

// statusOf is the only place an engine refusal becomes an HTTP status.
func statusOf(code engine.RefusalCode) int {
	switch code {
	case engine.CodeConflict, engine.CodeRefundInProgress, engine.CodeInvalidState, engine.CodeCloseRequested, engine.CodeDuplicate:
		return http.StatusConflict
	case engine.CodeOverRefund, engine.CodeTooManyRefunds, engine.CodeInvalid, engine.CodeAmountMismatch:
		return http.StatusUnprocessableEntity
	case engine.CodeUnknownOrder:
		return http.StatusNotFound
	case engine.CodeMerchantNotAllowed, engine.CodeForbiddenOrigin:
		return http.StatusForbidden
	}
	return http.StatusUnprocessableEntity
}
