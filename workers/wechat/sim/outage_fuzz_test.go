package sim_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// FuzzOutageBody feeds POST /sim/outage any body: the answer is 200 or 400,
// never a crash, and whatever it accepts is an outage the simulator knows
// (a site and a mode of its own, a duration not negative).
func FuzzOutageBody(f *testing.F) {
	s, err := sim.New(sim.Config{KeysDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/sim/outage", bytes.NewReader(body)))
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		for _, o := range s.Outages() {
			if err := (sim.Outage{Site: o.Site, Mode: o.Mode}).Validate(); err != nil {
				t.Fatalf("accepted %q into %+v: %v", body, o, err)
			}
		}
		var o sim.Outage
		if o.Set(string(body)) == nil {
			var again sim.Outage
			if err := again.Set(o.String()); err != nil || again != o {
				t.Fatalf("flag %q read as %+v, written %q, read back %+v (%v)", body, o, o.String(), again, err)
			}
		}
	})
}
