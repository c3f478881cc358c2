package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// TestSimMerchants: `wxflow sim --merchants` serves the dev merchants in a
// new folder or one already in the folder layout, keeps a single-merchant
// folder single, and refuses to turn one layout into the other.
func TestSimMerchants(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "new")
	single := t.TempDir()
	if _, err := sim.EnsureKeys(single); err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	keys, err := sim.EnsureMerchants(layout, sim.DevMerchants())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, mode, dir string
		wantDev         bool
		wantErr         error
	}{
		{name: "new folder", mode: "", dir: missing, wantDev: true},
		{name: "empty folder", mode: "", dir: empty, wantDev: true},
		{name: "empty folder, dev", mode: "dev", dir: empty, wantDev: true},
		{name: "empty folder, one", mode: "one", dir: empty},
		{name: "single folder stays single", mode: "", dir: single},
		{name: "single folder, one", mode: "one", dir: single},
		{name: "single folder, dev", mode: "dev", dir: single, wantErr: errSimLayout},
		{name: "folder layout", mode: "", dir: layout, wantDev: true},
		{name: "folder layout, dev", mode: "dev", dir: layout, wantDev: true},
		{name: "folder layout, one", mode: "one", dir: layout, wantErr: errSimLayout},
		{name: "unknown mode", mode: "all", dir: empty, wantErr: usageError{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := simMerchants(tc.mode, tc.dir)
			switch {
			case tc.wantErr != nil:
				var ue usageError
				if err == nil || !errors.As(err, &ue) || (tc.wantErr != (usageError{}) && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("err %v, want a usage error %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantDev && len(specs) != len(sim.DevMerchants()):
				t.Fatalf("%d merchants, want the %d dev merchants", len(specs), len(sim.DevMerchants()))
			case !tc.wantDev && specs != nil:
				t.Fatalf("%d merchants, want the single layout (nil)", len(specs))
			}
		})
	}

	var out strings.Builder
	printSimMerchants(&out, keys.Registry)
	for _, want := range []string{"default (direct)", "second (direct)", "provider-sub1 (sub-merchant of provider)",
		"provider-sub2 (sub-merchant of provider)", "provider (provider, takes no orders)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the merchants printed lack %q: %s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(missing)); err == nil {
		t.Error("choosing the merchants made the keys folder")
	}
}
