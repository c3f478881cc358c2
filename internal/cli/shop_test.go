package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestShopCommands: add shows a key once, list shows ids and no secret,
// rotate adds a key beside the first, revoke --key ends one and revoke ends
// the rest.
func TestShopCommands(t *testing.T) {
	data := t.TempDir()
	run := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := Execute(t.Context(), append(args, "--data", data), &out, &errOut); code != wantCode {
			t.Fatalf("wxflow %s: status %d, %s %s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	keyRe := regexp.MustCompile(`wxs_([0-9a-v]{13})_[0-9a-v]{52}`)
	added := run(ExitOK, "shop", "add", "acme", "--merchant", "default,m2")
	first := keyRe.FindStringSubmatch(added)
	if first == nil {
		t.Fatalf("add shows no key: %s", added)
	}
	run(ExitUsage, "shop", "add", "acme", "--merchant", "default")
	second := keyRe.FindStringSubmatch(run(ExitOK, "shop", "rotate", "acme"))
	if second == nil || second[1] == first[1] {
		t.Fatalf("rotate: %v", second)
	}
	list := run(ExitOK, "shop", "list")
	if !strings.Contains(list, "default,m2") || !strings.Contains(list, first[1]) || !strings.Contains(list, second[1]) || keyRe.MatchString(list) {
		t.Fatalf("list: %s", list)
	}
	run(ExitOK, "shop", "revoke", "acme", "--key", first[1])
	run(ExitError, "shop", "revoke", "acme", "--key", first[1])
	list = run(ExitOK, "shop", "list")
	if !regexp.MustCompile(`acme\s+default,m2\s+` + second[1] + `.*\s+` + first[1]).MatchString(list) {
		t.Fatalf("list after revoking the first key: %s", list)
	}
	run(ExitOK, "shop", "revoke", "acme")
	run(ExitError, "shop", "rotate", "nosuch")

	// --if-missing with --key-file: made once, then left alone.
	file := filepath.Join(data, "shops", "demo.key")
	run(ExitOK, "shop", "add", "demo", "--merchant", "default", "--if-missing", "--key-file", file)
	key, err := os.ReadFile(file)
	if err != nil || !keyRe.Match(key) {
		t.Fatalf("key file: %q %v", key, err)
	}
	if out := run(ExitOK, "shop", "add", "demo", "--merchant", "default", "--if-missing", "--key-file", file); !strings.Contains(out, "exists already") {
		t.Fatalf("again: %s", out)
	}
	if again, _ := os.ReadFile(file); string(again) != string(key) {
		t.Fatal("the key file changed")
	}
}
