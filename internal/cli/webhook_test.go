package cli

import (
	"regexp"
	"strings"
	"testing"
)

// TestShopWebhookCommands: add refuses what is no public http(s) URL (a
// private one only with --webhook-allow-private) and shows the secret
// once; list shows no secret; deliveries and resend answer for the shop's
// own endpoints only; remove ends it.
func TestShopWebhookCommands(t *testing.T) {
	data := t.TempDir()
	run := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := Execute(t.Context(), append(args, "--data", data), &out, &errOut); code != wantCode {
			t.Fatalf("wxflow %s: status %d, want %d: %s %s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	run(ExitOK, "shop", "add", "acme", "--merchant", "default")
	run(ExitOK, "shop", "add", "other", "--merchant", "default")
	run(ExitUsage, "shop", "webhook", "add", "acme", "ftp://shop.example.com/h")
	if out := run(ExitUsage, "shop", "webhook", "add", "acme", "http://127.0.0.1:9000/h"); !strings.Contains(out, "--webhook-allow-private") {
		t.Fatalf("private target: %s", out)
	}
	run(ExitUsage, "shop", "webhook", "add", "Bad Name", "https://shop.example.com/h")
	run(ExitError, "shop", "webhook", "add", "nosuch", "https://shop.example.com/h")

	secretRe := regexp.MustCompile(`whsec_[0-9a-v]{52}`)
	idRe := regexp.MustCompile(`webhook (whe_[0-9a-v]+)`)
	added := run(ExitOK, "shop", "webhook", "add", "acme", "https://shop.example.com/hooks")
	secret, id := secretRe.FindString(added), idRe.FindStringSubmatch(added)
	if secret == "" || id == nil {
		t.Fatalf("add shows no id or secret: %s", added)
	}
	local := run(ExitOK, "shop", "webhook", "add", "acme", "http://127.0.0.1:9000/h", "--webhook-allow-private")
	if !secretRe.MatchString(local) || secretRe.FindString(local) == secret {
		t.Fatalf("the second endpoint: %s", local)
	}
	list := run(ExitOK, "shop", "webhook", "list", "acme")
	if !strings.Contains(list, id[1]) || !strings.Contains(list, "https://shop.example.com/hooks") || secretRe.MatchString(list) {
		t.Fatalf("list: %s", list)
	}
	if list := run(ExitOK, "shop", "webhook", "list", "other"); strings.Contains(list, id[1]) {
		t.Fatalf("another shop lists it: %s", list)
	}
	if out := run(ExitOK, "shop", "webhook", "deliveries", "acme", id[1]); !strings.Contains(out, "EVENT") {
		t.Fatalf("deliveries: %s", out)
	}
	run(ExitUsage, "shop", "webhook", "deliveries", "acme", id[1], "--state", "lost")
	run(ExitError, "shop", "webhook", "deliveries", "other", id[1])
	run(ExitUsage, "shop", "webhook", "resend", "acme", id[1])
	run(ExitUsage, "shop", "webhook", "resend", "acme", id[1], "--event", "evt_x", "--since", "1h")
	run(ExitUsage, "shop", "webhook", "resend", "acme", id[1], "--since", "yesterday")
	run(ExitError, "shop", "webhook", "resend", "acme", id[1], "--event", "evt_nosuch")
	if out := run(ExitOK, "shop", "webhook", "resend", "acme", id[1], "--since", "24h"); !strings.Contains(out, "0 deliveries queued again") {
		t.Fatalf("resend since: %s", out)
	}
	run(ExitError, "shop", "webhook", "remove", "other", id[1])
	if out := run(ExitOK, "shop", "webhook", "remove", "acme", id[1]); !strings.Contains(out, "removed") {
		t.Fatalf("remove: %s", out)
	}
	run(ExitError, "shop", "webhook", "remove", "acme", id[1])
	if list := run(ExitOK, "shop", "webhook", "list", "acme"); strings.Contains(list, id[1]) {
		t.Fatalf("a removed endpoint is listed: %s", list)
	}
}
