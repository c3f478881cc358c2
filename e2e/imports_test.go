package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportRules keeps the package map of docs/ARCHITECTURE.md true: each
// row names packages (a prefix of their path in the module) and the
// packages of the module they must not import.
func TestImportRules(t *testing.T) {
	const module = "github.com/wxflow/wxflow"
	rules := []struct {
		pkgs   string   // this package and those below it
		except []string // … but not these
		never  []string // may import none of these (nor what is below them)
	}{
		{pkgs: "engine", except: []string{"engine/enginetest"}, never: []string{"api", "workers", "internal"}},
		{pkgs: "workers/wechat", never: []string{"engine", "api", "internal", "workers/tokens"}},
		{pkgs: "workers", except: []string{"workers/wechat"}, never: []string{"api", "internal"}},
		{pkgs: "api", never: []string{"internal"}},
		{pkgs: "internal/metrics", never: []string{"internal/cli", "internal/stack", "workers"}},
		{pkgs: "internal/demo", never: []string{"internal/cli", "internal/stack", "api", "workers/wechat/sim"}},
		{pkgs: "internal/verify", never: []string{"internal/cli", "internal/stack"}},
		{pkgs: "internal/demoshop", never: []string{"engine", "api", "workers", "internal"}}, // a shop: the API over HTTP only
		{pkgs: "internal/natsembed", never: []string{"engine", "api", "workers", "internal"}},
		{pkgs: "internal/stack", never: []string{"internal/cli", "internal/demo", "internal/bench", "internal/verify"}},
		{pkgs: "internal/bench", never: []string{"internal/cli"}},
		{pkgs: "", except: []string{module, "internal/cli", "internal/bench", "e2e"}, never: []string{"internal/stack"}},
		{pkgs: "", except: []string{module}, never: []string{"internal/cli"}},
		// The OpenAPI checker is for tests only: no package of the binary
		// links it (or its validator).
		{pkgs: "", except: []string{"internal/openapitest"}, never: []string{"internal/openapitest"}},
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Skipf("go list: %v (the go command is needed to read the import graph)", err)
	}
	under := func(path, prefix string) bool {
		return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg := fields[0]
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if pkg == module {
			rel = module
		}
		for _, r := range rules {
			if !under(rel, r.pkgs) || r.pkgs == "" && rel == module && slices.Contains(r.except, module) {
				continue
			}
			skip := false
			for _, e := range r.except {
				skip = skip || under(rel, e)
			}
			if skip {
				continue
			}
			checked++
			for _, imp := range fields[1:] {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				dep := strings.TrimPrefix(imp, module+"/")
				for _, n := range r.never {
					if under(dep, n) {
						t.Errorf("%s imports %s: docs/ARCHITECTURE.md says it must not", rel, dep)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package checked: the module path or go list's output changed")
	}
}
