package stack

import (
	"encoding/hex"
	"errors"
	"testing"
)

// TestAdminToken: dev's token is 32 random bytes (hex), new each time, and
// one the API accepts; a short WXFLOW_ADMIN_TOKEN is an invalid setting.
func TestAdminToken(t *testing.T) {
	a, err := NewAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAdminToken()
	if raw, err := hex.DecodeString(a); err != nil || len(raw) != 32 || a == b {
		t.Fatalf("tokens %q and %q: want 32 random bytes in hex, new each time", a, b)
	}
	for token, ok := range map[string]bool{a: true, "": true, "local-admin-token": false, "ops=" + a + ",ci=" + b: true, "ops=" + a + ",ci=short": false} {
		err := CheckAdminToken(&Settings{AdminToken: token})
		if ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckAdminToken(%d bytes): %v", len(token), err)
		}
	}
}
