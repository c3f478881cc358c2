package natsauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Dir is where a data folder keeps its NATS users' seeds (mode 0700; each
// seed 0600): <data>/nats/creds.
func Dir(dataDir string) string { return filepath.Join(dataDir, "nats", "creds") }

// SeedFile is where role's seed is kept in dir.
func SeedFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".nk") }

// merchantsFile keeps a shop's merchants beside its seed.
func merchantsFile(dir, shop string) string {
	return filepath.Join(dir, string(Shop(shop))+".merchants")
}

// ErrNoSeed is returned for a role whose seed is not in the folder.
var ErrNoSeed = errors.New("natsauth: no NATS key for this role")

// Users are the server's users and the grant each one has, in the same order.
type Users struct {
	Nkeys  []*server.NkeyUser
	Grants []Grant
}

// Ensure makes a seed for every grant that has none (under a lock, so that
// processes starting at once agree) and returns the server's users: one per
// grant, with its permissions, and one per shop kept in dir.
func Ensure(dir string, grants []Grant) (Users, error) {
	unlock, err := lock(dir)
	if err != nil {
		return Users{}, err
	}
	defer unlock()
	shops, err := shopGrants(dir)
	if err != nil {
		return Users{}, err
	}
	u := Users{Grants: append(slices.Clone(grants), shops...)}
	for i := range u.Grants {
		if u.Grants[i].Role == Engine { // the engine answers the shops' commands in their inboxes
			for _, s := range shops {
				u.Grants[i].Shops = append(u.Grants[i].Shops, strings.TrimPrefix(string(s.Role), shopPrefix))
			}
		}
	}
	for _, g := range u.Grants {
		pub, err := ensureSeed(dir, g.Role)
		if err != nil {
			return Users{}, err
		}
		u.Nkeys = append(u.Nkeys, &server.NkeyUser{Nkey: pub, Permissions: g.Permissions()})
	}
	return u, nil
}

// AddShop makes (or keeps) the NATS user of the shop named name, acting for
// merchants, in dir, and returns its seed file. A running embedded server
// takes it at its next start or reload.
func AddShop(dir, name string, merchants []string) (string, error) {
	unlock, err := lock(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := ensureSeed(dir, Shop(name)); err != nil {
		return "", err
	}
	if err := writeFile(merchantsFile(dir, name), []byte(strings.Join(merchants, ",")+"\n")); err != nil {
		return "", err
	}
	return SeedFile(dir, Shop(name)), nil
}

// shopGrants reads the shops kept in dir.
func shopGrants(dir string) ([]Grant, error) {
	matches, err := filepath.Glob(filepath.Join(dir, shopPrefix+"*.merchants"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	var out []Grant
	for _, m := range matches {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), shopPrefix), ".merchants")
		raw, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var merchants []string
		for _, s := range strings.Split(strings.TrimSpace(string(raw)), ",") {
			if s = strings.TrimSpace(s); s != "" {
				merchants = append(merchants, s)
			}
		}
		out = append(out, Grant{Role: Shop(name), Merchants: merchants})
	}
	return out, nil
}

// ensureSeed returns the public key of role's seed in dir, making the seed first when there is none.
func ensureSeed(dir string, r Role) (string, error) {
	file := SeedFile(dir, r)
	if raw, err := os.ReadFile(file); err == nil {
		kp, err := nkeys.FromSeed(bytes.TrimSpace(raw))
		if err != nil {
			return "", fmt.Errorf("natsauth: %s: %w", file, err)
		}
		return kp.PublicKey()
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	if err := writeFile(file, append(seed, '\n')); err != nil {
		return "", err
	}
	return kp.PublicKey()
}

// writeFile writes a secret file whole (0600), through a rename, so no
// reader sees half of it.
func writeFile(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	return os.Rename(tmp, file)
}

// lock takes dir's lock (making dir, 0700), for the processes of one
// machine that make seeds at once.
func lock(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("natsauth: lock %s: %w", dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// ClientOptions are the options a process of role connects with: the key
// in file (an nkey seed, .nk, or a JWT credentials file, .creds) and the
// role's own inbox prefix. A missing file is ErrNoSeed.
func ClientOptions(file string, r Role) ([]nats.Option, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoSeed, file, err)
	}
	opts := []nats.Option{nats.CustomInboxPrefix(InboxPrefix(r))}
	if strings.HasSuffix(file, ".creds") {
		return append(opts, nats.UserCredentials(file)), nil
	}
	opt, err := nats.NkeyOptionFromSeed(file)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s: %w", file, err)
	}
	return append(opts, opt), nil
}

// ServerConfig is the authorization block of a nats-server configuration
// file giving users their permissions, for a deployment on an external
// server (`wxflow nats config`). Each user's comment names its role.
func ServerConfig(users Users) string {
	var b strings.Builder
	b.WriteString("# wxflow's NATS users: each process connects with its role's seed (WXFLOW_NATS_CREDS).\nauthorization {\n  users = [\n")
	for i, u := range users.Nkeys {
		p := u.Permissions
		conf := map[string]any{"nkey": u.Nkey, "permissions": map[string]any{
			"publish": p.Publish, "subscribe": p.Subscribe}}
		if p.Response != nil {
			conf["permissions"].(map[string]any)["allow_responses"] = map[string]int{"max": p.Response.MaxMsgs}
		}
		raw, _ := json.Marshal(conf)
		fmt.Fprintf(&b, "    # %s\n    %s\n", users.Grants[i], raw)
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// Fingerprint changes whenever a user is added to or removed from dir, or a
// shop's merchants change: a running server reloads its users then.
func Fingerprint(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() && (strings.HasSuffix(e.Name(), ".nk") || strings.HasSuffix(e.Name(), ".merchants")) {
			fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return b.String()
}

// Same says whether two lists of users hold the same keys with the same
// permissions, in any order: a server need not reload then.
func Same(a, b []*server.NkeyUser) bool {
	if len(a) != len(b) {
		return false
	}
	perms := func(us []*server.NkeyUser) map[string]string {
		m := make(map[string]string, len(us))
		for _, u := range us {
			raw, _ := json.Marshal(u.Permissions)
			m[u.Nkey] = string(raw)
		}
		return m
	}
	pa, pb := perms(a), perms(b)
	for k, v := range pa {
		if pb[k] != v {
			return false
		}
	}
	return len(pa) == len(pb)
}
