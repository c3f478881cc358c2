package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Role names a host of the pair: the one calls are meant for, or its backup.
// Metrics use it as a label, so it has these two values only.
type Role string

// The two roles.
const (
	Primary Role = "primary"
	Backup  Role = "backup"
)

// Config configures [Hosts].
type Config struct {
	// Primary is the base URL calls are addressed to, scheme and host only
	// (https://api.mch.weixin.qq.com, or the simulator's). Required.
	Primary string
	// Backup is the base URL a call goes to when the primary fails
	// (https://api2.mch.weixin.qq.com, or the simulator's second site),
	// scheme and host only, not the primary's. Required.
	Backup string
	// Threshold is how many failures in a row (timeouts, cut connections,
	// unsigned 5xx) open a host's breaker; a host that cannot be connected to
	// opens it at once. Default: 3.
	Threshold int
	// CoolDown is how long an open breaker rests before one call probes the
	// host again. Default: 30s.
	CoolDown time.Duration
	// AttemptTimeout is the most a host may take to answer (headers) when
	// another host could still be tried after it; it is also held to half
	// of the time the call has left, so the other host keeps the rest. The
	// last host tried has the call's whole time. Default: 5s.
	AttemptTimeout time.Duration
	// Logger gets a line when a host goes down (Warn) and comes back (Info);
	// nothing when nil.
	Logger *slog.Logger
	// Now is the clock of the breakers; time.Now when nil.
	Now func() time.Time
}

// Hosts is a primary host, its backup and a breaker for each. One Hosts
// serves every client of the same service (WeChat Pay v2, v2 with mutual
// TLS, v3), so what one learns of a host the others use. It is safe for
// concurrent use.
type Hosts struct {
	cfg     Config
	primary *url.URL
	backup  *url.URL
	log     *slog.Logger
	b       map[Role]*breaker // read-only after New
}

// ErrUnavailable is returned, wrapped, when every host's breaker is open:
// nothing was sent. The caller retries later, as after a network error.
var ErrUnavailable = errors.New("failover: every host is resting after failures")

// ErrConfig marks a Config that cannot work.
var ErrConfig = errors.New("failover: invalid config")

// New checks cfg and returns the pair with both breakers closed.
func New(cfg Config) (*Hosts, error) {
	p, err := ParseBase(cfg.Primary)
	if err != nil {
		return nil, fmt.Errorf("%w: Primary: %w", ErrConfig, err)
	}
	bk, err := ParseBase(cfg.Backup)
	if err != nil {
		return nil, fmt.Errorf("%w: Backup: %w", ErrConfig, err)
	}
	if p.Scheme == bk.Scheme && p.Host == bk.Host {
		return nil, fmt.Errorf("%w: Backup %s is the primary", ErrConfig, cfg.Backup)
	}
	if cfg.Threshold < 0 || cfg.CoolDown < 0 || cfg.AttemptTimeout < 0 {
		return nil, fmt.Errorf("%w: Threshold, CoolDown and AttemptTimeout must not be negative", ErrConfig)
	}
	cfg.Threshold = cmp.Or(cfg.Threshold, 3)
	cfg.CoolDown = cmp.Or(cfg.CoolDown, 30*time.Second)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hosts{cfg: cfg, primary: p, backup: bk, log: log, b: map[Role]*breaker{}}
	for _, r := range roles {
		h.b[r] = &breaker{threshold: cfg.Threshold, coolDown: cfg.CoolDown}
	}
	return h, nil
}

// roles is the order hosts are tried in.
var roles = [...]Role{Primary, Backup}

// ParseBase parses a base URL of a host pair: http or https, a host, and
// nothing after it but an optional "/". Settings validate with it.
func ParseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Opaque != "":
		return nil, fmt.Errorf("%q: want http(s)://HOST[:PORT]", raw)
	case u.User != nil, u.Path != "", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return nil, fmt.Errorf("%q: want the scheme and host only (no user, path, query or fragment)", raw)
	}
	return u, nil
}

// Serves reports whether base (a client's base URL) is the primary, whose
// calls this pair fails over.
func (h *Hosts) Serves(base string) bool {
	u, err := ParseBase(base)
	return err == nil && u.Scheme == h.primary.Scheme && u.Host == h.primary.Host
}

// owns reports whether a request is addressed to the primary.
func (h *Hosts) owns(u *url.URL) bool {
	return u.Scheme == h.primary.Scheme && u.Host == h.primary.Host
}

// base returns the base URL of a role.
func (h *Hosts) base(r Role) *url.URL {
	if r == Backup {
		return h.backup
	}
	return h.primary
}

// record gives a breaker an attempt's verdict and logs a host going down or
// coming back.
func (h *Hosts) record(r Role, v verdict, probe bool, cause error) {
	from, to := h.b[r].record(v, probe, h.cfg.Now())
	switch {
	case to == Open && from != Open:
		h.log.Warn("WeChat Pay host down: calls go to the other host", "host", string(r), "url", h.base(r).String(),
			"err", cause, "retry_after", h.cfg.CoolDown)
	case to == Open && probe:
		h.log.Warn("WeChat Pay host still down", "host", string(r), "url", h.base(r).String(), "err", cause, "retry_after", h.cfg.CoolDown)
	case to == Closed && from != Closed:
		h.log.Info("WeChat Pay host back: calls return to it", "host", string(r), "url", h.base(r).String())
	}
}

// HostStatus is one host's breaker as [Hosts.Status] reports it.
type HostStatus struct {
	Role  Role
	URL   string
	State State
	// Opened counts the times the breaker opened since the process started.
	Opened uint64
}

// Status reports both hosts, the primary first.
func (h *Hosts) Status() []HostStatus {
	out := make([]HostStatus, 0, len(roles))
	for _, r := range roles {
		st, n := h.b[r].snapshot()
		out = append(out, HostStatus{Role: r, URL: h.base(r).String(), State: st, Opened: n})
	}
	return out
}

// roleKey carries the role of an attempt in its request's context.
type roleKey struct{}

// RoleOf returns the host an attempt's request goes to, for a RoundTripper
// below [Hosts.Transport] (metrics); false for a request the pair does not
// handle.
func RoleOf(ctx context.Context) (Role, bool) {
	r, ok := ctx.Value(roleKey{}).(Role)
	return r, ok
}
