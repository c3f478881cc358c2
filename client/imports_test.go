package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNothingOfWxflow: a shop imports this package alone. It and
// everything it depends on are the standard library, nats.go and what
// nats.go needs: nothing of wxflow (the engine, the API, internal/…).
func TestImportsNothingOfWxflow(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, "github.com/wxflow/wxflow/client").Output()
	if err != nil {
		t.Skipf("go list: %v (the go command is needed to read the import graph)", err)
	}
	allowed := []string{"github.com/nats-io/", "github.com/klauspost/compress/", "golang.org/x/"}
	n := 0
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		n++
		first, _, _ := strings.Cut(dep, "/")
		if !strings.Contains(first, ".") {
			continue // the standard library
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(dep, a)
		}
		if !ok {
			t.Errorf("the client depends on %s", dep)
		}
	}
	if n == 0 {
		t.Fatal("go list named no dependency")
	}
}
