package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Site is one of WeChat Pay's two sites the simulator plays: the primary
// (api.mch.weixin.qq.com, the base URL every WeChat host stands on) and the
// backup (api2.mch.weixin.qq.com, a second listener). Both share one ledger,
// as WeChat's sites share their state: an order made on one is known to the
// other.
type Site string

// The two sites.
const (
	SitePrimary Site = "primary"
	SiteBackup  Site = "backup"
)

// OutageMode is how a site fails its WeChat Pay calls.
type OutageMode string

// The outage modes.
const (
	// OutageNone: the site answers (lifts an outage).
	OutageNone OutageMode = "none"
	// OutageRefuse: every pay call's connection is closed without an answer,
	// as by a site whose front ends are gone.
	OutageRefuse OutageMode = "refuse"
	// Outage502: every pay call is answered a bare, unsigned HTTP 502, as by a
	// gateway whose site behind it is down.
	Outage502 OutageMode = "502"
	// OutageHang: every pay call is held without an answer until the caller
	// gives up (or the outage ends, when the connection is closed).
	OutageHang OutageMode = "hang"
)

// Outage takes one site's WeChat Pay calls (/pay/, /secapi/, /v3/) down for
// a while. The platform and OAuth paths, which stand for other WeChat sites,
// and the simulator's own /sim/ paths keep answering.
type Outage struct {
	Site Site
	Mode OutageMode
	// For is how long the outage lasts from when it is set; 0 until lifted.
	For time.Duration
}

// ParseOutage reads SITE:MODE[:DURATION], e.g. "primary:502:30s", the form
// of the --outage flag.
func ParseOutage(v string) (Outage, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Outage{}, fmt.Errorf("outage %q: want SITE:MODE[:DURATION], e.g. primary:502:30s", v)
	}
	o := Outage{Site: Site(parts[0]), Mode: OutageMode(parts[1])}
	if len(parts) == 3 {
		d, err := time.ParseDuration(parts[2])
		if err != nil {
			return Outage{}, fmt.Errorf("outage %q: %w", v, err)
		}
		o.For = d
	}
	return o, o.Validate()
}

// Validate refuses an unknown site or mode and a negative duration.
func (o Outage) Validate() error {
	switch {
	case o.Site != SitePrimary && o.Site != SiteBackup:
		return fmt.Errorf("outage site %q: want primary or backup", o.Site)
	case o.Mode != OutageNone && o.Mode != OutageRefuse && o.Mode != Outage502 && o.Mode != OutageHang:
		return fmt.Errorf("outage mode %q: want refuse, 502, hang or none", o.Mode)
	case o.For < 0:
		return fmt.Errorf("outage for %s: must not be negative", o.For)
	}
	return nil
}

// String is the flag form, SITE:MODE[:DURATION]; empty for no outage.
func (o *Outage) String() string {
	if o == nil || o.Site == "" {
		return ""
	}
	if o.For > 0 {
		return fmt.Sprintf("%s:%s:%s", o.Site, o.Mode, o.For)
	}
	return fmt.Sprintf("%s:%s", o.Site, o.Mode)
}

// Set parses the flag form (pflag.Value).
func (o *Outage) Set(v string) error {
	p, err := ParseOutage(v)
	if err != nil {
		return err
	}
	*o = p
	return nil
}

// Type names the flag's value (pflag.Value).
func (o *Outage) Type() string { return "outage" }

// OutageStatus is a site's outage as GET /sim/outage shows it.
type OutageStatus struct {
	Site  Site       `json:"site"`
	Mode  OutageMode `json:"mode"`
	Until time.Time  `json:"until,omitzero"` // zero: until lifted
	// Served counts the pay calls the site let through since the simulator started.
	Served int `json:"served"`
}

// siteState is the two sites' outages and counts; the zero value has no outage.
type siteState struct {
	mu      sync.Mutex
	outages map[Site]siteOutage
	served  map[Site]int
	changed chan struct{} // closed (and replaced) when an outage changes
}

type siteOutage struct {
	mode  OutageMode
	until time.Time // zero: until lifted
}

// siteKey carries the site a request came in on.
type siteKey struct{}

// siteOf is the site of a request; the primary unless a site's handler says otherwise.
func siteOf(ctx context.Context) Site {
	if s, ok := ctx.Value(siteKey{}).(Site); ok {
		return s
	}
	return SitePrimary
}

// isPayPath says whether a path is WeChat Pay's (the paths a site outage takes down).
func isPayPath(p string) bool {
	return strings.HasPrefix(p, "/pay/") || strings.HasPrefix(p, "/secapi/") || strings.HasPrefix(p, "/v3/")
}

// SetOutage starts (or, with OutageNone, lifts) a site's outage at once.
func (s *Sim) SetOutage(o Outage) error {
	if err := o.Validate(); err != nil {
		return err
	}
	st := &s.sites
	st.mu.Lock()
	if st.outages == nil {
		st.outages = map[Site]siteOutage{}
	}
	if o.Mode == OutageNone {
		delete(st.outages, o.Site)
	} else {
		so := siteOutage{mode: o.Mode}
		if o.For > 0 {
			so.until = s.now().Add(o.For)
		}
		st.outages[o.Site] = so
	}
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
	st.mu.Unlock()
	s.log.Info("site outage set", "site", string(o.Site), "mode", string(o.Mode), "for", o.For)
	return nil
}

// Outages reports both sites, the primary first.
func (s *Sim) Outages() []OutageStatus {
	st := &s.sites
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []OutageStatus
	for _, site := range []Site{SitePrimary, SiteBackup} {
		o := OutageStatus{Site: site, Mode: OutageNone, Served: st.served[site]}
		if so, ok := st.outages[site]; ok && (so.until.IsZero() || s.now().Before(so.until)) {
			o.Mode, o.Until = so.mode, so.until
		}
		out = append(out, o)
	}
	return out
}

// current returns the outage in force at a site, and a channel closed when
// outages change; it counts the call as served when there is none.
func (st *siteState) current(site Site, now time.Time) (siteOutage, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	so, ok := st.outages[site]
	if ok && !so.until.IsZero() && !now.Before(so.until) {
		delete(st.outages, site)
		ok = false
	}
	if !ok {
		if st.served == nil {
			st.served = map[Site]int{}
		}
		st.served[site]++
		return siteOutage{mode: OutageNone}, nil
	}
	if st.changed == nil {
		st.changed = make(chan struct{})
	}
	return so, st.changed
}

// inOutage answers a pay call as its site's outage does, and reports
// whether it did; ServeHTTP calls it first.
func (s *Sim) inOutage(w http.ResponseWriter, r *http.Request) bool {
	if !isPayPath(r.URL.Path) {
		return false
	}
	site := siteOf(r.Context())
	so, changed := s.sites.current(site, s.now())
	if so.mode == OutageNone {
		return false
	}
	s.inject("outage_" + string(so.mode))
	s.log.Debug("site outage", "site", string(site), "mode", string(so.mode), "path", r.URL.Path)
	switch so.mode {
	case Outage502:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return true
	case OutageHang:
		var end <-chan time.Time
		if !so.until.IsZero() {
			t := time.NewTimer(so.until.Sub(s.now()))
			defer t.Stop()
			end = t.C
		}
		select {
		case <-r.Context().Done():
		case <-s.closed:
		case <-changed:
		case <-end:
		}
	}
	panic(http.ErrAbortHandler) // the connection closes without an answer
}

// Site returns the handler of one site: the simulator, with the requests
// it serves marked as that site's (ServeHTTP alone is the primary).
func (s *Sim) Site(site Site) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), siteKey{}, site)))
	})
}

// ServeSite serves one site over HTTPS on ln until ctx ends.
func (s *Sim) ServeSite(ctx context.Context, ln net.Listener, site Site) error {
	srv := &http.Server{Handler: s.Site(site), TLSConfig: s.ServerTLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// outageWire is POST /sim/outage's body: {"site":"primary","mode":"502","for":"30s"}.
type outageWire struct {
	Site Site       `json:"site"`
	Mode OutageMode `json:"mode"`
	For  string     `json:"for,omitempty"`
}

// handleGetOutage shows both sites' outages and the pay calls each served.
func (s *Sim) handleGetOutage(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Outages())
}

// handleSetOutage starts or lifts one site's outage. Either site answers it:
// an outage takes pay calls down, never the /sim/ paths.
func (s *Sim) handleSetOutage(w http.ResponseWriter, r *http.Request) {
	var in outageWire
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil && dec.More() {
		err = errors.New("one JSON object only")
	}
	o := Outage{Site: in.Site, Mode: in.Mode}
	if err == nil && in.For != "" {
		o.For, err = time.ParseDuration(in.For)
	}
	if err == nil {
		err = s.SetOutage(o)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Outages())
}
